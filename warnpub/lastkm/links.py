"""Short signed acknowledgement links: ``{public_url}/a/{delivery id in base 36}.{signature}``.

The signature is an HMAC-SHA256 of the delivery id under the warning's own link key (made at
release, kept in ``ack_plans``), cut to 12 base64url characters (72 bits): a link cannot be
guessed or altered, survives restarts, and stays short enough for an SMS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import string

SIG_CHARS = 12
_DIGITS = string.digits + string.ascii_lowercase


def to_b36(n: int) -> str:
    if n < 0:
        raise ValueError("negative id")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
        if n == 0:
            return out


def from_b36(text: str) -> int | None:
    if not text or len(text) > 12 or any(c not in _DIGITS for c in text):
        return None
    return int(text, 36)


def signature(link_key: str, delivery_id: int) -> str:
    mac = hmac.new(bytes.fromhex(link_key), f"ack:{delivery_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode()[:SIG_CHARS]


def token(link_key: str, delivery_id: int) -> str:
    return f"{to_b36(delivery_id)}.{signature(link_key, delivery_id)}"


def split(token_text: str) -> tuple[int, str] | None:
    """(delivery id, signature) of a token, or None when it is not one."""
    head, dot, sig = token_text.partition(".")
    delivery_id = from_b36(head)
    if not dot or delivery_id is None or len(sig) != SIG_CHARS:
        return None
    return delivery_id, sig


def verify(link_key: str, delivery_id: int, sig: str) -> bool:
    return hmac.compare_digest(signature(link_key, delivery_id).encode(), sig.encode())


def url(public_url: str, link_key: str, delivery_id: int) -> str:
    return f"{public_url.rstrip('/')}/a/{token(link_key, delivery_id)}"
