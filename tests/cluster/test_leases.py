"""Lease heartbeats: a gateway slower than the lease does not let the sweeper hand the rows
in flight to another worker; each is sent once, with one attempt."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from tests.cluster.conftest import county, release, until
from tests.dispatch.conftest import sms_config, start_sim
from warnpub.channels.registry import build_channels
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.dispatch.outbox import release_expired_leases
from warnpub.storage.tables import Delivery

LEASE_S = 1.2


async def test_a_heartbeat_keeps_a_lease_alive_past_its_first_deadline(settings, db):
    settings.dispatch.lease_seconds = LEASE_S
    settings.cluster.lease_heartbeat_s = 0.3
    settings.cluster.heartbeat_s = 0.2
    settings.cluster.dead_after_s = 2
    sim, sim_runner = await start_sim(receipts="none", latency_ms=2600)
    world, client = await county(settings, db, people=30)
    settings.channels = {"sms": [sms_config(sim)]}
    dispatcher = Dispatcher(db, settings, build_channels(settings))
    await dispatcher.start()
    try:
        warning = await release(client, world)

        async def sending():
            async with db.reader() as s:
                rows = (
                    (
                        await s.execute(
                            select(Delivery).where(
                                Delivery.warning_id == warning, Delivery.state == "sending"
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
            return rows

        first = await until(sending, "rows claimed and in flight")
        deadline = max(r.lease_until for r in first)  # when the claim's leases ran out
        await asyncio.sleep(LEASE_S + 0.3)  # past it, the gateway still answering
        later = {r.id: r for r in await sending()}
        assert set(later) >= {r.id for r in first}, "rows in flight stay with their worker"
        assert min(r.lease_until for r in later.values()) > deadline + timedelta(seconds=0.2)
        assert await release_expired_leases(db) == 0, "no lease ran out"

        async def done():
            async with db.reader() as s:
                rows = (
                    await s.execute(
                        select(Delivery.state, Delivery.attempts).where(
                            Delivery.warning_id == warning, Delivery.channel == "sms"
                        )
                    )
                ).all()
            return rows if rows and all(state == "sent" for state, _ in rows) else None

        rows = await until(done, "every SMS sent", timeout=15)
        assert {attempts for _, attempts in rows} == {1}, "each sent once, on its first attempt"
        assert sim.gateway.counts["messages"] == len(rows)
        assert sim.gateway.counts.get("duplicates", 0) == 0
        async with db.reader() as s:
            left = await s.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.state == "sending")
            )
        assert left == 0
    finally:
        await dispatcher.stop()
        await client.close()
        await sim_runner.cleanup()
