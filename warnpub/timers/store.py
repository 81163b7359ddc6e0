"""Durable timers: rows with a due time, claimed with a lease so that one process fires each.

A timer fires in one transaction with its effects and its ``done`` mark, so a crash either
leaves it pending (its lease runs out and another tick takes it) or finished, never half-done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.clock import utcnow
from warnpub.storage.engine import Database
from warnpub.storage.tables import Timer

Handler = Callable[[AsyncSession, Timer], Awaitable[None]]
MAX_BACKOFF_S = 300.0


async def schedule(
    session: AsyncSession,
    kind: str,
    due_at: datetime,
    *,
    warning_id: str | None = None,
    dedupe_key: str | None = None,
    payload: dict[str, Any] | None = None,
) -> Timer:
    timer = Timer(
        kind=kind,
        due_at=due_at,
        warning_id=warning_id,
        dedupe_key=dedupe_key,
        payload=payload or {},
    )
    session.add(timer)
    await session.flush()
    return timer


async def cancel(session: AsyncSession, *, warning_id: str, kinds: tuple[str, ...] = ()) -> int:
    """Cancel the pending timers of a warning (all, or only ``kinds``)."""
    stmt = update(Timer).where(Timer.warning_id == warning_id, Timer.state == "pending")
    if kinds:
        stmt = stmt.where(Timer.kind.in_(kinds))
    return (await session.execute(stmt.values(state="cancelled", dedupe_key=None))).rowcount or 0


async def claim_due(db: Database, owner: str, lease_s: float, limit: int = 100) -> list[int]:
    """Lease up to ``limit`` due timers to ``owner`` in one statement; returns their ids."""
    now = utcnow()
    due = (
        select(Timer.id)
        .where(Timer.state == "pending", Timer.due_at <= now)
        .where((Timer.lease_until.is_(None)) | (Timer.lease_until < now))
        .order_by(Timer.due_at)
        .limit(limit)
    )
    if db.dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(Timer)
        .where(Timer.id.in_(due.scalar_subquery()))
        .values(
            lease_owner=owner,
            lease_until=now + timedelta(seconds=lease_s),
            attempts=Timer.attempts + 1,
        )
        .returning(Timer.id)
    )
    async with db.session() as session:
        return sorted((await session.execute(stmt)).scalars().all())


async def fire(db: Database, timer_id: int, owner: str, handlers: dict[str, Handler]) -> bool:
    """Run one claimed timer. True when it fired; False when it was no longer ours or failed."""
    try:
        async with db.session() as session:
            timer = (
                (
                    await session.execute(
                        select(Timer)
                        .where(
                            Timer.id == timer_id,
                            Timer.state == "pending",
                            Timer.lease_owner == owner,
                        )
                        .with_for_update()
                    )
                )
                .scalars()
                .first()
            )
            if timer is None:
                return False
            handler = handlers.get(timer.kind)
            if handler is None:
                raise LookupError(f"no handler for timer kind {timer.kind!r}")
            await handler(session, timer)
            timer.state, timer.fired_at, timer.dedupe_key = "done", utcnow(), None
            return True
    except Exception as exc:
        await _record_failure(db, timer_id, owner, exc)
        raise


async def release(db: Database, owner: str) -> int:
    """Timers leased to ``owner`` and not fired go back at once (a runner that stops)."""
    async with db.session() as session:
        result = await session.execute(
            update(Timer)
            .where(
                Timer.lease_owner == owner,
                Timer.state == "pending",
                Timer.lease_until.is_not(None),  # type: ignore[union-attr]
            )
            .values(lease_until=None, lease_owner=None, attempts=Timer.attempts - 1)
        )
        return result.rowcount or 0


async def _record_failure(db: Database, timer_id: int, owner: str, exc: Exception) -> None:
    async with db.session() as session:
        timer = await session.get(Timer, timer_id)
        if timer is None or timer.lease_owner != owner:
            return
        delay = min(MAX_BACKOFF_S, 2.0**timer.attempts)
        timer.due_at = utcnow() + timedelta(seconds=delay)
        timer.lease_until = None
        timer.last_error = f"{type(exc).__name__}: {exc}"[:1000]
