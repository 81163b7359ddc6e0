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
    at = at or utcnow()
    values = {
        "warning_id": warning_id,
        "target_kind": kind,
        "target_id": target_id,
        "via": via,
        "at": at,
        "reported_by": reported_by,
    }
    table = Acknowledgement.__table__  # type: ignore[attr-defined]
    dialect = (await session.connection()).dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table).values(**values).on_conflict_do_nothing(
        index_elements=["warning_id", "target_kind", "target_id"]
    )
    if not (await session.execute(stmt)).rowcount:
        return False
    rows = update(Delivery).where(
        Delivery.warning_id == warning_id,
        Delivery.target_kind == kind,
        Delivery.target_id == target_id,
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
                LadderState.person_id == target_id,
                LadderState.state == "waiting",
            )
            .values(state="acknowledged", last_step=f"acknowledged by {via}", updated_at=at)
        )
    return True


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
    done, already, unknown = [], [], []
    for n in numbers:
        task = tasks.get(n)
        if task is None:
            unknown.append(n)
            continue
        name = names.get(task.person_id, "")
        if task.state == "done":
            already.append((n, name))
            continue
        task.state, task.done_at, task.done_via = "done", at, via
        await session.execute(
            update(Delivery)
            .where(Delivery.id == task.delivery_id, Delivery.state.in_(OPEN_OR_SENT))
            .values(state="delivered", final_at=at, lease_owner=None, lease_until=None)
        )
        await session.execute(
            update(Delivery)
            .where(Delivery.id == task.delivery_id, Delivery.acknowledged_at.is_(None))
            .values(acknowledged_at=at)
        )
        await record_ack(
            session, warning_id, "person", task.person_id, "in_person", at, reported_by=contact_id
        )
        done.append((n, name))
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
