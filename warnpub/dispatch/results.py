"""Recording what happened: results of sends, in bulk, and the step to the route's next stage."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.channels.base import Result, Status
from warnpub.dispatch.outbox import Claimed, insert_rows, parse_route, stage_rows, update_many
from warnpub.dispatch.retry import RetryPolicy
from warnpub.storage.tables import Delivery

FAILED_STATES = ("failed", "expired")


def _row(c: Claimed, **changes: Any) -> dict[str, Any]:
    return {"b_id": c.id, **changes}


async def record(
    session: AsyncSession,
    owner: str,
    claimed: Sequence[Claimed],
    results: dict[int, Result],
    *,
    receipts: bool,
    retry: RetryPolicy,
    now: datetime,
    available: frozenset[str] | None = None,
) -> dict[str, int]:
    """Write every claimed row's outcome; failed rows move their target to the next route step."""
    sent: list[dict[str, Any]] = []
    delivered: list[dict[str, Any]] = []
    retried: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    gave_up: list[Claimed] = []
    for c in claimed:
        r = results.get(c.id) or Result(c.id, Status.TRANSIENT, error="no result from the channel")
        if r.status is Status.SENT:
            sent.append(
                _row(
                    c,
                    state="sent",
                    provider_ref=r.provider_ref,
                    sent_at=now,
                    final_at=None if receipts else now,
                    lease_owner=None,
                    last_error="",
                )
            )
        elif r.status is Status.DELIVERED:
            delivered.append(
                _row(
                    c,
                    state="delivered",
                    provider_ref=r.provider_ref,
                    sent_at=now,
                    final_at=now,
                    lease_owner=None,
                    last_error="",
                )
            )
        elif r.status is Status.TRANSIENT and (
            # A peer's Retry-After pauses that peer (the worker), not the row: another
            # gateway may take the row at once.
            at := retry.next_attempt(now, c.created_at, c.attempts)
        ):
            retried.append(
                _row(
                    c,
                    state="queued",
                    next_attempt_at=at,
                    lease_owner=None,
                    gateway=None,
                    last_error=r.error[:500],
                )
            )
        else:
            reason = r.error or "gave up: retry deadline passed"
            failed.append(
                _row(c, state="failed", final_at=now, lease_owner=None, last_error=reason[:500])
            )
            gave_up.append(c)
    for group in (sent, delivered, retried, failed):
        await update_many(session, owner, group)
    if gave_up:
        await advance(session, gave_up, now, available)
    return {
        "sent": len(sent),
        "delivered": len(delivered),
        "retried": len(retried),
        "failed": len(failed),
    }


async def advance(
    session: AsyncSession,
    failed: Sequence[Claimed],
    now: datetime,
    available: frozenset[str] | None = None,
) -> int:
    """For each target whose every delivery at this step failed, queue the route's next step."""
    new_rows: list[dict[str, Any]] = []
    for c in failed:
        states = (
            (
                await session.execute(
                    select(Delivery.state).where(
                        Delivery.warning_id == c.warning_id,
                        Delivery.target_kind == c.target_kind,
                        Delivery.target_id == c.target_id,
                        Delivery.stage == c.stage,
                    )
                )
            )
            .scalars()
            .all()
        )
        if states and all(s in FAILED_STATES for s in states):
            new_rows += stage_rows(
                c.warning_id,
                c.target_kind,
                c.target_id,
                parse_route(c.route),
                c.stage + 1,
                tier=c.tier,
                priority=c.priority,
                area_code=c.area_code,
                language=c.language,
                ack=c.ack_required,
                now=now,
                available=available,
            )
    await insert_rows(session, new_rows)
    return len(new_rows)
