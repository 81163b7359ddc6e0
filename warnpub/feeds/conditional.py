"""Validators and conditional GET (RFC 9110 §13): ETag, Last-Modified, 304 Not Modified.

The ETag is a strong validator made from the body's SHA-256, so it changes exactly when the
bytes do. Last-Modified is only given once the last change is :data:`SETTLE_S` seconds old: an
HTTP date has whole seconds, and a change committed later within the same second would
otherwise go unseen by a client that asks ``If-Modified-Since``. ``If-None-Match`` wins over
``If-Modified-Since`` when both are sent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

SETTLE_S = 5.0
_ENTITY_TAG = re.compile(r'\s*(?:W/)?("[^"]*")\s*(?:,|$)')


def etag_for(body: bytes) -> str:
    """A strong entity tag for ``body``: its SHA-256, quoted."""
    return f'"{hashlib.sha256(body).hexdigest()[:40]}"'


def settled(last_changed: datetime | None, now: datetime) -> datetime | None:
    """``last_changed`` when it may be sent as Last-Modified (old enough), else None."""
    if last_changed is None or now - last_changed < timedelta(seconds=SETTLE_S):
        return None
    return last_changed


def http_date(when: datetime) -> str:
    """An IMF-fixdate: ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    return format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=True)


def etag_matches(header: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` value names ``etag`` (weak comparison, ``*`` matches)."""
    if header.strip() == "*":
        return True
    return any(match.group(1) == etag for match in _ENTITY_TAG.finditer(header))


def not_modified(headers: Mapping[str, str], etag: str, last_modified: datetime | None) -> bool:
    """Whether a GET with these request headers gets 304 for this representation."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        return etag_matches(if_none_match, etag)
    since = headers.get("If-Modified-Since")
    if since is None or last_modified is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False
    if when.tzinfo is None:
        return False
    return last_modified.replace(microsecond=0) <= when
