"""Replies people send by SMS (the gateway's inbound callback), read as acknowledgements and
visit reports (:mod:`warnpub.lastkm.codes` says what a reply may say).

- From a number that is nobody's: stored, nothing else changes, nothing is answered.
- A known sender's reply that matches: the acknowledgement and visit reports are recorded;
  a visit report is answered with what was recorded and who is still to be told.
- A known sender's reply that matches nothing: a polite answer says what to send. At most
  ``ANSWERS_PER_WINDOW`` answers per number in ``ANSWER_WINDOW`` (a loop with an
  auto-responder, or someone testing, costs nothing more).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Person
from warnpub.clock import utcnow
from warnpub.lastkm import notices, texts
from warnpub.lastkm.acks import VisitReport, record_ack, report_visits
from warnpub.lastkm.codes import Reply, parse_reply
from warnpub.lastkm.ladder import ASKED
from warnpub.lastkm.plans import IN_FORCE
from warnpub.lastkm.tables import Acknowledgement, AckPlan, Notice, VisitTask
from warnpub.storage.tables import Delivery, WarningRecord

log = logging.getLogger("warnpub.lastkm")

ANSWER_WINDOW = timedelta(minutes=10)
ANSWERS_PER_WINDOW = 3
# An answer to someone with no warning in force is about the newest of these that reached them.
RECENT_WARNINGS = 20


@dataclass(frozen=True)
class Outcome:
    """What one reply did: ``acknowledged`` warnings, visit numbers recorded, an answer sent."""

    kind: str  # unknown_sender | acknowledged | visits | not_understood | unknown_code | nothing
    acknowledged: tuple[str, ...] = ()
    visits: tuple[int, ...] = ()
    answered: bool = False


async def handle_reply(
    session: AsyncSession, sender: str, text: str, at: datetime | None = None
) -> Outcome:
    at = at or utcnow()
    people = (await session.execute(select(Person).where(Person.phone == sender))).scalars().all()
    if not people:
        log.info("reply from an unknown number ignored", extra={"sender": sender})
        return Outcome("unknown_sender")
    reply = parse_reply(text)
    live = await _live_plans(session, [p.id for p in people if p.id is not None])
    if reply.code is not None:
        return await _with_code(session, people, live, reply, at)
    if reply.numbers:
        return await _visits_only(session, people, live, reply, at)
    if reply.confirms:
        waiting = [(p, plan) for p, plan in live if not await _acked(session, plan, p)]
        if waiting:
            done = []
            for person, plan in waiting:
                await record_ack(session, plan.warning_id, "person", person.id or 0, "sms_reply", at)
                done.append(plan.warning_id)
            return Outcome("acknowledged", acknowledged=tuple(dict.fromkeys(done)))
        answered = await _answer(session, people[0], live, texts.nothing_waiting(_lang(people[0])), at)
        return Outcome("nothing", answered=answered)
    code = live[0][1].reply_code if live else None
    answered = await _answer(session, people[0], live, texts.not_understood(code, _lang(people[0])), at)
    return Outcome("not_understood", answered=answered)


async def _with_code(
    session: AsyncSession,
    people: list[Person],
    live: list[tuple[Person, AckPlan]],
    reply: Reply,
    at: datetime,
) -> Outcome:
    match = [(p, plan) for p, plan in live if plan.reply_code == reply.code]
    if not match:
        right = live[0][1].reply_code if live else None
        assert reply.code is not None
        answered = await _answer(
            session, people[0], live, texts.unknown_code(reply.code, right, _lang(people[0])), at
        )
        return Outcome("unknown_code", answered=answered)
    person, plan = match[0]
    await record_ack(session, plan.warning_id, "person", person.id or 0, "sms_reply", at)
    if not reply.numbers:
        return Outcome("acknowledged", acknowledged=(plan.warning_id,))
    report = await report_visits(session, plan.warning_id, person.id or 0, reply.numbers, "sms_reply", at)
    await _visit_answer(session, person, plan, report, at)
    return Outcome("visits", acknowledged=(plan.warning_id,), visits=tuple(n for n, _ in report.done))


async def _visits_only(
    session: AsyncSession,
    people: list[Person],
    live: list[tuple[Person, AckPlan]],
    reply: Reply,
    at: datetime,
) -> Outcome:
    """"2 5" without a code: the warning of the sender's latest visit list still in force."""
    ids = [p.id for p in people if p.id is not None]
    row = (
        await session.execute(
            select(VisitTask.contact_id, VisitTask.warning_id)
            .join(AckPlan, AckPlan.warning_id == VisitTask.warning_id)
            .where(VisitTask.contact_id.in_(ids), AckPlan.closed_at.is_(None))
            .order_by(VisitTask.created_at.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        code = live[0][1].reply_code if live else None
        answered = await _answer(session, people[0], live, texts.not_understood(code, _lang(people[0])), at)
        return Outcome("not_understood", answered=answered)
    contact_id, warning_id = row
    person = next(p for p in people if p.id == contact_id)
    plan = await session.get(AckPlan, warning_id)
    assert plan is not None
    await record_ack(session, warning_id, "person", contact_id, "sms_reply", at)
    report = await report_visits(session, warning_id, contact_id, reply.numbers, "sms_reply", at)
    await _visit_answer(session, person, plan, report, at)
    return Outcome("visits", acknowledged=(warning_id,), visits=tuple(n for n, _ in report.done))


async def _visit_answer(
    session: AsyncSession, person: Person, plan: AckPlan, report: VisitReport, at: datetime
) -> None:
    text = texts.visits_recorded(report.done + report.already, report.left, report.unknown, _lang(person))
    await _answer(session, person, [(person, plan)], text, at, kind="report_answer")


async def _live_plans(session: AsyncSession, person_ids: list[int]) -> list[tuple[Person, AckPlan]]:
    """(person, plan) of the warnings in force that asked these people to acknowledge or gave
    them a visit list, newest first."""
    if not person_ids:
        return []
    # The plans in force are few; the rows that asked are found per plan through the
    # partial index over ack_required rows (warning_id, target_id).
    in_force = (
        select(AckPlan.warning_id)
        .join(WarningRecord, WarningRecord.id == AckPlan.warning_id)
        .where(AckPlan.closed_at.is_(None), WarningRecord.state.in_(IN_FORCE))
    )
    asked = (
        select(Delivery.warning_id, Delivery.target_id)
        .where(Delivery.warning_id.in_(in_force), Delivery.target_id.in_(person_ids), ASKED)
        .union(
            select(VisitTask.warning_id, VisitTask.contact_id).where(
                VisitTask.contact_id.in_(person_ids)
            )
        )
        .subquery()
    )
    rows = (
        await session.execute(
            select(Person, AckPlan)
            .join(asked, asked.c.target_id == Person.id)
            .join(AckPlan, AckPlan.warning_id == asked.c.warning_id)
            .join(WarningRecord, WarningRecord.id == AckPlan.warning_id)
            .where(AckPlan.closed_at.is_(None), WarningRecord.state.in_(IN_FORCE))
            .order_by(AckPlan.frozen_at.desc())
        )
    ).all()
    return [(p, plan) for p, plan in rows]


async def _acked(session: AsyncSession, plan: AckPlan, person: Person) -> bool:
    found = await session.execute(
        select(Acknowledgement.id).where(
            Acknowledgement.warning_id == plan.warning_id,
            Acknowledgement.target_kind == "person",
            Acknowledgement.target_id == person.id,
        )
    )
    return found.first() is not None


def _lang(person: Person) -> str:
    return person.language or "zh-CN"


async def _answer(
    session: AsyncSession,
    person: Person,
    live: list[tuple[Person, AckPlan]],
    text: str,
    at: datetime,
    kind: str = "reply_answer",
) -> bool:
    """Answer by SMS about the most relevant warning (the latest in force, else the latest
    the person was sent); False when there is none to answer about, or too many answers."""
    assert person.phone is not None
    recent = (
        await session.execute(
            select(func.count())
            .select_from(Notice)
            .where(
                Notice.address == person.phone,
                Notice.kind.in_(("reply_answer", "report_answer")),
                Notice.created_at >= at - ANSWER_WINDOW,
            )
        )
    ).scalar_one()
    if recent >= ANSWERS_PER_WINDOW:
        log.info("reply not answered: answer limit reached", extra={"sender": person.phone})
        return False
    warning_id = live[0][1].warning_id if live else await _latest_sent_to(session, person)
    if warning_id is None:
        return False
    # The reply came in through an SMS gateway, so there is one to answer through.
    await notices.send(
        session,
        warning_id=warning_id,
        kind=kind,
        channel="sms",
        address=person.phone,
        text=text,
        area_code=person.area_code,
        person_id=person.id,
        language=_lang(person),
    )
    return True


async def _latest_sent_to(session: AsyncSession, person: Person) -> str | None:
    """The newest of the recent warnings that were sent to ``person`` (each asked through the
    unique index that starts with the warning, not by scanning every delivery)."""
    recent = (
        await session.execute(
            select(AckPlan.warning_id).order_by(AckPlan.frozen_at.desc()).limit(RECENT_WARNINGS)
        )
    ).scalars().all()
    for warning_id in recent:
        found = await session.execute(
            select(Delivery.id)
            .where(
                Delivery.warning_id == warning_id,
                Delivery.target_kind == "person",
                Delivery.target_id == person.id,
            )
            .limit(1)
        )
        if found.first() is not None:
            return warning_id
    return None
