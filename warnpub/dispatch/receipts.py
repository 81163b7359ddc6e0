"""Delivery receipts: a gateway's report that a message arrived (or did not).

A receipt names the delivery by our reference (``wp-<delivery id>``) or by the gateway's own
message id. It may overtake the worker that sent the message (the gateway answers, then
reports delivery before the worker has recorded ``sent``), so ``sending`` rows accept receipts
too; the worker's later write only touches rows still ``sending`` and leaves them alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.channels.base import Receipt, Status
from warnpub.clock import utcnow
from warnpub.dispatch.outbox import Claimed
from warnpub.dispatch.results import advance
from warnpub.storage.tables import Delivery

AWAITING = ("sending", "sent")


async def apply_receipts(
    session: AsyncSession,
    gateway: str,
    receipts: Sequence[Receipt],
    available: frozenset[str] | None = None,
) -> tuple[int, int]:
    """Record receipts from ``gateway``; returns (applied, not matched or already final)."""
    ids = [r.delivery_id for r in receipts if r.delivery_id is not None]
    refs = [r.provider_ref for r in receipts if r.provider_ref]
    if not ids and not refs:
        return 0, len(receipts)
    rows = (
        (
            await session.execute(
                select(Delivery)
                .where(
                    Delivery.gateway == gateway,
                    Delivery.state.in_(AWAITING),
                    or_(Delivery.id.in_(ids), Delivery.provider_ref.in_(refs)),
                )
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    by_id = {d.id: d for d in rows}
    by_ref = {d.provider_ref: d for d in rows if d.provider_ref}
    now = utcnow()
    applied, failed = 0, []
    for r in receipts:
        d = by_id.get(r.delivery_id) if r.delivery_id is not None else None
        d = d or (by_ref.get(r.provider_ref) if r.provider_ref else None)
        if d is None or d.state not in AWAITING:
            continue
        d.state = "delivered" if r.status is Status.DELIVERED else "failed"
        d.final_at = r.at or now
        d.sent_at = d.sent_at or d.final_at
        d.lease_owner = None
        if r.provider_ref and not d.provider_ref:
            d.provider_ref = r.provider_ref
        if d.state == "failed":
            d.last_error = (r.error or "the gateway reported the message undelivered")[:500]
            failed.append(d)
        applied += 1
    await session.flush()
    if failed:
        await advance(session, [_claimed(d) for d in failed], now, available)
    return applied, len(receipts) - applied


def _claimed(d: Delivery) -> Claimed:
    return Claimed(
        d.id or 0,
        d.warning_id,
        d.target_kind,
        d.target_id,
        d.channel,
        d.stage,
        d.route,
        d.tier,
        d.priority,
        d.area_code,
        d.language,
        d.ack_required,
        d.attempts,
        d.created_at,
    )
