"""Recording what happened: results of sends, in bulk, and the step to the route's next stage.

Every write here touches only rows still leased to the recording worker and still ``sending``
(:func:`~warnpub.dispatch.outbox.update_many`): a row that was cancelled, re-leased after its
lease ran out, or already settled by a receipt that overtook its worker is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.channels.base import Result, Status
from warnpub.dispatch.outbox import Claimed, insert_rows, parse_route, stage_rows, update_rows
from warnpub.dispatch.retry import RetryPolicy
from warnpub.storage.tables import Delivery

FAILED_STATES = ("failed", "expired")
NO_RESULT = "no result from the channel"
# Targets whose step states are read in one statement when failures move routes on.
ADVANCE_CHUNK = 500


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
    """Write every claimed row's outcome; failed rows move their target to the next route step.

    One statement per outcome (sent, delivered, queued again, failed), each run for all its
    rows at once."""
    sent_ids: list[int] = []
    sent_refs: list[str | None] = []
    delivered_ids: list[int] = []
    delivered_refs: list[str | None] = []
    retried: list[tuple[int, datetime, str]] = []
    failed: list[tuple[int, str]] = []
    gave_up: list[Claimed] = []
    for c in claimed:
        r = results.get(c.id)
        status = Status.TRANSIENT if r is None else r.status
        if status is Status.SENT:
            sent_ids.append(c.id)
            sent_refs.append(r.provider_ref)  # type: ignore[union-attr]
            continue
        if status is Status.DELIVERED:
            delivered_ids.append(c.id)
            delivered_refs.append(r.provider_ref)  # type: ignore[union-attr]
            continue
        error = NO_RESULT if r is None else r.error
        if status is Status.TRANSIENT and (
            # A peer's Retry-After pauses that peer (the worker), not the row: another
            # gateway may take the row at once.
            at := retry.next_attempt(now, c.created_at, c.attempts)
        ):
            retried.append((c.id, at, error[:500]))
            continue
        failed.append((c.id, (error or "gave up: retry deadline passed")[:500]))
        gave_up.append(c)
    done = {"lease_owner": None, "last_error": ""}
    await update_rows(
        session,
        owner,
        sent_ids,
        same={"state": "sent", "sent_at": now, "final_at": None if receipts else now, **done},
        each={"provider_ref": sent_refs},
    )
    await update_rows(
        session,
        owner,
        delivered_ids,
        same={"state": "delivered", "sent_at": now, "final_at": now, **done},
        each={"provider_ref": delivered_refs},
    )
    if retried:
        ids, ats, errors = zip(*retried, strict=True)
        await update_rows(
            session,
            owner,
            ids,
            same={"state": "queued", "lease_owner": None, "gateway": None},
            each={"next_attempt_at": ats, "last_error": errors},
        )
    if failed:
        ids, errors = zip(*failed, strict=True)
        await update_rows(
            session,
            owner,
            ids,
            same={"state": "failed", "final_at": now, "lease_owner": None},
            each={"last_error": errors},
        )
        await advance(session, gave_up, now, available)
    return {
        "sent": len(sent_ids),
        "delivered": len(delivered_ids),
        "retried": len(retried),
        "failed": len(failed),
    }


async def give_back(
    session: AsyncSession, owner: str, rows: Sequence[Claimed], now: datetime
) -> int:
    """Rows claimed but never sent go back to the queue, due at once, the attempt not counted
    (the worker is stopping, its gateway stopped taking work, or the lease ran too short)."""
    return await update_rows(
        session,
        owner,
        [c.id for c in rows],
        same={
            "state": "queued",
            "next_attempt_at": now,
            "lease_owner": None,
            "lease_until": None,
            "gateway": None,
        },
        each={"attempts": [max(0, c.attempts - 1) for c in rows]},
    )


async def end_unsent(
    session: AsyncSession, owner: str, stopped: dict[int, str], now: datetime
) -> int:
    """Claimed rows whose warning was cancelled or has expired end in that state, unsent."""
    n = 0
    for state in set(stopped.values()):
        n += await update_rows(
            session,
            owner,
            [i for i, s in stopped.items() if s == state],
            same={
                "state": state,
                "final_at": now,
                "lease_owner": None,
                "last_error": f"warning {state} before sending",
            },
        )
    return n


async def advance(
    session: AsyncSession,
    failed: Sequence[Claimed],
    now: datetime,
    available: frozenset[str] | None = None,
) -> int:
    """For each target whose every delivery at this step failed, queue the route's next step."""
    steps: dict[tuple[str, str, int, int], Claimed] = {}
    for c in failed:
        steps.setdefault((c.warning_id, c.target_kind, c.target_id, c.stage), c)
    states: dict[tuple[str, str, int, int], list[str]] = {}
    keys = list(steps)
    columns = (Delivery.warning_id, Delivery.target_kind, Delivery.target_id, Delivery.stage)
    for i in range(0, len(keys), ADVANCE_CHUNK):
        rows = await session.execute(
            select(*columns, Delivery.state).where(
                tuple_(*columns).in_(keys[i : i + ADVANCE_CHUNK])
            )
        )
        for warning_id, kind, target_id, stage, state in rows:
            states.setdefault((warning_id, kind, target_id, stage), []).append(state)
    new_rows: list[dict[str, Any]] = []
    for key, c in steps.items():
        found = states.get(key)
        if found and all(s in FAILED_STATES for s in found):
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
