"""Time and identifiers: every timestamp in warnpub is an aware UTC datetime."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A 26-character, time-ordered, URL-safe identifier (ULID layout: 48-bit ms + 80 random bits)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def iso(dt: datetime | None) -> str | None:
    """RFC 3339 text for an aware datetime (None stays None)."""
    return None if dt is None else dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
