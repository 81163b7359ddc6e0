"""Who is using the console: the operator behind the ``wp_session`` cookie, and the language.

The cookie's token is looked up exactly as a bearer token is (:func:`warnpub.auth.callers.identify`),
so a revoked or expired token, or a disabled operator, ends the session at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import update

from warnpub.api.context import services
from warnpub.audit.log import append as audit
from warnpub.auth.callers import identify
from warnpub.auth.secrets import TOKEN_PREFIX, sha256_hex
from warnpub.clock import utcnow
from warnpub.console.security import LANG_COOKIE, SESSION_COOKIE
from warnpub.console.words import DEFAULT, LANGUAGES
from warnpub.problems import Problem
from warnpub.storage.tables import Operator, OperatorToken

STAFF = ("operator", "supervisor", "admin")
AUDIT_ROLES = ("supervisor", "admin")
ADMIN = ("admin",)


class SignInNeeded(Exception):
    """No valid session: the page answers with a redirect to the sign-in page."""


class RoleRefused(Exception):
    def __init__(self, role: str, roles: tuple[str, ...]) -> None:
        super().__init__(role)
        self.role = role
        self.roles = roles


@dataclass(frozen=True, slots=True)
class Session:
    operator: Operator
    token: str

    @property
    def actor(self) -> str:
        return f"operator:{self.operator.username}"


def language(request: web.Request) -> str:
    """``?lang=`` wins (and is remembered in the ``wp_lang`` cookie), then the cookie, then zh."""
    wanted = request.query.get("lang") or request.cookies.get(LANG_COOKIE) or DEFAULT
    wanted = wanted.split("-", 1)[0].lower()
    return wanted if wanted in LANGUAGES else DEFAULT


async def current(request: web.Request, *roles: str) -> Session:
    """The signed-in operator; :class:`SignInNeeded` or :class:`RoleRefused` otherwise."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token.startswith(TOKEN_PREFIX + "_"):
        raise SignInNeeded()
    try:
        async with services(request).db.reader() as session:
            caller = await identify(session, f"Bearer {token}")
    except Problem:
        raise SignInNeeded() from None
    if caller.operator is None:
        raise SignInNeeded()
    wanted = roles or STAFF
    if caller.operator.role not in wanted:
        raise RoleRefused(caller.operator.role, tuple(wanted))
    return Session(caller.operator, token)


async def revoke(request: web.Request, s: Session) -> None:
    """Sign out: the token stops working everywhere (console and API)."""
    async with services(request).db.session() as session:
        await session.execute(
            update(OperatorToken)
            .where(OperatorToken.token_hash == sha256_hex(s.token), OperatorToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await audit(session, s.actor, "logout", s.actor)
