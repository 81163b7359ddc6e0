"""Faults a real gateway produces: errors, an outage, throttling; failover between gateways;
priority under a gateway's rate limit."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from tests.dispatch.conftest import make_county, start_sim
from warnpub.storage.tables import Delivery

CITY = "320481000000"


def fast_retries(settings) -> None:
    settings.dispatch.retry_base_s = 0.05
    settings.dispatch.retry_max_s = 0.5
    settings.dispatch.breaker_open_s = 0.5


async def sms_rows(db, warning_id: str) -> dict[str, int]:
    async with db.session() as s:
        return dict(
            (
                await s.execute(
                    select(Delivery.state, func.count())
                    .where(Delivery.warning_id == warning_id, Delivery.channel == "sms")
                    .group_by(Delivery.state)
                )
            ).all()
        )


async def run_warning(county) -> dict[str, int]:
    w = await county.submit(severity="Moderate", code=CITY)
    await county.approve(w["id"])
    await county.wait_state(w["id"], "completed", timeout=90)
    return await sms_rows(county.db, w["id"])


async def test_thirty_percent_errors_still_complete(settings, db):
    fast_retries(settings)
    sim, runner = await start_sim(error_rate=0.3, seed=1)
    county, client = await make_county(settings, db, [sim])
    try:
        states = await run_warning(county)
        stats = await sim.stats()
    finally:
        await client.close()
        await runner.cleanup()
    assert stats["injected_errors"] > 0
    assert (
        set(states) == {"delivered"}
        and stats["accepted"] == states["delivered"] == stats["unique_references"]
    )


async def test_ten_second_outage_then_everything_leaves(settings, db):
    fast_retries(settings)
    sim, runner = await start_sim()
    county, client = await make_county(settings, db, [sim])
    try:
        await sim.control(outage_s=10)
        states = await run_warning(county)
        stats = await sim.stats()
        metrics = await (await county.client.get("/metrics")).text()
    finally:
        await client.close()
        await runner.cleanup()
    assert stats["outage_refused"] > 0
    assert set(states) == {"delivered"} and stats["accepted"] == states["delivered"]
    assert 'warnpub_messages_total{channel="sms",instance="sim0",outcome="transient"}' in metrics


async def test_throttling_is_honoured(settings, db):
    fast_retries(settings)
    sim, runner = await start_sim(throttle_per_s=100)
    county, client = await make_county(settings, db, [sim])
    try:
        states = await run_warning(county)
        stats = await sim.stats()
    finally:
        await client.close()
        await runner.cleanup()
    assert stats["throttled"] > 0 and stats["max_per_1s"] <= 100
    assert set(states) == {"delivered"} and stats["accepted"] == states["delivered"]


async def test_failover_to_the_healthy_gateway_and_back(settings, db):
    fast_retries(settings)
    bad, bad_runner = await start_sim()
    good, good_runner = await start_sim()
    county, client = await make_county(settings, db, [bad, good])
    try:
        await bad.control(outage_s=600)
        first = await run_warning(county)
        during = (await bad.stats())["accepted"], (await good.stats())["accepted"]
        worker = next(w for w in county.dispatcher.workers if w.name == "sim0")
        # If it took rows, it was refused with 503 + Retry-After: the worker paused, or its
        # breaker opened, or it was demoted (which depends on how many calls it made first).
        # (A small warning may be claimed by the healthy instance before it takes any.)
        tried = worker.stats.claimed > 0
        assert not tried or (
            worker.health.demoted or worker.breaker.is_open or worker.paused_until > 0
        )
        await bad.control(outage_s=0)
        await asyncio.sleep(1.0)
        # A recovering instance gets probes first, then its share back. A small warning can
        # fit in one claim of the healthy instance, so up to three warnings are sent.
        seconds = []
        for _ in range(3):
            seconds.append(await run_warning(county))
            if (await bad.stats())["accepted"]:
                break
        after = (await bad.stats())["accepted"], (await good.stats())["accepted"]
    finally:
        await client.close()
        await bad_runner.cleanup()
        await good_runner.cleanup()
    assert set(first) == {"delivered"} and during == (0, first["delivered"])
    assert all(set(second) == {"delivered"} for second in seconds)
    assert after[0] > 0, "the recovered gateway was never given work again"


@pytest.mark.parametrize("people", [1200])
async def test_priority_holds_under_a_200_per_second_limit(settings, db, people):
    sim, runner = await start_sim()
    county, client = await make_county(settings, db, [sim], people=people, rate_per_s=200)
    try:
        w = await county.submit(severity="Moderate", code=CITY)
        await county.approve(w["id"])
        await county.wait_state(w["id"], "completed", timeout=90)
        async with db.session() as s:
            rows = {
                f"wp-{i}": t
                for i, t in (
                    await s.execute(
                        select(Delivery.id, Delivery.tier).where(
                            Delivery.warning_id == w["id"], Delivery.channel == "sms"
                        )
                    )
                ).all()
            }
        order = [
            rows[m["reference"]]
            for m in sim.gateway.messages(0, 100_000)["messages"]
            if m["reference"] in rows
        ]
        stats = await sim.stats()
    finally:
        await client.close()
        await runner.cleanup()
    tiers = county.settings.audiences.tiers
    urban = tiers.index("urban_residents")
    first_urban = order.index(urban)
    before = order[:first_urban]
    special, contacts = tiers.index("special_needs"), tiers.index("village_contacts")
    assert order.count(special) and order.count(contacts)
    assert before.count(special) == order.count(special) and before.count(contacts) == order.count(
        contacts
    )
    assert stats["max_per_1s"] <= 200 * 1.05


async def test_a_gateway_with_late_receipts_is_demoted(settings, db):
    fast_retries(settings)
    settings.dispatch.demote_receipt_s = 0.3
    quiet, quiet_runner = await start_sim(receipts="none")
    good, good_runner = await start_sim()
    county, client = await make_county(settings, db, [quiet, good])
    county.settings.dispatch.receipt_timeout_s = 1.0
    try:
        # Both instances take rows, but a small warning can be claimed by one of them before
        # the other wakes: warnings are sent until the quiet gateway has had its 20 messages.
        for _ in range(4):
            await run_warning(county)
            if (await quiet.stats())["accepted"] >= 20:
                break
        assert (await quiet.stats())["accepted"] >= 20
        await asyncio.sleep(0.5)
        await county.dispatcher.sweep()
        slow = next(w for w in county.dispatcher.workers if w.name == "sim0")
        assert slow.health.slow_receipts and slow.health.demoted
        before = (await quiet.stats())["accepted"], (await good.stats())["accepted"]
        await run_warning(county)
        after = (await quiet.stats())["accepted"], (await good.stats())["accepted"]
    finally:
        await client.close()
        await quiet_runner.cleanup()
        await good_runner.cleanup()
    to_quiet, to_good = after[0] - before[0], after[1] - before[1]
    assert to_good > 5 * max(to_quiet, 1), (to_quiet, to_good)
