"""What the timers do when they fire: raise a review deadline escalation, expire a warning;
the loudspeaker kinds (re-broadcast, stop) are handled in :mod:`warnpub.dispatch.broadcasts`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audit.log import append as audit
from warnpub.dispatch import broadcasts
from warnpub.lastkm import ladder
from warnpub.lastkm.plans import TICK
from warnpub.lastkm.supervisors import tell_review_overdue
from warnpub.review import service, states
from warnpub.storage.tables import Escalation, Timer
from warnpub.timers.store import Handler


async def on_review_deadline(session: AsyncSession, timer: Timer) -> None:
    assert timer.warning_id is not None
    warning = await service.load(session, timer.warning_id)
    if warning.state != states.PENDING:
        return
    message = (
        f"{warning.level} warning {warning.id} ({warning.headline or warning.hazard}) "
        f"from {warning.sender} passed its review deadline without a decision"
    )
    session.add(Escalation(warning_id=warning.id, kind="review_deadline", message=message))
    told = await tell_review_overdue(session, warning, timer.payload or {})
    await audit(
        session,
        "system",
        "escalation.raised",
        f"warning:{warning.id}",
        kind="review_deadline",
        supervisors_told=told,
    )


async def on_expiry(session: AsyncSession, timer: Timer) -> None:
    assert timer.warning_id is not None
    await service.expire(session, await service.load(session, timer.warning_id))


HANDLERS: dict[str, Handler] = {
    "review_deadline": on_review_deadline,
    "expire": on_expiry,
    # Loudspeakers: re-broadcast rounds and stop commands (warnpub.dispatch.broadcasts).
    broadcasts.REBROADCAST: broadcasts.on_rebroadcast,
    broadcasts.STOP: broadcasts.on_stop,
    # Escalation ladders of unacknowledged messages (warnpub.lastkm.ladder).
    TICK: ladder.on_tick,
}
