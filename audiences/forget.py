"""Forgetting a person (``warnpub audience forget ID``): every trace of them removed, the
delivery statistics kept.

In ONE transaction (a crash at any point leaves the person as they were):

- ``people``: their row is deleted; people whose village contact they were lose the contact
  (``relay_contact_id`` → NULL).
- ``deliveries`` (their own, ``target_kind = 'person'``): kept, because every count of every
  report is made from them, but they point at no one: ``target_id`` becomes the negative of
  the old id (ids are never negative, so a person added later can never inherit them, even
  where SQLite reuses the highest id), ``route`` (their personal route) becomes
  ``forgotten:<needs flags>`` — the only thing kept of them, so that the counts per needs
  group stay what they were — and their phone number, e-mail address and name are cut from
  the error texts. Rows still waiting to be sent are cancelled.
- ``acknowledgements``, ``ladder_states``, ``visit_tasks``: re-pointed the same way (the
  person, or the village contact who reported or was to visit); waiting ladders are stopped
  and open visit tasks for them closed.
- ``notices`` to them (escalation alerts, answers to their replies, visit lists): the address
  is cleared and the notices' unsent deliveries are cancelled; any notice, escalation, board
  record (``posted_by``) or inbound message that quotes their name, phone number or e-mail
  address has it replaced by ``[forgotten]``.
- ``inbound_messages`` they sent (matched by their phone number) are deleted — unless someone
  else still on the roster shares the number (a family phone): then the messages are theirs
  too and stay.
- ``audit_log``: one ``person.forgotten`` entry naming only the id and how many rows were
  touched. The log is append-only and never held their name or number (entries name people
  by id; :mod:`warnpub.audit.log` masks contact points).

Names of one character are not searched for in free text (they would match everywhere).
Forgetting an id that was already forgotten changes nothing and says so; an id that never
existed is a 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Person
from warnpub.audit.log import append as audit
from warnpub.boards.tables import BoardWarning
from warnpub.clock import utcnow
from warnpub.lastkm.tables import Acknowledgement, LadderState, Notice, VisitTask
from warnpub.logs import mask
from warnpub.problems import invalid, not_found
from warnpub.storage.tables import AuditEntry, Delivery, Escalation, InboundMessage

ACTION = "person.forgotten"
REDACTED = "[forgotten]"
FORGOTTEN_ROUTE = "forgotten:"  # warnpub.reports.query reads the needs after it
# Rows not yet handed to a channel: cancelled, so nothing more is sent to a forgotten person.
UNSENT = ("planned", "queued", "sending")
CANCELLED_ERROR = "cancelled: the person was forgotten"


@dataclass(slots=True)
class Forgotten:
    person_id: int
    already: bool = False
    counts: dict[str, int] = field(default_factory=dict)


def subject(person_id: int) -> str:
    return f"person:{person_id}"


async def was_forgotten(session: AsyncSession, person_id: int) -> bool:
    found = await session.execute(
        select(AuditEntry.seq)
        .where(AuditEntry.action == ACTION, AuditEntry.subject == subject(person_id))
        .limit(1)
    )
    return found.first() is not None


def _phone_forms(phone: str | None) -> list[str]:
    """The number as stored (E.164) and as people write it (national, for +86)."""
    if not phone:
        return []
    forms = [phone]
    if phone.startswith("+86") and len(phone) > 3:
        forms.append(phone[3:])
    return forms


def _needles(person: Person) -> list[str]:
    """The strings that identify the person in free text, longest first."""
    found = _phone_forms(person.phone)
    if person.email:
        found.append(person.email)
    name = (person.name or "").strip()
    if len(name) >= 2:
        found.append(name)
    return sorted({n for n in found if n}, key=len, reverse=True)


def _scrub(text: str, needles: list[str]) -> str:
    for needle in needles:
        text = text.replace(needle, REDACTED)
    return text


def _like(needle: str) -> str:
    escaped = needle.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


async def _redact_column(
    session: AsyncSession, column: Any, needles: list[str], where: Any = None
) -> int:
    """Replace every needle in ``column`` (a text column) with ``[forgotten]``; rows changed."""
    changed = 0
    for needle in needles:
        stmt = (
            update(column.class_)
            .where(column.like(_like(needle), escape="!"))
            .values({column.key: func.replace(column, needle, REDACTED)})
            .execution_options(synchronize_session=False)
        )
        if where is not None:
            stmt = stmt.where(where)
        changed += (await session.execute(stmt)).rowcount or 0
    return changed


async def _update(session: AsyncSession, table: Any, *where: Any, **values: Any) -> int:
    """``UPDATE table SET values WHERE where…``; rows changed."""
    result = await session.execute(
        update(table).where(*where).values(**values).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


async def _cancel_unsent(session: AsyncSession, rows: Any, now: datetime) -> int:
    """Cancel the deliveries of ``rows`` not yet handed to a channel; how many."""
    return await _update(
        session,
        Delivery,
        rows,
        Delivery.state.in_(UNSENT),
        state="cancelled",
        final_at=now,
        lease_owner=None,
        lease_until=None,
        last_error=CANCELLED_ERROR,
    )


async def forget_person(session: AsyncSession, person_id: int, *, actor: str) -> Forgotten:
    """Forget one person inside the caller's transaction (see the module's docstring)."""
    if person_id <= 0:
        raise invalid(f"{person_id} is not a person id (ids are whole numbers from 1)")
    person = (
        await session.execute(select(Person).where(Person.id == person_id).with_for_update())
    ).scalar_one_or_none()
    if person is None:
        if await was_forgotten(session, person_id):
            return Forgotten(person_id, already=True)
        raise not_found(
            f"no person with id {person_id}; the id is the one reports and the console show "
            "(nothing was changed)"
        )
    gone = -person_id
    needles = _needles(person)
    now = utcnow()
    counts: dict[str, int] = {}

    def count(key: str, n: int | None) -> None:
        counts[key] = counts.get(key, 0) + int(n or 0)

    # Their deliveries: unsent rows cancelled; every row kept for the counts, pointing at no one.
    mine = and_(Delivery.target_kind == "person", Delivery.target_id == person_id)
    count("deliveries_cancelled", await _cancel_unsent(session, mine, now))
    errors = (
        await session.execute(
            select(Delivery.id, Delivery.last_error).where(mine, Delivery.last_error != "")
        )
    ).all()
    for delivery_id, error in errors:
        cleaned = mask(_scrub(error, needles))
        if cleaned != error:
            await _update(session, Delivery, Delivery.id == delivery_id, last_error=cleaned[:500])
    count(
        "deliveries",
        await _update(
            session,
            Delivery,
            mine,
            target_id=gone,
            route=f"{FORGOTTEN_ROUTE}{int(person.needs or 0)}",
        ),
    )

    # Acknowledgements they gave, or reported for others as their village contact.
    count(
        "acknowledgements",
        await _update(
            session,
            Acknowledgement,
            Acknowledgement.target_kind == "person",
            Acknowledgement.target_id == person_id,
            target_id=gone,
        ),
    )
    count(
        "acknowledgements",
        await _update(
            session, Acknowledgement, Acknowledgement.reported_by == person_id, reported_by=gone
        ),
    )

    # Escalation ladders: nobody is left to escalate about.
    await _update(
        session,
        LadderState,
        LadderState.person_id == person_id,
        LadderState.state == "waiting",
        state="stopped",
        updated_at=now,
    )
    count(
        "ladder_states",
        await _update(session, LadderState, LadderState.person_id == person_id, person_id=gone),
    )

    # Visit tasks: for them (closed while open), or theirs to make as a village contact.
    await _update(
        session,
        VisitTask,
        VisitTask.person_id == person_id,
        VisitTask.state == "open",
        state="closed",
    )
    count(
        "visit_tasks",
        await _update(session, VisitTask, VisitTask.person_id == person_id, person_id=gone),
    )
    count(
        "visit_tasks",
        await _update(session, VisitTask, VisitTask.contact_id == person_id, contact_id=gone),
    )

    # Notices to them: unsent ones cancelled, the address cleared.
    addresses = [a for a in (person.phone, person.email) if a]
    to_them = or_(
        Notice.person_id == person_id,
        *([Notice.address.in_(addresses)] if addresses else []),
    )
    notice_ids = list((await session.execute(select(Notice.id).where(to_them))).scalars())
    if notice_ids:
        theirs = and_(Delivery.target_kind == "notice", Delivery.target_id.in_(notice_ids))
        count("deliveries_cancelled", await _cancel_unsent(session, theirs, now))
        await _redact_column(session, Delivery.last_error, needles, theirs)
        await _update(session, Notice, Notice.id.in_(notice_ids), address="", person_id=None)
    count("notices", len(notice_ids))

    # Free text elsewhere that quotes them.
    redacted = 0
    redacted += await _redact_column(session, Notice.text, needles)
    redacted += await _redact_column(session, Notice.subject, needles)
    redacted += await _redact_column(session, Escalation.message, needles)
    redacted += await _redact_column(session, BoardWarning.posted_by, needles)
    redacted += await _redact_column(session, InboundMessage.text, needles)

    # What they sent us, unless the number is someone else's too (a family phone).
    phones = _phone_forms(person.phone)
    if phones:
        shared = (
            await session.execute(
                select(func.count())
                .select_from(Person)
                .where(Person.id != person_id, Person.phone == person.phone)
            )
        ).scalar_one()
        if not shared:
            result = await session.execute(
                delete(InboundMessage)
                .where(InboundMessage.sender.in_(phones))
                .execution_options(synchronize_session=False)
            )
            count("inbound_messages_deleted", result.rowcount)
    count("texts_redacted", redacted)

    # The person, last.
    count(
        "people_unlinked",
        await _update(
            session,
            Person,
            Person.relay_contact_id == person_id,
            relay_contact_id=None,
            updated_at=now,
        ),
    )
    await session.execute(
        delete(Person).where(Person.id == person_id).execution_options(synchronize_session=False)
    )
    await audit(session, actor, ACTION, subject(person_id), **counts)
    return Forgotten(person_id, counts=counts)
