"""One planner per warning across the cluster.

Every worker process hears that a warning was approved and looks for unplanned warnings; the
plan is resumable (rows are written with ON CONFLICT DO NOTHING), so two planners would not
write a row twice, but each would target and group the whole population again. A session
advisory lock per warning, held on its own connection while the plan runs, lets one process
plan while the others pass; if that process dies its connection closes, the lock goes with it,
and the next poll of another process resumes the plan.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select

from warnpub.storage.engine import Database


def lock_key(warning_id: str) -> int:
    """A signed 64-bit advisory-lock key for a warning's plan."""
    digest = hashlib.sha256(f"warnpub-plan:{warning_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@asynccontextmanager
async def plan_lock(db: Database, warning_id: str) -> AsyncIterator[bool]:
    """Yields True while this process holds the warning's plan lock, False when another one
    does (PostgreSQL; always True elsewhere)."""
    if db.dialect != "postgresql":
        yield True
        return
    key = lock_key(warning_id)
    async with db.engine.connect() as conn:
        got = bool(await conn.scalar(select(func.pg_try_advisory_lock(key))))
        await conn.commit()
        try:
            yield got
        finally:
            if got:
                try:
                    await conn.scalar(select(func.pg_advisory_unlock(key)))
                    await conn.commit()
                except BaseException:
                    # A session lock outlives a rollback: the connection must not go back
                    # to the pool still holding it.
                    await conn.invalidate()
                    raise
