"""Operators (值班员), supervisors and admins: accounts, passwords, bearer tokens."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audit.log import append as audit
from warnpub.auth.secrets import check_password, hash_password, issue_token
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.problems import FieldError, conflict, invalid
from warnpub.storage.tables import AuditEntry, Operator, OperatorToken

ROLES = ("operator", "supervisor", "admin")
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10


async def add_operator(
    session: AsyncSession, *, username: str, display_name: str, role: str, password: str, actor: str
) -> Operator:
    errors: list[FieldError] = []
    if not _USERNAME.match(username):
        errors.append(
            FieldError(
                "username",
                "use 2-64 lower-case letters, digits, '.', '_' or '-', starting with a letter",
            )
        )
    if role not in ROLES:
        errors.append(FieldError("role", f"choose one of {', '.join(ROLES)}"))
    if len(password) < MIN_PASSWORD:
        errors.append(FieldError("password", f"use at least {MIN_PASSWORD} characters"))
    if errors:
        raise invalid("the operator cannot be added", errors)
    if (await session.execute(select(Operator).where(Operator.username == username))).first():
        raise conflict(f"an operator named {username} already exists")
    op = Operator(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=hash_password(password),
    )
    session.add(op)
    await session.flush()
    await audit(session, actor, "operator.added", f"operator:{username}", role=role)
    return op


async def list_operators(session: AsyncSession) -> list[Operator]:
    return list((await session.execute(select(Operator).order_by(Operator.username))).scalars())


async def login(
    session: AsyncSession, username: str, password: str, ttl_minutes: int
) -> tuple[Operator, str] | None:
    """Check the password and issue a bearer token; None when refused.

    Every attempt is audited; a refusal returns instead of raising so that the caller's
    transaction commits the ``login.failed`` entry.
    """
    op = (
        (await session.execute(select(Operator).where(Operator.username == username)))
        .scalars()
        .first()
    )
    if op is None or not op.active or not check_password(password, op.password_hash):
        name = username[:64] if op is not None else unknown_name(username)
        await audit(session, f"anonymous:{name}", "login.failed", f"operator:{name}")
        return None
    token, token_hash = issue_token()
    assert op.id is not None
    session.add(
        OperatorToken(
            operator_id=op.id,
            token_hash=token_hash,
            expires_at=utcnow() + timedelta(minutes=ttl_minutes),
        )
    )
    await audit(session, f"operator:{op.username}", "login", f"operator:{op.username}")
    return op, token


def unknown_name(username: str) -> str:
    """How a sign-in with a username that is no operator's is named in the audit log: a digest,
    never the text — people type their password into the username field. The same text gives
    the same digest, so its failures are still counted for the lock-out."""
    digest = hashlib.sha256(b"warnpub-unknown-username\0" + username.encode()).hexdigest()
    return f"unknown-{digest[:16]}"


async def audit_name(session: AsyncSession, username: str) -> str:
    """The username as the audit log names it: itself when it is an operator's, else
    :func:`unknown_name`."""
    found = await session.execute(select(Operator.id).where(Operator.username == username))
    return username[:64] if found.first() is not None else unknown_name(username)


@dataclass(frozen=True, slots=True)
class SignIn:
    """What a sign-in came to: an operator and a token, refused (both None), or locked."""

    operator: Operator | None = None
    token: str | None = None
    locked_until: datetime | None = None


async def sign_in(
    session: AsyncSession, settings: Settings, username: str, password: str
) -> SignIn:
    """A sign-in from the console or the API, under the same lock-out: ``[console]
    max_failed_logins`` failures within ``failure_window_minutes`` lock the username for
    ``lockout_minutes`` (the password is then not even checked, and ``login.locked`` is
    audited); otherwise :func:`login`."""
    cfg = settings.console
    until = await locked_until(
        session,
        username,
        max_failures=cfg.max_failed_logins,
        window=timedelta(minutes=cfg.failure_window_minutes),
        lockout=timedelta(minutes=cfg.lockout_minutes),
    )
    if until is not None:
        name = await audit_name(session, username)
        await audit(session, f"anonymous:{name}", "login.locked", f"operator:{name}")
        return SignIn(locked_until=until)
    result = await login(session, username, password, settings.security.token_ttl_minutes)
    return SignIn() if result is None else SignIn(result[0], result[1])


async def issue_operator_token(
    session: AsyncSession, op: Operator, ttl_minutes: int, actor: str
) -> str:
    token, token_hash = issue_token()
    assert op.id is not None
    session.add(
        OperatorToken(
            operator_id=op.id,
            token_hash=token_hash,
            expires_at=utcnow() + timedelta(minutes=ttl_minutes),
        )
    )
    await audit(session, actor, "operator.token_issued", f"operator:{op.username}")
    return token


async def locked_until(
    session: AsyncSession,
    username: str,
    *,
    max_failures: int,
    window: timedelta,
    lockout: timedelta,
) -> datetime | None:
    """When the lock-out of ``username`` ends, or None when it may sign in.

    Counted from the audit log (no table of its own): ``max_failures`` ``login.failed`` entries
    for the username within ``window`` lock it for ``lockout`` from the last of them. Only
    failures after the last successful ``login`` count.
    """
    subject = f"operator:{await audit_name(session, username)}"
    now = utcnow()
    since = now - window - lockout
    last_ok = (
        await session.execute(
            select(func.max(AuditEntry.at)).where(
                AuditEntry.action == "login", AuditEntry.subject == subject
            )
        )
    ).scalar()
    if last_ok is not None and last_ok > since:
        since = last_ok
    times = list(
        (
            await session.execute(
                select(AuditEntry.at)
                .where(
                    AuditEntry.action == "login.failed",
                    AuditEntry.subject == subject,
                    AuditEntry.at > since,
                )
                .order_by(AuditEntry.at)
            )
        ).scalars()
    )
    until: datetime | None = None
    for i in range(max_failures - 1, len(times)):
        if times[i] - times[i - max_failures + 1] <= window:
            until = times[i] + lockout
    return until if until is not None and until > now else None
