"""Planning: an approved warning becomes delivery rows, highest priority first, chunk by chunk.

Targets stream from :class:`~warnpub.audiences.targeting.Targeter` (reading one snapshot)
while a writer commits each chunk in its own transaction and wakes the workers, so the first
special-needs message can leave while the rest of a million-row plan is still being written.
Rows are inserted with ON CONFLICT DO NOTHING: a plan cut short by a crash is simply run
again, and ``planned_at`` marks it finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.targeting import Scope, Targeter
from warnpub.audit.log import append as audit
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.dispatch.outbox import insert_rows, plan_rows
from warnpub.review import states
from warnpub.storage.engine import Database
from warnpub.storage.tables import WarningArea, WarningRecord, WarningReference

log = logging.getLogger("warnpub.dispatch")
PLANNABLE = (states.APPROVED, states.DISPATCHING)


async def unplanned(db: Database) -> list[str]:
    """Released warnings whose plan is not finished, most severe first."""
    async with db.reader() as session:
        rows = await session.execute(
            select(WarningRecord.id)
            .where(
                WarningRecord.state.in_(PLANNABLE),
                WarningRecord.planned_at.is_(None),
                WarningRecord.msg_type != "Cancel",
            )
            .order_by(WarningRecord.level_rank, WarningRecord.decided_at)
        )
        return list(rows.scalars())


async def scope_for(session: AsyncSession, warning: WarningRecord) -> Scope:
    """An Update reaches its own areas and those of the warnings it updates."""
    scope = await Scope.of(session, warning)
    if warning.msg_type != "Update":
        return scope
    earlier = (
        select(WarningArea.code)
        .join(WarningReference, WarningReference.referenced_id == WarningArea.warning_id)
        .where(WarningReference.warning_id == warning.id)
    )
    codes = set(scope.codes) | set((await session.execute(earlier)).scalars())
    return Scope(tuple(sorted(codes)), scope.level)


async def _still_plannable(session: AsyncSession, warning_id: str) -> bool:
    state = (
        await session.execute(
            select(WarningRecord.state).where(WarningRecord.id == warning_id).with_for_update()
        )
    ).scalar_one_or_none()
    return state in PLANNABLE


async def plan(
    db: Database, settings: Settings, warning_id: str, wake: Callable[[set[str]], None]
) -> int:
    """Write the plan of one warning; returns the number of rows written in this run."""
    async with db.session() as session:
        # Locked, like every state change: a cancel racing with the start of a plan must not
        # be overwritten by "dispatching".
        warning = (
            (
                await session.execute(
                    select(WarningRecord).where(WarningRecord.id == warning_id).with_for_update()
                )
            )
            .scalars()
            .first()
        )
        if warning is None or warning.state not in PLANNABLE or warning.planned_at is not None:
            return 0
        if warning.state == states.APPROVED:
            states.move(warning, states.DISPATCHING)
            await audit(session, "system", "warning.dispatching", f"warning:{warning.id}")
    queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(maxsize=4)
    written = 0

    # Channels with no configured instance are recorded as failed at once (and the route
    # moves on), rather than waiting for a channel that will never come.
    available = frozenset(settings.channels)

    async def produce() -> None:
        chunk = settings.dispatch.plan_chunk
        pending: list[dict[str, Any]] = []
        async with db.reader() as reader:
            scope = await scope_for(reader, warning)
            async for batch in Targeter(settings).batches(reader, scope):
                pending += plan_rows(warning_id, batch, utcnow(), available)
                while len(pending) >= chunk:
                    await queue.put(pending[:chunk])
                    pending = pending[chunk:]
        if pending:
            await queue.put(pending)
        await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while (rows := await queue.get()) is not None:
            async with db.session() as session:
                # Lock the warning: a cancel or expiry (which locks it too) either comes
                # before this chunk, and the plan stops, or after it, and stops these rows.
                if not await _still_plannable(session, warning_id):
                    log.info(
                        "plan stopped: the warning was cancelled or expired",
                        extra={"warning_id": warning_id},
                    )
                    return written
                await insert_rows(session, rows)
            written += len(rows)
            wake({r["channel"] for r in rows})
        await producer
    finally:
        if not producer.done():
            producer.cancel()
    async with db.session() as session:
        await session.execute(
            update(WarningRecord).where(WarningRecord.id == warning_id).values(planned_at=utcnow())
        )
        await audit(session, "system", "warning.planned", f"warning:{warning_id}", rows=written)
    log.info("plan written", extra={"warning_id": warning_id, "rows": written})
    return written
