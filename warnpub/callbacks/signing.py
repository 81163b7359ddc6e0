"""HMAC-SHA256 signatures on callbacks, so a receipt or a reply cannot be forged or replayed late.

The sender puts one header on the request::

    X-Warnpub-Signature: t=1767225600,v1=5f1c…(64 hex digits)

where ``v1`` is ``HMAC-SHA256(secret, f"{t}.".encode() + body)`` in lower-case hex and ``t`` is
the sender's clock in Unix seconds. The receiver recomputes it over the raw body bytes and
refuses a missing, malformed or wrong signature, and a timestamp more than ``tolerance_s`` away
from its own clock (stale or from the future). While a secret is being rotated the sender may
repeat ``v1=`` once per secret and the receiver may hold several secrets; one match is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Iterable

from warnpub.problems import Problem, unauthorized

HEADER = "X-Warnpub-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300.0

Secret = str | bytes
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _key(secret: Secret) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def signature(secret: Secret, body: bytes, timestamp: int) -> str:
    """The hex HMAC of ``f"{timestamp}.".encode() + body`` (the ``v1`` value)."""
    return hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: Secret | Iterable[Secret], body: bytes, now: float | None = None) -> str:
    """The ``X-Warnpub-Signature`` header value for ``body`` at ``now`` (Unix seconds).

    Several secrets (during a rotation) give one ``v1=`` entry each."""
    secrets = _secret_list(secret)
    if not secrets:
        raise ValueError("a callback signature needs a non-empty secret")
    t = int(time.time() if now is None else now)
    return ",".join([f"t={t}", *(f"{SCHEME}={signature(s, body, t)}" for s in secrets)])


def verify(
    secret: Secret | Iterable[Secret],
    header: str | None,
    body: bytes,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> int:
    """Check ``header`` against ``body``; return the signed timestamp.

    Raises a 401 :class:`Problem` that says what is wrong: no secret configured, header missing,
    malformed, timestamp too old or in the future, or a signature that does not match."""
    secrets = _secret_list(secret)
    if not secrets:
        raise _refused("callbacks are refused: no callback_secret is configured for this gateway")
    if header is None or not header.strip():
        raise _refused(f"the {HEADER} header is missing; sign callbacks (docs/channels.md)")
    timestamp, candidates = _parse(header)
    current = time.time() if now is None else now
    if timestamp < current - tolerance_s:
        raise _refused(
            f"the {HEADER} timestamp is {int(current - timestamp)} s old; the limit is "
            f"{int(tolerance_s)} s (check the sender's clock, or this is a replay)"
        )
    if timestamp > current + tolerance_s:
        raise _refused(
            f"the {HEADER} timestamp is {int(timestamp - current)} s in the future; the limit is "
            f"{int(tolerance_s)} s (check the sender's clock)"
        )
    expected = [signature(s, body, timestamp).encode() for s in secrets]
    matched = False
    for given in candidates:
        for want in expected:
            # Every pair is compared, in constant time, so timing reveals nothing.
            matched |= hmac.compare_digest(given.encode(), want)
    if not matched:
        raise _refused(
            f"the {HEADER} signature does not match the body; sign t + '.' + the exact body "
            "bytes with the shared secret"
        )
    return timestamp


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise _malformed(f"{part.strip()!r} is not key=value")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise _malformed("t must appear once, as whole Unix seconds")
            timestamp = int(value)
        elif key == SCHEME:
            if not _HEX64.fullmatch(value):
                raise _malformed("v1 must be 64 lower-case hex digits (HMAC-SHA256)")
            candidates.append(value)
        # Other schemes are ignored, so a sender can add a new one before receivers know it.
    if timestamp is None:
        raise _malformed("t=<unix seconds> is missing")
    if not candidates:
        raise _malformed("v1=<hex hmac> is missing")
    return timestamp, candidates


def _secret_list(secret: Secret | Iterable[Secret]) -> list[Secret]:
    items = [secret] if isinstance(secret, str | bytes) else list(secret)
    return [s for s in items if s]


def _malformed(reason: str) -> Problem:
    return _refused(
        f"the {HEADER} header is malformed ({reason}); expected t=<unix seconds>,v1=<hex>"
    )


def _refused(detail: str) -> Problem:
    problem = unauthorized(detail)
    problem.kind = "bad-signature"
    return problem
