"""Operator review: approve (with four eyes for the severe levels), reject, cancel, post-review.

Every function runs inside the caller's transaction and appends to the audit log there, so a
decision and its audit entry are committed together or not at all.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audit.log import append as audit
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.dispatch import broadcasts, outbox
from warnpub.lastkm import plans as ack_plans
from warnpub.problems import conflict, forbidden, invalid, not_found
from warnpub.review import states
from warnpub.review.policy import approvals_needed
from warnpub.storage.tables import Operator, ReviewDecision, WarningRecord, WarningReference
from warnpub.timers import store as timers


async def load(session: AsyncSession, warning_id: str, *, lock: bool = True) -> WarningRecord:
    stmt = select(WarningRecord).where(WarningRecord.id == warning_id)
    if lock:
        stmt = stmt.with_for_update()
    warning = (await session.execute(stmt)).scalars().first()
    if warning is None:
        raise not_found(f"no warning with id {warning_id}")
    return warning


async def approvals(
    session: AsyncSession, warning_id: str
) -> list[tuple[ReviewDecision, Operator]]:
    rows = await session.execute(
        select(ReviewDecision, Operator)
        .join(Operator, Operator.id == ReviewDecision.operator_id)
        .where(ReviewDecision.warning_id == warning_id, ReviewDecision.decision == "approve")
        .order_by(ReviewDecision.at)
    )
    return [(d, o) for d, o in rows.all()]


async def approve(
    session: AsyncSession, settings: Settings, warning_id: str, op: Operator
) -> WarningRecord:
    """Record ``op``'s approval; release the warning when enough distinct approvers agree."""
    warning = await load(session, warning_id)
    if warning.green_channel and warning.state != states.PENDING:
        return await post_review(session, warning, op)
    if warning.submitted_by_operator_id == op.id:
        raise forbidden(
            "you submitted this warning; a different operator must approve it", kind="self-approval"
        )
    if warning.state != states.PENDING:
        states.move(warning, states.APPROVED)  # raises the 409 that explains why
    given = await approvals(session, warning.id)
    if any(o.id == op.id for _, o in given):
        raise conflict(
            "you have already approved this warning; it needs a second, different approver",
            kind="duplicate-approval",
        )
    needed = approvals_needed(settings, warning.level)
    is_last = len(given) + 1 >= needed
    if needed > 1 and is_last:
        roles = {o.role for _, o in given} | {op.role}
        if not roles & set(settings.review.second_approver_roles):
            raise forbidden(
                f"a {warning.level} warning needs one approval from a "
                f"{' or '.join(settings.review.second_approver_roles)}; ask one to approve it",
                kind="second-approver-role",
            )
    session.add(ReviewDecision(warning_id=warning.id, operator_id=op.id or 0, decision="approve"))
    actor = f"operator:{op.username}"
    await audit(
        session,
        actor,
        "warning.approval_given",
        f"warning:{warning.id}",
        approval=len(given) + 1,
        of=needed,
    )
    if is_last:
        await release(session, settings, warning, actor)
    return warning


async def release(
    session: AsyncSession, settings: Settings, warning: WarningRecord, actor: str
) -> None:
    """pending → approved: stop the review clock, freeze the reply code and escalation ladder
    (:mod:`warnpub.lastkm.plans`) and apply what the message itself says."""
    states.move(warning, states.APPROVED)
    warning.decided_at = utcnow()
    await timers.cancel(session, warning_id=warning.id, kinds=("review_deadline",))
    plan = await ack_plans.freeze(session, settings, warning)
    if ack_plans.is_final_report(warning.alert):
        # A final report (终报) asks for no escalation, and ends those of what it updates.
        await ack_plans.close(session, warning.id, "final report")
        plan.ladder = {**plan.ladder, "steps": []}
    await audit(
        session,
        actor,
        "warning.approved",
        f"warning:{warning.id}",
        level=warning.level,
        green_channel=warning.green_channel,
    )
    if warning.msg_type == "Cancel":
        for ref in await referenced(session, warning.id):
            if ref.state in states.LIVE:
                await _cancel(session, ref, actor, f"cancelled by CAP Cancel {warning.identifier}")
    elif warning.msg_type == "Update":
        # The update (or final report) carries the story on: the ladders and visit lists of
        # what it updates stop; its own messages ask again where they need to.
        for ref in await referenced(session, warning.id):
            await ack_plans.close(session, ref.id, f"updated by {warning.identifier}")


async def post_review(session: AsyncSession, warning: WarningRecord, op: Operator) -> WarningRecord:
    """The after-the-fact review of a green-channel warning that was released at once."""
    if warning.post_reviewed_at is not None:
        raise conflict(
            f"green-channel warning {warning.id} was already reviewed afterwards",
            kind="duplicate-approval",
        )
    session.add(
        ReviewDecision(warning_id=warning.id, operator_id=op.id or 0, decision="post_review")
    )
    warning.post_reviewed_at = utcnow()
    await audit(
        session, f"operator:{op.username}", "warning.post_reviewed", f"warning:{warning.id}"
    )
    return warning


async def reject(
    session: AsyncSession, warning_id: str, op: Operator, reason: str
) -> WarningRecord:
    if not reason.strip():
        raise invalid("give a reason for the rejection; the agency sees it")
    warning = await load(session, warning_id)
    states.move(warning, states.REJECTED)
    warning.decided_at = utcnow()
    session.add(
        ReviewDecision(
            warning_id=warning.id, operator_id=op.id or 0, decision="reject", reason=reason.strip()
        )
    )
    await timers.cancel(session, warning_id=warning.id)
    await audit(
        session,
        f"operator:{op.username}",
        "warning.rejected",
        f"warning:{warning.id}",
        reason=reason.strip(),
    )
    return warning


async def cancel(
    session: AsyncSession, warning_id: str, op: Operator, reason: str
) -> WarningRecord:
    if not reason.strip():
        raise invalid("give a reason for the cancellation")
    warning = await load(session, warning_id)
    session.add(
        ReviewDecision(
            warning_id=warning.id, operator_id=op.id or 0, decision="cancel", reason=reason.strip()
        )
    )
    await _cancel(session, warning, f"operator:{op.username}", reason.strip())
    return warning


async def _cancel(session: AsyncSession, warning: WarningRecord, actor: str, reason: str) -> None:
    states.move(warning, states.CANCELLED)
    await timers.cancel(session, warning_id=warning.id)
    await ack_plans.close(session, warning.id, "cancelled")
    stopped = await outbox.stop_open(session, warning.id, "cancelled", f"cancelled: {reason}"[:500])
    # Speaker groups that got (or are getting) a play command are told to stop, durably.
    await broadcasts.schedule_stop(session, warning.id)
    await audit(session, actor, "warning.cancelled", f"warning:{warning.id}", reason=reason,
                deliveries_stopped=stopped)


async def expire(session: AsyncSession, warning: WarningRecord) -> bool:
    """Expire a live warning whose time is up; False when it had already left the live states."""
    if warning.state not in states.LIVE:
        return False
    states.move(warning, states.EXPIRED)
    await timers.cancel(session, warning_id=warning.id)
    await ack_plans.close(session, warning.id, "expired")
    stopped = await outbox.stop_open(session, warning.id, "expired", "the warning expired")
    await audit(session, "system", "warning.expired", f"warning:{warning.id}", deliveries_stopped=stopped)
    return True


async def referenced(session: AsyncSession, warning_id: str) -> list[WarningRecord]:
    rows = await session.execute(
        select(WarningRecord)
        .join(WarningReference, WarningReference.referenced_id == WarningRecord.id)
        .where(WarningReference.warning_id == warning_id)
        .with_for_update()
    )
    return list(rows.scalars())


async def queue(session: AsyncSession, limit: int = 200) -> list[WarningRecord]:
    """Pending warnings, most severe first, then the closest review deadline."""
    rows = await session.execute(
        select(WarningRecord)
        .where(WarningRecord.state == states.PENDING)
        .order_by(WarningRecord.level_rank, WarningRecord.review_deadline, WarningRecord.created_at)
        .limit(limit)
    )
    return list(rows.scalars())
