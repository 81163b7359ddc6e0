"""What a warning's acknowledgements and escalations follow, frozen when it is released.

:func:`freeze` runs in the release transaction (approval or green channel): it gives the
warning its reply code and link key and copies the ladder of its level from the
configuration, so later edits change nothing in flight, and schedules the first ladder tick.
:func:`close` ends the story (Cancel, expiry, an approved Update or final report that replaces
it): the ladder stops, open visit tasks close, and no escalation fires again.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.lastkm.codes import new_code
from warnpub.lastkm.tables import AckPlan, LadderState, VisitTask
from warnpub.storage.tables import WarningRecord
from warnpub.timers import store as timers

TICK = "ladder.tick"
# The first look after release: messages to contacts leave within seconds; the ladder
# starts counting from when each left.
FIRST_TICK_S = 5.0
IN_FORCE = ("pending", "approved", "dispatching", "completed")


def ladder_of(settings: Settings, level: str | None) -> dict[str, Any]:
    """The ladder for ``level`` as it is frozen: plain data, no reference to the settings."""
    cfg = settings.escalation
    ladder = cfg.ladders.get(level) if level else None  # type: ignore[call-overload]
    configured = {kind for kind, instances in settings.channels.items() if instances}
    return {
        "level": level,
        "wait_s": ladder.wait_s if ladder else 0.0,
        "steps": list(ladder.steps) if ladder else [],
        "repeat": ladder.repeat if ladder else 0,
        "resend_channels": [c for c in cfg.resend_channels if c in configured],
        "notice_channels": [c for c in ("sms", "email") if c in configured],
        "supervisors": list(cfg.supervisors),
        "link_ttl_s": cfg.link_ttl_hours * 3600.0,
    }


async def freeze(session: AsyncSession, settings: Settings, warning: WarningRecord) -> AckPlan:
    found = await session.get(AckPlan, warning.id)
    if found is not None:
        return found
    taken = set(
        (
            await session.execute(
                select(AckPlan.reply_code)
                .join(WarningRecord, WarningRecord.id == AckPlan.warning_id)
                .where(WarningRecord.state.in_(IN_FORCE), AckPlan.closed_at.is_(None))
            )
        ).scalars()
    )
    plan = AckPlan(
        warning_id=warning.id,
        reply_code=new_code(taken),
        link_key=secrets.token_hex(32),
        ladder=ladder_of(settings, warning.level),
    )
    if warning.msg_type == "Cancel":
        # A CAP Cancel is not sent to people (it stops what it cancels): nothing to escalate.
        plan.ladder = {**plan.ladder, "steps": []}
    session.add(plan)
    await session.flush()
    if plan.ladder["steps"]:
        await schedule_tick(session, warning.id, utcnow() + timedelta(seconds=FIRST_TICK_S))
    return plan


async def schedule_tick(session: AsyncSession, warning_id: str, due: datetime) -> None:
    """The warning's next ladder tick (one pending tick per warning: an earlier one wins)."""
    await timers.cancel(session, warning_id=warning_id, kinds=(TICK,))
    await timers.schedule(
        session, TICK, due, warning_id=warning_id, dedupe_key=f"{TICK}:{warning_id}"
    )


async def close(session: AsyncSession, warning_id: str, why: str) -> bool:
    """Stop the warning's escalations and close its open visit tasks; False if already closed."""
    plan = await session.get(AckPlan, warning_id, with_for_update=True)
    if plan is None or plan.closed_at is not None:
        return False
    now = utcnow()
    plan.closed_at = now
    await timers.cancel(session, warning_id=warning_id, kinds=(TICK,))
    await session.execute(
        update(LadderState)
        .where(LadderState.warning_id == warning_id, LadderState.state == "waiting")
        .values(state="stopped", last_step=f"stopped: {why}"[:200], updated_at=now)
    )
    await session.execute(
        update(VisitTask)
        .where(VisitTask.warning_id == warning_id, VisitTask.state == "open")
        .values(state="closed")
    )
    return True


def is_final_report(alert: dict[str, Any]) -> bool:
    """A final report (终报): an Update whose info says the threat is over (responseType
    AllClear). It closes the story of the warnings it updates and asks for no escalation."""
    if alert.get("msg_type") != "Update":
        return False
    return any("AllClear" in (info.get("response_types") or []) for info in alert.get("infos", []))
