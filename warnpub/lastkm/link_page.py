"""The page behind an acknowledgement link: who it is for, what it is about, and the
checklist of the people a village contact must tell in person.

Opening the page records nothing (link previews and virus scanners open links too); the
big button does. The token names a delivery (the person's message, or the visit list sent to
a contact) and is checked against the warning's link key and the link's lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Person
from warnpub.clock import utcnow
from warnpub.lastkm import links, texts
from warnpub.lastkm.acks import VisitReport, record_ack, report_visits
from warnpub.lastkm.tables import Acknowledgement, AckPlan, Notice, VisitTask
from warnpub.storage.tables import Delivery, WarningRecord


class LinkInvalid(Exception):
    """Not a link we made (or altered): the page says so and nothing else."""


class LinkExpired(Exception):
    pass


@dataclass
class LinkView:
    warning: WarningRecord
    plan: AckPlan
    person: Person
    subject: str
    text: str
    acknowledged_at: str | None
    tasks: list[dict[str, object]] = field(default_factory=list)
    closed: bool = False


async def resolve(session: AsyncSession, token: str) -> tuple[WarningRecord, AckPlan, Person]:
    parts = links.split(token)
    if parts is None:
        raise LinkInvalid
    delivery_id, sig = parts
    d = await session.get(Delivery, delivery_id)
    if d is None:
        raise LinkInvalid
    plan = await session.get(AckPlan, d.warning_id)
    if plan is None or not links.verify(plan.link_key, delivery_id, sig):
        raise LinkInvalid
    if utcnow() > plan.frozen_at + timedelta(seconds=float(plan.ladder.get("link_ttl_s", 0))):
        raise LinkExpired
    person_id: int | None = None
    if d.target_kind == "person":
        person_id = d.target_id
    elif d.target_kind == "notice":
        notice = await session.get(Notice, d.target_id)
        person_id = notice.person_id if notice is not None else None
    person = await session.get(Person, person_id) if person_id is not None else None
    warning = await session.get(WarningRecord, d.warning_id)
    if person is None or warning is None:
        raise LinkInvalid
    return warning, plan, person


async def view(session: AsyncSession, token: str) -> LinkView:
    warning, plan, person = await resolve(session, token)
    language = person.language or "zh-CN"
    ack = (
        await session.execute(
            select(Acknowledgement.at).where(
                Acknowledgement.warning_id == warning.id,
                Acknowledgement.target_kind == "person",
                Acknowledgement.target_id == person.id,
            )
        )
    ).scalar_one_or_none()
    rows = (
        await session.execute(
            select(VisitTask, Person.name)
            .join(Person, Person.id == VisitTask.person_id)
            .where(VisitTask.warning_id == warning.id, VisitTask.contact_id == person.id)
            .order_by(VisitTask.number)
        )
    ).all()
    tasks = [
        {
            "number": t.number,
            "name": name,
            "needs": texts.needs_text(t.needs, language),
            "done": t.state == "done",
            "open": t.state == "open",
        }
        for t, name in rows
    ]
    info = (warning.alert.get("infos") or [{}])[0]
    return LinkView(
        warning=warning,
        plan=plan,
        person=person,
        subject=texts.subject_of(warning, language),
        text=" ".join(x for x in (info.get("description"), info.get("instruction")) if x),
        acknowledged_at=ack.isoformat() if ack is not None else None,
        tasks=tasks,
        closed=plan.closed_at is not None,
    )


async def confirm(
    session: AsyncSession, token: str, numbers: list[int]
) -> VisitReport | None:
    """The button: acknowledge, and report the ticked people told in person."""
    warning, _plan, person = await resolve(session, token)
    now = utcnow()
    await record_ack(session, warning.id, "person", person.id or 0, "link", now)
    if numbers:
        return await report_visits(session, warning.id, person.id or 0, numbers, "link", now)
    return None
