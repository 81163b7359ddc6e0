"""Credentials: agency API keys, operator passwords and operator bearer tokens.

Only hashes are stored. API keys and tokens carry 256 random bits, so a SHA-256 of them is
enough; passwords are people's, so they get scrypt. Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

KEY_PREFIX = "wpk"
TOKEN_PREFIX = "wpt"  # noqa: S105 (a prefix, not a secret)
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """An API key as shown once to its owner, with what is stored of it."""

    key: str
    prefix: str
    key_hash: str


def issue_api_key() -> IssuedKey:
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return IssuedKey(key, prefix, sha256_hex(key))


def api_key_prefix(key: str) -> str | None:
    """The lookup prefix of a well-formed key, or None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(sha256_hex(key), stored_hash)


def issue_token() -> tuple[str, str]:
    """A bearer token and its stored hash."""
    token = f"{TOKEN_PREFIX}_{secrets.token_urlsafe(32)}"
    return token, sha256_hex(token)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def generate_password() -> str:
    return secrets.token_urlsafe(12)
