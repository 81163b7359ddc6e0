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
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, insert, select
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

    async def _record(
        self, session: AsyncSession, messages: Sequence[Message]
    ) -> dict[int, Result]:
        """One batch in a few statements whatever its size: the deliveries, people, contacts,
        plans, existing tasks and the contacts' last numbers are each read once (as plain
        rows: no ORM objects), the new tasks are inserted in one statement and the visit
        lists of all contacts in three (:func:`warnpub.lastkm.notices.send_many`). The batch
        holds the write lock while it runs, and the SMS workers wait for it."""
        assert self._settings is not None
        ids = [m.delivery_id for m in messages]
        rows = {
            d.id: d
            for d in await session.execute(
                select(
                    Delivery.id,
                    Delivery.warning_id,
                    Delivery.target_kind,
                    Delivery.target_id,
                    Delivery.priority,
                ).where(Delivery.id.in_(ids))
            )
        }
        people = await _people(
            session, {d.target_id for d in rows.values() if d.target_kind == "person"}
        )
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
        existing: dict[tuple[str, int], int] = {
            (w, p): t
            for w, p, t in await session.execute(
                select(VisitTask.warning_id, VisitTask.person_id, VisitTask.id).where(
                    VisitTask.warning_id.in_(warning_ids),
                    VisitTask.person_id.in_([p for p in people if p is not None]),
                )
            )
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
        new: list[_NewTask] = []
        for m in messages:
            d = rows.get(m.delivery_id)
            person = (
                people.get(d.target_id) if d is not None and d.target_kind == "person" else None
            )
            contact = (
                contacts.get(person.relay_contact_id)
                if person and person.relay_contact_id
                else None
            )
            problem = self._problem(d, person, contact) or _plan_problem(d, plans)
            if problem:
                out[m.delivery_id] = Result(m.delivery_id, Status.PERMANENT, error=problem)
                continue
            assert d is not None and person is not None and contact is not None
            out[m.delivery_id] = Result(m.delivery_id, Status.SENT)
            if (d.warning_id, person.id) in existing:
                continue
            key = (d.warning_id, contact.id)
            number = last_number.get(key, 0) + 1
            last_number[key] = number
            existing[(d.warning_id, person.id)] = 0  # made below
            new.append(
                _NewTask(
                    d.warning_id,
                    person.id,
                    contact.id,
                    number,
                    person.area_code,
                    person.needs,
                    d.id,
                    d.priority,
                )
            )
        if new:
            made = await session.execute(
                insert(VisitTask).returning(VisitTask.id, sort_by_parameter_order=True),
                [t.row() for t in new],
            )
            for task, task_id in zip(new, made.scalars(), strict=True):
                existing[(task.warning_id, task.person_id)] = task_id
        for m in messages:
            d = rows.get(m.delivery_id)
            if out[m.delivery_id].status is Status.SENT and d is not None:
                task_id = existing[(d.warning_id, d.target_id)]
                out[m.delivery_id] = Result(
                    m.delivery_id, Status.SENT, provider_ref=f"visit/{task_id}"
                )
        await self._send_lists(session, new, people, contacts, plans)
        return out

    def _list_priority(self, priorities: Sequence[int]) -> int:
        """A visit list leaves ahead of the warning (a notice's priority), except first come,
        first served (``[dispatch] priority_order = "fifo"``), where nothing goes ahead: the
        list takes the priority of the visits it carries and its turn behind what was queued
        before it."""
        assert self._settings is not None
        if self._settings.dispatch.priority_order != "fifo":
            return notices.NOTICE_PRIORITY
        return min(priorities)

    @staticmethod
    def _problem(d: Any, person: Any, contact: Any) -> str:
        if d is None:
            return "the delivery is gone"
        if person is None:
            return f"person {d.target_id} is gone"
        if contact is None:
            return f"person {person.id} has no village contact to visit them"
        if not contact.phone:
            return f"village contact {contact.id} has no phone to receive the visit list"
        return ""

    async def _send_lists(
        self,
        session: AsyncSession,
        new: Sequence[_NewTask],
        people: Mapping[int | None, Any],
        contacts: Mapping[int | None, Any],
        plans: Mapping[str, AckPlan],
    ) -> None:
        """The new tasks of this batch as one visit list per warning and contact."""
        assert self._settings is not None
        lists: dict[tuple[str, int], list[_NewTask]] = {}
        for task in new:
            lists.setdefault((task.warning_id, task.contact_id), []).append(task)
        if not lists:
            return
        warnings = {
            w.id: w
            for w in (
                await session.execute(
                    select(WarningRecord).where(WarningRecord.id.in_({w for w, _ in lists}))
                )
            ).scalars()
        }
        specs: list[notices.NoticeSpec] = []
        for (warning_id, contact_id), tasks in lists.items():
            contact = contacts[contact_id]
            specs.append(
                notices.NoticeSpec(
                    warning_id=warning_id,
                    kind="visit_list",
                    channel="sms",
                    address=contact.phone,
                    area_code=contact.area_code,
                    person_id=contact.id,
                    language=contact.language or "zh-CN",
                    priority=self._list_priority([t.priority for t in tasks]),
                )
            )
        sent = await notices.send_many(session, specs)
        texts_by_notice: dict[int, str] = {}
        for ((warning_id, _), tasks), spec, (notice_id, delivery_id) in zip(
            lists.items(), specs, sent, strict=True
        ):
            plan = plans[warning_id]
            url = links.url(self._settings.server.public_url, plan.link_key, delivery_id)
            listed = [(t.number, people[t.person_id].name, t.needs) for t in tasks]
            texts_by_notice[notice_id] = texts.visit_list(
                warnings[warning_id], listed, plan.reply_code, url, spec.language
            )
        await notices.set_texts(session, texts_by_notice)


@dataclass(frozen=True, slots=True)
class _NewTask:
    warning_id: str
    person_id: int
    contact_id: int
    number: int
    area_code: str
    needs: int
    delivery_id: int
    priority: int

    def row(self) -> dict[str, Any]:
        return {
            "warning_id": self.warning_id,
            "person_id": self.person_id,
            "contact_id": self.contact_id,
            "number": self.number,
            "area_code": self.area_code,
            "needs": self.needs,
            "delivery_id": self.delivery_id,
        }


async def _people(session: AsyncSession, ids: set[int | None]) -> dict[int | None, Any]:
    """The people of ``ids`` as rows with the columns a visit needs."""
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = await session.execute(
        select(
            Person.id,
            Person.relay_contact_id,
            Person.area_code,
            Person.needs,
            Person.name,
            Person.phone,
            Person.language,
        ).where(Person.id.in_(wanted))
    )
    return {p.id: p for p in rows}


def _plan_problem(d: Any, plans: Mapping[str, AckPlan]) -> str:
    if d is None:
        return "the delivery is gone"
    plan = plans.get(d.warning_id)
    if plan is None:
        return f"warning {d.warning_id} was never released"
    if "sms" not in plan.ladder.get("notice_channels", []):
        return "no SMS channel is configured to send the visit list"
    return ""
