"""The workers table: every worker process registers, writes a heartbeat, and leaves.

Times are the database's (``now()``), never a host's clock, so hosts whose clocks disagree
still agree on who is alive, who is older, and what was read after what. A row without a
heartbeat for ``dead_after_s`` is removed by the next heartbeat of any worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update

from warnpub.storage.engine import Database
from warnpub.storage.tables import WorkerRow

WORKERS = WorkerRow.__table__  # type: ignore[attr-defined]
_C = WORKERS.c
_COLUMNS = (_C.id, _C.host, _C.pid, _C.started_at, _C.heartbeat_at, _C.sized_for, _C.view_at)


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    sized_for: int
    view_at: datetime | None


@dataclass(frozen=True, slots=True)
class View:
    """The live workers, oldest first, as read at ``at`` (the transaction's start, database
    time); ``joined``: this worker's row was (re)created by this heartbeat."""

    members: list[Member]
    at: datetime
    joined: bool


async def beat(
    db: Database,
    member_id: str,
    host: str,
    pid: int,
    report: tuple[int, datetime | None],
    dead_after_s: float,
) -> View:
    """Write this worker's heartbeat and its report (``sized_for``, ``view_at``), creating
    its row when missing; remove dead rows; read the live workers, in one transaction."""
    sized_for, view_at = report
    async with db.session() as session:
        at = (
            await session.execute(
                update(WORKERS)
                .where(_C.id == member_id)
                .values(heartbeat_at=func.now(), sized_for=sized_for, view_at=view_at)
                .returning(_C.heartbeat_at)
            )
        ).scalar()
        joined = at is None
        if joined:
            at = (
                await session.execute(
                    insert(WORKERS)
                    .values(
                        id=member_id,
                        host=host[:255],
                        pid=pid,
                        started_at=func.now(),
                        heartbeat_at=func.now(),
                        sized_for=0,
                        view_at=None,
                    )
                    .returning(_C.heartbeat_at)
                )
            ).scalar_one()
        await session.execute(
            delete(WORKERS).where(
                _C.heartbeat_at < func.now() - timedelta(seconds=dead_after_s),
                _C.id != member_id,
            )
        )
        rows = (await session.execute(select(*_COLUMNS).order_by(_C.started_at, _C.id))).all()
    return View([Member(*r) for r in rows], at, joined)


async def leave(db: Database, member_id: str, hold_s: float, dead_after_s: float) -> None:
    """Leave the cluster. With messages still counting in this worker's rate windows
    (``hold_s`` > 0) the row stays until they no longer do: its heartbeat is set so that it
    is dead ``hold_s`` from now, and the others' shares grow only then."""
    async with db.session() as session:
        if hold_s <= 0:
            await session.execute(delete(WORKERS).where(_C.id == member_id))
            return
        await session.execute(
            update(WORKERS)
            .where(_C.id == member_id)
            .values(heartbeat_at=func.now() - timedelta(seconds=dead_after_s - hold_s))
        )


async def members(db: Database) -> list[Member]:
    """Every row, oldest first."""
    async with db.reader() as session:
        rows = (await session.execute(select(*_COLUMNS).order_by(_C.started_at, _C.id))).all()
    return [Member(*r) for r in rows]
