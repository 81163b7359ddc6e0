"""A board's request is its heartbeat, and what it was shown is its receipt.

Every request a board makes (its page, its event stream, a poll, a posted acknowledgement)
records when it was last seen. A digital board's request also records which warnings it was
shown and marks that board's deliveries of them ``delivered``; a paper board's deliveries are
delivered when the village contact confirms the notice is posted (:func:`posted`).

Deliveries are matched by board (device target) and warning, in ``sending`` or ``sent``: a
heartbeat may overtake the worker that records ``sent``, as gateway receipts may
(:mod:`warnpub.dispatch.receipts`); the worker only writes rows still ``sending`` to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Device
from warnpub.boards.tables import BoardCredential, BoardWarning
from warnpub.lastkm.acks import record_ack
from warnpub.storage.tables import Delivery

AWAITING = ("sending", "sent")


async def seen(session: AsyncSession, device: Device, via: str, now: datetime) -> None:
    """Record the board's request (``via``: page, events, poll, posted)."""
    await session.execute(
        update(BoardCredential)
        .where(BoardCredential.device_id == device.id)
        .values(last_seen_at=now, last_seen_via=via)
    )


async def mark_delivered(
    session: AsyncSession,
    device_id: int,
    warning_ids: Sequence[str],
    now: datetime,
) -> int:
    """The board's deliveries of ``warning_ids`` still awaiting it become delivered; how many."""
    if not warning_ids:
        return 0
    # Showing a warning (or the contact confirming its notice is posted) is the board's
    # acknowledgement, recorded with its time and channel (docs/last-kilometre.md).
    values: dict[str, object] = {
        "state": "delivered",
        "final_at": now,
        "sent_at": func.coalesce(Delivery.sent_at, now),
        "lease_owner": None,
        "acknowledged_at": now,
    }
    result = await session.execute(
        update(Delivery)
        .where(
            Delivery.target_kind == "device",
            Delivery.target_id == device_id,
            Delivery.channel == "board",
            Delivery.warning_id.in_(list(warning_ids)),
            Delivery.state.in_(AWAITING),
        )
        .values(**values)
        .returning(Delivery.warning_id)
        .execution_options(synchronize_session=False)
    )
    marked = list(result.scalars())
    for warning_id in set(marked):
        await record_ack(
            session, warning_id, "device", device_id, "board", now, all_deliveries=True
        )
    return len(marked)


async def shown(
    session: AsyncSession, device: Device, warning_ids: Sequence[str], now: datetime
) -> int:
    """A digital board was shown ``warning_ids``: remember the first time it showed each and
    mark its deliveries delivered. Returns the deliveries marked."""
    assert device.id is not None
    if not warning_ids:
        return 0
    known = {
        row.warning_id: row
        for row in (
            await session.execute(
                select(BoardWarning).where(
                    BoardWarning.device_id == device.id,
                    BoardWarning.warning_id.in_(list(warning_ids)),
                )
            )
        ).scalars()
    }
    for warning_id in warning_ids:
        row = known.get(warning_id)
        if row is None:
            session.add(BoardWarning(device_id=device.id, warning_id=warning_id, shown_at=now))
        elif row.shown_at is None:
            row.shown_at = now
    await session.flush()
    return await mark_delivered(session, device.id, warning_ids, now)


async def posted(
    session: AsyncSession, device: Device, warning_id: str, by: str, now: datetime
) -> tuple[datetime, int]:
    """The village contact confirmed the notice of ``warning_id`` is posted on ``device``:
    (when it was first confirmed, deliveries marked). Confirming again changes nothing."""
    assert device.id is not None
    row = await session.get(BoardWarning, (device.id, warning_id), with_for_update=True)
    if row is None:
        row = BoardWarning(device_id=device.id, warning_id=warning_id)
        session.add(row)
    if row.posted_at is None:
        row.posted_at, row.posted_by = now, by[:100]
    await session.flush()
    marked = await mark_delivered(session, device.id, [warning_id], now)
    return row.posted_at, marked
