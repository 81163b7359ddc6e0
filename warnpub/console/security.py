"""Console cookies and CSRF tokens.

The session cookie ``wp_session`` holds an operator token (the same ``wpt_…`` token that
``POST /api/v1/auth/login`` issues); it is HttpOnly, SameSite=Strict, Path=/console and Secure
when ``[server] public_url`` is https. Every POST form carries ``csrf`` = HMAC-SHA256 of the
session token (before sign-in: of a random ``wp_csrf`` cookie) under a key derived from
``[security] secret_key``, or a random key made once per process when that is empty (forms
then expire with a restart). Checks are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web

from warnpub.config import Settings

SESSION_COOKIE = "wp_session"
PRE_SESSION_COOKIE = "wp_csrf"
LANG_COOKIE = "wp_lang"
COOKIE_PATH = "/console"
_PROCESS_KEY = secrets.token_bytes(32)


def _key(settings: Settings) -> bytes:
    secret = settings.security.secret_key
    if not secret:
        return _PROCESS_KEY
    return hashlib.sha256(b"warnpub-console-csrf\0" + secret.encode()).digest()


def csrf_token(settings: Settings, bound_to: str, purpose: str = "session") -> str:
    """The form token for a session (or pre-session) value."""
    mac = hmac.new(_key(settings), f"{purpose}\0{bound_to}".encode(), hashlib.sha256)
    return mac.hexdigest()


def csrf_ok(settings: Settings, bound_to: str | None, given: str, purpose: str = "session") -> bool:
    if not bound_to or not given:
        return False
    return hmac.compare_digest(csrf_token(settings, bound_to, purpose).encode(), given.encode())


def secure_cookies(settings: Settings) -> bool:
    return settings.server.public_url.lower().startswith("https://")


def set_cookie(
    response: web.StreamResponse,
    settings: Settings,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    http_only: bool = True,
) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=http_only,
        samesite="Strict",
        secure=secure_cookies(settings),
        max_age=max_age,
    )


def clear_cookie(response: web.StreamResponse, settings: Settings, name: str) -> None:
    set_cookie(response, settings, name, "", max_age=0)


def new_pre_session() -> str:
    return secrets.token_urlsafe(24)
