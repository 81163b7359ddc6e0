"""Escalation ladders: what happens when someone asked to acknowledge does not.

One durable ``ladder.tick`` timer per warning (fired once across processes, in one transaction
with its effects, :mod:`warnpub.timers.store`) reads the people asked to acknowledge — the
deliveries with ``ack_required``, through a partial index — and moves every ladder that is due
one step, then schedules the next tick for the earliest ladder still waiting:

- a person's ladder starts when their first message left (or finally failed: a contact
  whose SMS bounced needs the ladder most) and waits ``wait_s`` for an acknowledgement;
- each wait without one takes the next step of the frozen ladder (``ack_plans.ladder``):
  ``resend`` (a new delivery on the first of ``resend_channels`` not yet tried for the
  person, else a reminder notice by SMS or e-mail), ``duty_officer`` (notices to the town duty
  officers of the person's town), ``supervisors`` (notices to ``[escalation] supervisors``),
  ``console`` (an escalation in ``GET /api/v1/escalations``);
- after ``repeat`` walks of the ladder the person is left ``exhausted`` (the report lists
  them as unacknowledged);
- an acknowledgement (any route) stops it; so do Cancel, expiry and a replacing Update.

The auditor (:func:`audit_ladders`, run by the dispatcher's sweeper) finds warnings whose
ladders still wait but that have no pending tick (a timer lost, a process that died before it
scheduled the next) and schedules one, so escalations resume after a crash.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Area, Person
from warnpub.audit.log import append as audit
from warnpub.clock import utcnow
from warnpub.lastkm import notices, texts
from warnpub.lastkm.plans import IN_FORCE, TICK, close, schedule_tick
from warnpub.lastkm.tables import Acknowledgement, AckPlan, LadderState
from warnpub.review import states
from warnpub.storage.tables import Delivery, Escalation, Timer, WarningRecord

log = logging.getLogger("warnpub.lastkm")

# The rows that ask for an acknowledgement, written so that the partial index over them
# (ix_deliveries_ack, WHERE ack_required) is chosen on SQLite as on PostgreSQL (SQLAlchemy
# writes a bare boolean as "= 1" for SQLite, which the planner does not match to the index).
ASKED = text("deliveries.ack_required")
# While messages that ask for an acknowledgement have not left yet, look again this often.
UNSENT_RECHECK_S = 15.0
TOWN_DIGITS = 9
# Who an escalation alert goes to: (address, channel, language, person id when on the roster).
Recipient = tuple[str, str, str, int | None]  # a town's code is the first 9 digits of its villages' codes


async def on_tick(session: AsyncSession, timer: Timer) -> None:
    assert timer.warning_id is not None
    plan = await session.get(AckPlan, timer.warning_id, with_for_update=True)
    if plan is None or plan.closed_at is not None:
        return
    warning = await session.get(WarningRecord, timer.warning_id)
    if warning is None or warning.state not in IN_FORCE:
        await close(session, timer.warning_id, f"warning {warning.state if warning else 'gone'}")
        return
    now = utcnow()
    due = await advance(session, plan, warning, now)
    if due is not None:
        await schedule_tick(session, warning.id, due)


async def advance(
    session: AsyncSession, plan: AckPlan, warning: WarningRecord, now: datetime
) -> datetime | None:
    """Take every step that is due; when the next tick is due (None: nothing left to watch)."""
    ladder = plan.ladder
    wait = timedelta(seconds=float(ladder["wait_s"]))
    asked = (
        await session.execute(
            select(
                Delivery.target_id,
                func.min(func.coalesce(Delivery.sent_at, Delivery.final_at)),
                func.max(Delivery.acknowledged_at),
                func.count(Delivery.id).filter(
                    Delivery.sent_at.is_(None), Delivery.final_at.is_(None)
                ),
            )
            # Only people are asked to acknowledge (devices acknowledge by playing or showing).
            .where(Delivery.warning_id == warning.id, ASKED)
            .group_by(Delivery.target_id)
        )
    ).all()
    ladders = {
        s.person_id: s
        for s in (
            await session.execute(select(LadderState).where(LadderState.warning_id == warning.id))
        ).scalars()
    }
    acked = set(
        (
            await session.execute(
                select(Acknowledgement.target_id).where(
                    Acknowledgement.warning_id == warning.id,
                    Acknowledgement.target_kind == "person",
                )
            )
        ).scalars()
    )
    next_due: datetime | None = None
    if warning.planned_at is None:
        # The plan is still being written: people asked to acknowledge may be in a later chunk.
        next_due = now + timedelta(seconds=UNSENT_RECHECK_S)
    for person_id, started, ack_at, unsent in asked:
        state = ladders.get(person_id)
        if ack_at is not None or person_id in acked:
            if state is not None and state.state == "waiting":
                state.state, state.updated_at = "acknowledged", now
            continue
        if started is None:
            if unsent:
                next_due = _earliest(next_due, now + timedelta(seconds=UNSENT_RECHECK_S))
            continue
        if state is None:
            state = LadderState(warning_id=warning.id, person_id=person_id, next_at=started + wait)
            session.add(state)
        if state.state != "waiting":
            continue
        if state.next_at <= now:
            await _step(session, plan, warning, state, now)
        if state.state == "waiting":
            next_due = _earliest(next_due, state.next_at)
    await session.flush()
    return next_due


def _earliest(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


async def _step(
    session: AsyncSession, plan: AckPlan, warning: WarningRecord, state: LadderState, now: datetime
) -> None:
    ladder = plan.ladder
    steps: list[str] = ladder["steps"]
    total = len(steps) * int(ladder["repeat"])
    if state.taken >= total:
        state.state, state.updated_at = "exhausted", now
        state.last_step = f"no acknowledgement after {total} escalation steps"
        await audit(
            session, "system", "escalation.exhausted", f"warning:{warning.id}",
            person=state.person_id,
        )
        return
    step = steps[state.taken % len(steps)]
    walk = state.taken // len(steps) + 1
    person = await session.get(Person, state.person_id)
    if person is None:  # forgotten meanwhile: nobody left to escalate about
        state.state, state.last_step, state.updated_at = "stopped", "person removed", now
        return
    did = await STEPS[step](session, plan, warning, person, state, now)
    state.taken += 1
    state.last_step = f"{step}: {did}"[:200]
    state.next_at = now + timedelta(seconds=float(ladder["wait_s"]))
    state.updated_at = now
    await audit(
        session,
        "system",
        "escalation.step",
        f"warning:{warning.id}",
        person=state.person_id,
        step=step,
        round=walk,
        result=did,
    )
    log.info(
        "escalation step",
        extra={"warning_id": warning.id, "person_id": state.person_id, "step": step, "result": did},
    )


async def _resend(
    session: AsyncSession,
    plan: AckPlan,
    warning: WarningRecord,
    person: Person,
    state: LadderState,
    now: datetime,
) -> str:
    rows = (
        await session.execute(
            select(Delivery).where(
                Delivery.warning_id == warning.id,
                Delivery.target_kind == "person",
                Delivery.target_id == person.id,
            )
        )
    ).scalars().all()
    if not rows:
        return "no delivery to resend"
    tried = {d.channel for d in rows}
    first = min(rows, key=lambda d: d.priority)
    for channel in plan.ladder["resend_channels"]:
        if channel in tried or not _reachable(person, channel):
            continue
        session.add(
            Delivery(
                warning_id=warning.id,
                target_kind="person",
                target_id=person.id or 0,
                channel=channel,
                stage=0,
                route=channel,
                tier=first.tier,
                priority=first.priority,
                area_code=first.area_code,
                language=first.language,
                ack_required=True,
                state="queued",
                next_attempt_at=now,
            )
        )
        _reopen(warning)
        return f"sent again by {channel}"
    # Every channel was tried: the same message again as a reminder, by SMS or e-mail.
    for channel in plan.ladder["notice_channels"]:
        address = person.phone if channel == "sms" else person.email
        if address:
            await notices.send(
                session,
                warning_id=warning.id,
                kind="reminder",
                channel=channel,
                address=address,
                text="",  # rendered when sent: the warning's own text, marked as a reminder
                area_code=person.area_code,
                person_id=person.id,
                language=person.language or "zh-CN",
            )
            return f"reminder by {channel}"
    return "no other channel to resend on"


def _reachable(person: Person, channel: str) -> bool:
    if channel in ("sms", "voice"):
        return bool(person.phone)
    if channel == "email":
        return bool(person.email)
    return False


def _reopen(warning: WarningRecord) -> None:
    """A completed warning has rows to send again."""
    if warning.state == states.COMPLETED:
        states.move(warning, states.DISPATCHING)


async def _area_name(session: AsyncSession, code: str) -> str:
    area = await session.get(Area, code)
    return area.name if area is not None else code


async def _duty_officer(
    session: AsyncSession,
    plan: AckPlan,
    warning: WarningRecord,
    person: Person,
    state: LadderState,
    now: datetime,
) -> str:
    town = person.area_code[:TOWN_DIGITS]
    officers = (
        await session.execute(
            select(Person).where(
                Person.role == "town_duty_officer",
                Person.area_code.startswith(town),
                Person.id != person.id,
            )
        )
    ).scalars().all()
    recipients: list[Recipient] = []
    for officer in officers:
        for channel in plan.ladder["notice_channels"]:
            address = officer.phone if channel == "sms" else officer.email
            if address:
                recipients.append((address, channel, officer.language or "zh-CN", officer.id))
                break
    if recipients:
        await _tell(session, plan, warning, person, state, recipients)
        return f"alerted {len(recipients)} town duty officer(s)"
    # Nobody to tell in the town: the console must know, or the escalation would end here.
    await _console(session, plan, warning, person, state, now, why="no town duty officer to alert")
    return "no town duty officer reachable; raised in the console"


async def _supervisors(
    session: AsyncSession,
    plan: AckPlan,
    warning: WarningRecord,
    person: Person,
    state: LadderState,
    now: datetime,
) -> str:
    recipients: list[Recipient] = []
    for address in plan.ladder["supervisors"]:
        channel = notices.address_channel(address, plan.ladder["notice_channels"])
        if channel is not None:
            recipients.append((address, channel, "zh-CN", None))
    if not recipients:
        return "no supervisor address configured"
    await _tell(session, plan, warning, person, state, recipients)
    return f"alerted {len(recipients)} supervisor(s)"


async def _tell(
    session: AsyncSession,
    plan: AckPlan,
    warning: WarningRecord,
    person: Person,
    state: LadderState,
    recipients: list[Recipient],
) -> None:
    """An alert that ``person`` has not acknowledged, as a notice to each recipient."""
    area = await _area_name(session, person.area_code)
    minutes = _minutes(plan, state)
    for address, channel, language, recipient_id in recipients:
        await notices.send(
            session,
            warning_id=warning.id,
            kind="escalation",
            channel=channel,
            address=address,
            text=texts.unacknowledged_alert(
                warning, person.name, _role_zh(person.role, language), area,
                person.phone or "", minutes, language,
            ),
            subject=texts.subject_of(warning, language),
            area_code=person.area_code,
            person_id=recipient_id,
            language=language,
        )


def _minutes(plan: AckPlan, state: LadderState) -> int:
    return max(1, round((state.taken + 1) * float(plan.ladder["wait_s"]) / 60))


def _role_zh(role: str, language: str = "zh-CN") -> str:
    if language.startswith("en"):
        return role.replace("_", " ")
    return {"village_contact": "联络员", "town_duty_officer": "镇值班员"}.get(role, "")


async def _console(
    session: AsyncSession,
    plan: AckPlan,
    warning: WarningRecord,
    person: Person,
    state: LadderState,
    now: datetime,
    why: str = "",
) -> str:
    area = await _area_name(session, person.area_code)
    message = (
        f"{person.role.replace('_', ' ')} {person.name} ({area}) has not acknowledged "
        f"{warning.level or ''} warning {warning.id} ({warning.headline or warning.hazard}) "
        f"after {_minutes(plan, state)} min" + (f"; {why}" if why else "")
    )
    session.add(Escalation(warning_id=warning.id, kind="unacknowledged", message=message[:2000]))
    return "raised in the console"


STEPS = {
    "resend": _resend,
    "duty_officer": _duty_officer,
    "supervisors": _supervisors,
    "console": _console,
}


async def audit_ladders(session: AsyncSession, now: datetime | None = None) -> int:
    """Schedule a tick for every open plan that watches someone but has no pending tick;
    returns how many were resumed."""
    now = now or utcnow()
    pending = (
        select(Timer.warning_id)
        .where(Timer.kind == TICK, Timer.state == "pending")
        .scalar_subquery()
    )
    open_plans = (
        await session.execute(
            select(AckPlan.warning_id)
            .join(WarningRecord, WarningRecord.id == AckPlan.warning_id)
            .where(
                AckPlan.closed_at.is_(None),
                WarningRecord.state.in_(IN_FORCE),
                AckPlan.warning_id.not_in(pending),
            )
        )
    ).scalars().all()
    resumed = 0
    for warning_id in open_plans:
        plan = await session.get(AckPlan, warning_id)
        if plan is None or not plan.ladder.get("steps"):
            continue
        waiting = (
            await session.execute(
                select(func.count())
                .select_from(LadderState)
                .where(LadderState.warning_id == warning_id, LadderState.state == "waiting")
            )
        ).scalar_one()
        # People asked to acknowledge who have not, and whose ladder has not started.
        started = select(LadderState.person_id).where(LadderState.warning_id == warning_id)
        unacked = (
            await session.execute(
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.warning_id == warning_id,
                    ASKED,
                    Delivery.acknowledged_at.is_(None),
                    Delivery.target_id.not_in(started),
                )
            )
        ).scalar_one()
        if not waiting and not unacked:
            continue
        await schedule_tick(session, warning_id, now)
        await audit(
            session, "system", "escalation.resumed", f"warning:{warning_id}",
            waiting=waiting,
        )
        log.warning("escalation ladder resumed", extra={"warning_id": warning_id})
        resumed += 1
    return resumed
