"""Door-to-door visits by village contacts (entry point ``visit``; route channel ``relay``).

A ``relay`` delivery asks a person's village contact (``relay_contact_id``) to tell them in
person: the special-needs people whose direct routes failed, or who have only this route
(no phone, …). Sending one makes a *visit task* (``visit_tasks``): the person, their needs,
and a small number on the contact's list for this warning. The new tasks of one round are
sent to each contact as one visit list by SMS (a notice, :mod:`warnpub.lastkm.notices`):
numbers, names, needs, the reply code and a signed link to the checklist page.

================================================  ======================================
what happened                                     Result
================================================  ======================================
task made (or already made for this delivery)     SENT, provider_ref ``visit/<task id>``
the person or their contact is gone, the contact  PERMANENT (the route moves on)
has no phone, or the warning asks for no
acknowledgements (it was never released)
the database could not be reached or was busy     TRANSIENT
================================================  ======================================

The receipt is the contact's report ("4821 2 5" by SMS, or ticks on the link page): the task
is done and the delivery delivered and acknowledged. A task not reported within
``receipt_timeout_s`` leaves the delivery expired (unreached, on the report's list).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Person
from warnpub.channels.base import Limits, Message, Result, Status
from warnpub.channels.instance_config import validate_instance
from warnpub.channels.own_database import OwnDatabase
from warnpub.config import Settings, load_settings
from warnpub.lastkm import links, notices, texts
from warnpub.lastkm.tables import AckPlan, VisitTask
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery, WarningRecord

log = logging.getLogger("warnpub.channels.visit")

MAX_ERROR_CHARS = 300


class VisitConfig(BaseModel):
    """One ``[[channels.relay]]`` entry with ``adapter = "visit"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A visit not reported after this is unreached (the delivery expires).
    receipt_timeout_s: float = Field(4 * 3600.0, gt=0)
    max_batch: int = Field(500, ge=1, le=5000)
    # The peer is our own database: a batch is a few statements, so this can be high.
    rate_per_s: float = Field(2000.0, gt=0)
    concurrency: int = Field(1, ge=1, le=8)
    weight: float = Field(1.0, ge=0)


def parse_config(config: Mapping[str, Any]) -> VisitConfig:
    """Validate one instance's configuration; :class:`ChannelError` names every key to fix."""
    return validate_instance(VisitConfig, config, "visit", "docs/last-kilometre.md")


class VisitRelay(OwnDatabase):
    """Village contacts' visits as a :class:`~warnpub.channels.base.Channel`."""

    kind: ClassVar[str] = "relay"

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = cfg = parse_config(config)
        self.limits = Limits(
            max_batch=cfg.max_batch,
            rate_per_s=cfg.rate_per_s,
            burst=max(1, math.ceil(cfg.rate_per_s)),
            concurrency=cfg.concurrency,
            receipts=True,
            receipt_timeout_s=cfg.receipt_timeout_s,
        )
        self.weight = cfg.weight
        self._settings: Settings | None = None

    def __repr__(self) -> str:
        return f"VisitRelay(name={self.name!r})"

    def bind_settings(self, settings: Settings) -> None:
        self._settings = settings

    async def start(self) -> None:
        if self._settings is None:
            self._settings = load_settings()
        s = self._settings
        self._ensure_database(lambda: Database(s.database.url, schema=s.database.schema_name))

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        if not messages:
            return []
        await self.start()
        assert self._db is not None
        try:
            async with self._db.session() as session:
                results = await self._record(session, messages)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            error = f"the database is not available: {type(exc).__name__}: {exc}"
            error = " ".join(error.split())[:MAX_ERROR_CHARS]
            log.warning("visit %s: %s", self.name, error)
            return [Result(m.delivery_id, Status.TRANSIENT, error=error) for m in messages]
        return [results[m.delivery_id] for m in messages]

    async def _record(self, session: AsyncSession, messages: Sequence[Message]) -> dict[int, Result]:
        """One batch in a few statements whatever its size: the deliveries, people, contacts,
        plans, existing tasks and the contacts' last numbers are each read once."""
        assert self._settings is not None
        ids = [m.delivery_id for m in messages]
        rows = {
            d.id: d
            for d in (await session.execute(select(Delivery).where(Delivery.id.in_(ids)))).scalars()
        }
        people = await _people(session, {d.target_id for d in rows.values() if d.target_kind == "person"})
        contacts = await _people(
            session, {p.relay_contact_id for p in people.values() if p.relay_contact_id}
        )
        warning_ids = {d.warning_id for d in rows.values()}
        plans = {
            p.warning_id: p
            for p in (
                await session.execute(select(AckPlan).where(AckPlan.warning_id.in_(warning_ids)))
            ).scalars()
        }
        existing = {
            (t.warning_id, t.person_id): t
            for t in (
                await session.execute(
                    select(VisitTask).where(
                        VisitTask.warning_id.in_(warning_ids),
                        VisitTask.person_id.in_([p for p in people if p is not None]),
                    )
                )
            ).scalars()
        }
        last_number = {
            (w, c): n
            for w, c, n in (
                await session.execute(
                    select(VisitTask.warning_id, VisitTask.contact_id, func.max(VisitTask.number))
                    .where(
                        VisitTask.warning_id.in_(warning_ids),
                        VisitTask.contact_id.in_([c for c in contacts if c is not None]),
                    )
                    .group_by(VisitTask.warning_id, VisitTask.contact_id)
                )
            ).all()
        }
        out: dict[int, Result] = {}
        new: dict[tuple[str, int], list[VisitTask]] = {}
        for m in messages:
            d = rows.get(m.delivery_id)
            person = people.get(d.target_id) if d is not None and d.target_kind == "person" else None
            contact = contacts.get(person.relay_contact_id) if person and person.relay_contact_id else None
            problem = self._problem(d, person, contact) or _plan_problem(d, plans)
            if problem:
                out[m.delivery_id] = Result(m.delivery_id, Status.PERMANENT, error=problem)
                continue
            assert d is not None and person is not None and contact is not None
            task = existing.get((d.warning_id, person.id or 0))
            if task is None:
                key = (d.warning_id, contact.id or 0)
                number = last_number.get(key, 0) + 1
                last_number[key] = number
                task = VisitTask(
                    warning_id=d.warning_id,
                    person_id=person.id or 0,
                    contact_id=contact.id or 0,
                    number=number,
                    area_code=person.area_code,
                    needs=person.needs,
                    delivery_id=d.id or 0,
                )
                session.add(task)
                existing[(d.warning_id, person.id or 0)] = task
                new.setdefault(key, []).append(task)
            out[m.delivery_id] = Result(m.delivery_id, Status.SENT)
        await session.flush()
        for m in messages:
            d = rows.get(m.delivery_id)
            if out[m.delivery_id].status is Status.SENT and d is not None:
                task = existing[(d.warning_id, d.target_id)]
                out[m.delivery_id] = Result(m.delivery_id, Status.SENT, provider_ref=f"visit/{task.id}")
        for (warning_id, contact_id), tasks in new.items():
            priority = self._list_priority([rows[t.delivery_id] for t in tasks])
            await self._send_list(session, warning_id, contacts[contact_id], tasks, people, priority)
        return out

    def _list_priority(self, deliveries: Sequence[Delivery]) -> int:
        """A visit list leaves ahead of the warning (a notice's priority), except first come,
        first served (``[dispatch] priority_order = "fifo"``), where nothing goes ahead: the
        list takes the priority of the visits it carries and its turn behind what was queued
        before it."""
        assert self._settings is not None
        if self._settings.dispatch.priority_order != "fifo":
            return notices.NOTICE_PRIORITY
        return min(d.priority for d in deliveries)

    @staticmethod
    def _problem(d: Delivery | None, person: Person | None, contact: Person | None) -> str:
        if d is None:
            return "the delivery is gone"
        if person is None:
            return f"person {d.target_id} is gone"
        if contact is None:
            return f"person {person.id} has no village contact to visit them"
        if not contact.phone:
            return f"village contact {contact.id} has no phone to receive the visit list"
        return ""

    async def _send_list(
        self,
        session: AsyncSession,
        warning_id: str,
        contact: Person,
        tasks: list[VisitTask],
        people: Mapping[int | None, Person],
        priority: int,
    ) -> None:
        assert self._settings is not None and contact.phone
        warning = await session.get(WarningRecord, warning_id)
        plan = await session.get(AckPlan, warning_id)
        assert warning is not None and plan is not None
        language = contact.language or "zh-CN"
        listed = [(t.number, people[t.person_id].name, t.needs) for t in tasks]
        notice, delivery = await notices.send(
            session,
            warning_id=warning_id,
            kind="visit_list",
            channel="sms",
            address=contact.phone,
            text="",
            area_code=contact.area_code,
            person_id=contact.id,
            language=language,
            priority=priority,
        )
        url = links.url(self._settings.server.public_url, plan.link_key, delivery.id or 0)
        notice.text = texts.visit_list(warning, listed, plan.reply_code, url, language)[:2000]
        await session.flush()


async def _people(session: AsyncSession, ids: set[int | None]) -> dict[int | None, Person]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return {
        p.id: p for p in (await session.execute(select(Person).where(Person.id.in_(wanted)))).scalars()
    }


def _plan_problem(d: Delivery | None, plans: Mapping[str, AckPlan]) -> str:
    if d is None:
        return "the delivery is gone"
    plan = plans.get(d.warning_id)
    if plan is None:
        return f"warning {d.warning_id} was never released"
    if "sms" not in plan.ladder.get("notice_channels", []):
        return "no SMS channel is configured to send the visit list"
    return ""
