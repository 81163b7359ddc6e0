"""Delivery receipts: a gateway's report that a message arrived (or did not).

A receipt names the delivery by our reference (``wp-<delivery id>``) or by the gateway's own
message id. It may overtake the worker that sent the message (the gateway answers, then
reports delivery before the worker has recorded ``sent``), so ``sending`` rows accept receipts
too; the worker's later write only touches rows still ``sending`` and leaves them alone.

What a receipt does to its row:

- ``delivered``: the row is delivered; a receipt that also says the person confirmed (a voice
  call answered with 1 pressed, :class:`~warnpub.callbacks.voice_calls.CallReceipt`) sets
  ``acknowledged_at`` as well.
- ``permanent``: the row failed; when every row of its route step has failed, the target moves
  to the route's next step.
- ``transient`` ("try again later": a call nobody answered, a busy line): with a
  :class:`RetrySchedule`, the row goes back to ``queued`` in the same route step, due
  ``interval_s`` later, while it has been attempted at most ``retries`` times more than once;
  then (or without a schedule) it fails like a permanent receipt.

Call outcomes name their call: an outcome whose call id differs from the row's current one is
left alone (a late or repeated callback of an earlier call must not end the call that is
ringing now).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.callbacks.voice_calls import CallReceipt
from warnpub.channels.base import Receipt, Status
from warnpub.clock import utcnow
from warnpub.dispatch.outbox import Claimed
from warnpub.dispatch.results import advance
from warnpub.lastkm.acks import record_ack
from warnpub.storage.tables import Delivery

AWAITING = ("sending", "sent")
# Channels whose delivery receipt means the target itself took the warning in.
PLAYED_IS_ACK = frozenset({"speaker"})


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """How a "try again later" receipt is retried: up to ``retries`` more attempts,
    ``interval_s`` after the receipt arrived."""

    retries: int
    interval_s: float

    def __post_init__(self) -> None:
        if self.retries < 0 or self.interval_s < 0:
            raise ValueError("retries and interval_s must not be negative")


# The columns a receipt reads: its decision, the acknowledgement, and the next route step.
_COLUMNS = (
    Delivery.id,
    Delivery.warning_id,
    Delivery.target_kind,
    Delivery.target_id,
    Delivery.channel,
    Delivery.stage,
    Delivery.route,
    Delivery.tier,
    Delivery.priority,
    Delivery.area_code,
    Delivery.language,
    Delivery.ack_required,
    Delivery.attempts,
    Delivery.created_at,
    Delivery.state,
    Delivery.provider_ref,
    Delivery.sent_at,
    Delivery.acknowledged_at,
)


async def apply_receipts(
    session: AsyncSession,
    gateway: str,
    receipts: Sequence[Receipt],
    available: frozenset[str] | None = None,
    *,
    retry: RetrySchedule | None = None,
) -> tuple[int, int]:
    """Record receipts from ``gateway``; returns (applied, not matched or already final).

    ``retry`` is the gateway's schedule for TRANSIENT ("try again later") receipts; without
    one they fail the row at once.

    The rows are read as plain columns and written with one executemany per set of changed
    columns (no ORM objects): receipts come back at the gateway's rate, each callback a write
    transaction that the SMS workers' claims wait behind."""
    ids = [r.delivery_id for r in receipts if r.delivery_id is not None]
    refs = [r.provider_ref for r in receipts if r.provider_ref]
    if not ids and not refs:
        return 0, len(receipts)
    found = await session.execute(
        select(*_COLUMNS)
        .where(
            Delivery.gateway == gateway,
            Delivery.state.in_(AWAITING),
            or_(Delivery.id.in_(ids), Delivery.provider_ref.in_(refs)),
        )
        # Locked in id order, the order workers record in: two transactions locking
        # the same rows in different orders deadlock on PostgreSQL.
        .order_by(Delivery.id)
        .with_for_update()
    )
    rows = [row._asdict() for row in found]
    by_id = {d["id"]: d for d in rows}
    by_ref = {d["provider_ref"]: d for d in rows if d["provider_ref"]}
    changed: dict[int, dict[str, Any]] = {}  # row id → the columns to write
    now = utcnow()
    applied, failed = 0, []
    acks: list[tuple[dict[str, Any], str]] = []
    for r in receipts:
        d = by_id.get(r.delivery_id) if r.delivery_id is not None else None
        d = d or (by_ref.get(r.provider_ref) if r.provider_ref else None)
        if d is None or d["state"] not in AWAITING:
            continue
        if _stale_call(r, d):
            continue
        change = changed.setdefault(d["id"], {})
        if r.status is Status.TRANSIENT and retry is not None and d["attempts"] <= retry.retries:
            _again(d, change, r, now, retry)
            applied += 1
            continue
        final_at = r.at or now
        _set(d, change, state="delivered" if r.status is Status.DELIVERED else "failed")
        _set(d, change, final_at=final_at, sent_at=d["sent_at"] or final_at, lease_owner=None)
        if r.provider_ref and not d["provider_ref"]:
            _set(d, change, provider_ref=r.provider_ref)
        if isinstance(r, CallReceipt) and r.acknowledged and d["acknowledged_at"] is None:
            _set(d, change, acknowledged_at=final_at)
            acks.append((d, "voice"))
        elif (
            d["state"] == "delivered"
            and d["channel"] in PLAYED_IS_ACK
            and d["acknowledged_at"] is None
        ):
            # A loudspeaker group's "played" is its acknowledgement.
            _set(d, change, acknowledged_at=final_at)
            acks.append((d, d["channel"]))
        if d["state"] == "failed":
            error = r.error or "the gateway reported the message undelivered"
            if r.status is Status.TRANSIENT:
                error = f"{error}; gave up after {d['attempts']} attempt(s)"
            _set(d, change, last_error=error[:500])
            failed.append(d)
        applied += 1
    await _write(session, changed)
    for d, via in acks:
        await record_ack(
            session,
            d["warning_id"],
            d["target_kind"],
            d["target_id"],
            via,
            d["acknowledged_at"],
            all_deliveries=d["target_kind"] == "device",
        )
    if failed:
        await advance(session, [_claimed(d) for d in failed], now, available)
    return applied, len(receipts) - applied


def _set(d: dict[str, Any], change: dict[str, Any], **values: Any) -> None:
    """Change the row as read (later receipts in the batch see it) and note it to be written."""
    d.update(values)
    change.update(values)


async def _write(session: AsyncSession, changed: dict[int, dict[str, Any]]) -> None:
    """One executemany per set of changed columns, in id order."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row_id in sorted(changed):
        change = changed[row_id]
        if change:
            params = {"row_id": row_id, **{f"new_{c}": v for c, v in change.items()}}
            groups.setdefault(tuple(sorted(change)), []).append(params)
    table = Delivery.__table__  # type: ignore[attr-defined]
    for columns, params in groups.items():
        stmt = (
            update(table)
            .where(table.c.id == bindparam("row_id"))
            .values({c: bindparam(f"new_{c}") for c in columns})
        )
        await session.execute(stmt, params)


def _stale_call(r: Receipt, d: dict[str, Any]) -> bool:
    """A call outcome for another call than the row's current one (an earlier attempt's)."""
    return (
        isinstance(r, CallReceipt)
        and bool(r.provider_ref)
        and bool(d["provider_ref"])
        and r.provider_ref != d["provider_ref"]
    )


def _again(
    d: dict[str, Any], change: dict[str, Any], r: Receipt, now: datetime, retry: RetrySchedule
) -> None:
    """Back to the queue in the same route step, due after the schedule's interval. The claim
    counts the next attempt; the call id is forgotten so the next call's outcome is the one
    that matches."""
    total = retry.retries + 1
    reason = r.error or "try again later"
    error = f"{reason} (attempt {d['attempts']} of {total}; next in {retry.interval_s:g} s)"
    _set(
        d,
        change,
        state="queued",
        next_attempt_at=now + timedelta(seconds=retry.interval_s),
        lease_owner=None,
        lease_until=None,
        gateway=None,
        provider_ref=None,
        sent_at=d["sent_at"] or r.at or now,
        last_error=error[:500],
    )


def _claimed(d: dict[str, Any]) -> Claimed:
    return Claimed(
        d["id"],
        d["warning_id"],
        d["target_kind"],
        d["target_id"],
        d["channel"],
        d["stage"],
        d["route"],
        d["tier"],
        d["priority"],
        d["area_code"],
        d["language"],
        d["ack_required"],
        d["attempts"],
        d["created_at"],
    )
