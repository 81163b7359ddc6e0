"""Lease heartbeats: a worker extends the leases of the rows it holds in flight, so that a
slow gateway does not let the sweeper hand them to another worker while they are being sent.

Only rows still ``sending`` and still leased to the worker are extended; the ids returned are
the rows whose lease now runs to ``until`` (a row the sweeper already put back is not).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import literal_column, update
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.storage.tables import Delivery

CHUNK = 1000


async def extend_leases(
    session: AsyncSession, owner: str, ids: Sequence[int], until: datetime
) -> set[int]:
    """Set ``lease_until = until`` on the rows ``ids`` still sending under ``owner``, in id
    order (the same lock order in every transaction). Returns the ids extended."""
    extended: set[int] = set()
    ordered = sorted(ids)
    for i in range(0, len(ordered), CHUNK):
        part = ordered[i : i + CHUNK]
        result = await session.execute(
            update(Delivery)
            .where(
                Delivery.id.in_(part),  # type: ignore[union-attr]
                Delivery.lease_owner == owner,
                Delivery.state == literal_column("'sending'"),
            )
            .values(lease_until=until)
            .returning(Delivery.id)
        )
        extended.update(result.scalars().all())
    return extended
