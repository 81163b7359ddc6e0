"""Loudspeaker re-broadcasts and stops, and escalation-ladder ticks, are timers of the one
durable store: with three runners ticking at once on PostgreSQL each fires exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from warnpub.clock import utcnow
from warnpub.dispatch import broadcasts
from warnpub.lastkm.plans import TICK
from warnpub.review.timers import HANDLERS
from warnpub.timers import store
from warnpub.timers.runner import TimerRunner

KINDS = (broadcasts.REBROADCAST, broadcasts.STOP, TICK)


async def test_speaker_and_ladder_timers_fire_once_with_three_runners(db):
    assert all(kind in HANDLERS for kind in KINDS), "the runner of every process fires them"
    fired: Counter[int] = Counter()

    async def count(session, timer):
        fired[timer.id] += 1
        await asyncio.sleep(0)  # let the other runners race

    async with db.session() as s:
        for i in range(30):
            for kind in KINDS:
                await store.schedule(
                    s, kind, utcnow() - timedelta(seconds=1), dedupe_key=f"{kind}:{i}"
                )
    runners = [TimerRunner(db, dict.fromkeys(KINDS, count), tick_s=1, lease_s=30) for _ in range(3)]
    results = await asyncio.gather(*(r.tick() for r in runners))
    assert sum(results) == 90 and len(fired) == 90 and set(fired.values()) == {1}
