"""Recording acknowledgements and in-person visits.

An acknowledgement is recorded once per target and warning (the first one: when and how it
came) in ``acknowledgements``; the target's deliveries that asked for it get
``acknowledged_at`` (what the coverage report counts) and its escalation ladder stops. A
village contact's report that a person was told in person closes that person's visit task
and makes the ``relay`` delivery delivered and acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Person
from warnpub.clock import utcnow
from warnpub.lastkm.tables import Acknowledgement, LadderState, VisitTask
from warnpub.storage.tables import Delivery

OPEN_OR_SENT = ("queued", "sending", "sent", "expired")
ACK_CHUNK = 500  # acknowledgements per INSERT (SQLite's limit on bound values is far above)


async def record_ack(
    session: AsyncSession,
    warning_id: str,
    kind: str,
    target_id: int,
    via: str,
    at: datetime | None = None,
    *,
    reported_by: int | None = None,
    all_deliveries: bool = False,
) -> bool:
    """Record that a target acknowledged a warning; False when it already had (nothing
    changes then). ``all_deliveries`` marks every delivery of the target, not only those that
    asked for an acknowledgement (a device's play or showing)."""
    new = await record_acks(
        session,
        warning_id,
        kind,
        [target_id],
        via,
        at,
        reported_by=reported_by,
        all_deliveries=all_deliveries,
    )
    return bool(new)


async def record_acks(
    session: AsyncSession,
    warning_id: str,
    kind: str,
    target_ids: Sequence[int],
    via: str,
    at: datetime | None = None,
    *,
    reported_by: int | None = None,
    all_deliveries: bool = False,
) -> set[int]:
    """:func:`record_ack` for several targets in three statements whatever their number (a
    village contact's report of a whole visit list); the targets acknowledged now."""
    at = at or utcnow()
    wanted = sorted(set(target_ids))
    if not wanted:
        return set()
    table = Acknowledgement.__table__  # type: ignore[attr-defined]
    dialect = (await session.connection()).dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    new: set[int] = set()
    for i in range(0, len(wanted), ACK_CHUNK):
        values = [
            {
                "warning_id": warning_id,
                "target_kind": kind,
                "target_id": target_id,
                "via": via,
                "at": at,
                "reported_by": reported_by,
            }
            for target_id in wanted[i : i + ACK_CHUNK]
        ]
        stmt = (
            insert(table)
            .values(values)
            .on_conflict_do_nothing(index_elements=["warning_id", "target_kind", "target_id"])
            .returning(table.c.target_id)
        )
        new.update((await session.execute(stmt)).scalars())
    if not new:
        return new
    rows = update(Delivery).where(
        Delivery.warning_id == warning_id,
        Delivery.target_kind == kind,
        Delivery.target_id.in_(sorted(new)),
        Delivery.acknowledged_at.is_(None),
    )
    if not all_deliveries:
        rows = rows.where(Delivery.ack_required.is_(True))
    await session.execute(rows.values(acknowledged_at=at))
    if kind == "person":
        await session.execute(
            update(LadderState)
            .where(
                LadderState.warning_id == warning_id,
                LadderState.person_id.in_(sorted(new)),
                LadderState.state == "waiting",
            )
            .values(state="acknowledged", last_step=f"acknowledged by {via}", updated_at=at)
        )
    return new


@dataclass(frozen=True)
class VisitReport:
    done: list[tuple[int, str]]  # (number, name) closed now
    already: list[tuple[int, str]]  # reported before
    unknown: list[int]  # numbers not on the contact's list
    left: list[tuple[int, str]]  # still open


async def report_visits(
    session: AsyncSession,
    warning_id: str,
    contact_id: int,
    numbers: Sequence[int],
    via: str,
    at: datetime | None = None,
) -> VisitReport:
    """The contact told these people (by their numbers on the contact's list) in person."""
    at = at or utcnow()
    tasks = {
        t.number: t
        for t in (
            await session.execute(
                select(VisitTask)
                .where(VisitTask.warning_id == warning_id, VisitTask.contact_id == contact_id)
                .with_for_update()
            )
        ).scalars()
    }
    names = await _names(session, [t.person_id for t in tasks.values()])
    done: list[tuple[int, str]] = []
    already: list[tuple[int, str]] = []
    unknown: list[int] = []
    closing: list[VisitTask] = []
    for n in dict.fromkeys(numbers):  # each number once, in the order given
        task = tasks.get(n)
        if task is None:
            unknown.append(n)
            continue
        name = names.get(task.person_id, "")
        if task.state == "done":
            already.append((n, name))
            continue
        task.state, task.done_at, task.done_via = "done", at, via
        closing.append(task)
        done.append((n, name))
    if closing:
        # The whole list in a few statements: a report is one reply however long the list.
        delivery_ids = sorted(t.delivery_id for t in closing)
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.state.in_(OPEN_OR_SENT))
            .values(state="delivered", final_at=at, lease_owner=None, lease_until=None)
        )
        await session.execute(
            update(Delivery)
            .where(Delivery.id.in_(delivery_ids), Delivery.acknowledged_at.is_(None))
            .values(acknowledged_at=at)
        )
        await record_acks(
            session,
            warning_id,
            "person",
            [t.person_id for t in closing],
            "in_person",
            at,
            reported_by=contact_id,
        )
    left = sorted(
        (t.number, names.get(t.person_id, "")) for t in tasks.values() if t.state == "open"
    )
    await session.flush()
    return VisitReport(done, already, unknown, left)


async def _names(session: AsyncSession, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Person.id, Person.name).where(Person.id.in_(ids)))
    return {pid: name for pid, name in rows.all()}
