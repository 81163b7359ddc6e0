"""Durable timers: review deadlines raise one escalation, expiry expires, and every timer fires
once even with several runners ticking at the same time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.factories import alert_json, seed
from warnpub.api.app import create_app
from warnpub.clock import utcnow
from warnpub.review.timers import HANDLERS
from warnpub.storage.engine import Database
from warnpub.storage.tables import Escalation, Timer, WarningRecord
from warnpub.timers import store
from warnpub.timers.runner import TimerRunner

pytestmark = pytest.mark.postgres


@pytest.fixture
async def world(db, settings):
    return await seed(db, settings)


async def make_due(db: Database, kind: str) -> None:
    async with db.session() as s:
        await s.execute(
            update(Timer).where(Timer.kind == kind).values(due_at=utcnow() - timedelta(seconds=1))
        )


async def test_review_deadline_raises_one_escalation(client, db, settings, world):
    w = await (
        await client.post(
            "/api/v1/warnings", json=alert_json(severity="Severe"), headers=world.agency("QX")
        )
    ).json()
    await make_due(db, "review_deadline")
    runner = TimerRunner(db, HANDLERS, tick_s=1, lease_s=30)
    assert await runner.tick() == 1
    assert await runner.tick() == 0
    esc = await (await client.get("/api/v1/escalations", headers=world.operator("duty1"))).json()
    assert [e["warning_id"] for e in esc["escalations"]] == [w["id"]]
    assert "passed its review deadline" in esc["escalations"][0]["message"]


async def test_no_escalation_when_decided_in_time(client, db, world):
    w = await (
        await client.post("/api/v1/warnings", json=alert_json(), headers=world.agency("QX"))
    ).json()
    await client.post(f"/api/v1/warnings/{w['id']}/approve", headers=world.operator("duty1"))
    await make_due(db, "review_deadline")
    assert await TimerRunner(db, HANDLERS, tick_s=1, lease_s=30).tick() == 0
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(Escalation))).scalar_one() == 0


async def test_expiry_timer_expires_the_warning(client, db, world):
    w = await (
        await client.post("/api/v1/warnings", json=alert_json(), headers=world.agency("QX"))
    ).json()
    await make_due(db, "expire")
    await TimerRunner(db, HANDLERS, tick_s=1, lease_s=30).tick()
    async with db.session() as s:
        assert (await s.get(WarningRecord, w["id"])).state == "expired"


async def test_timers_fire_once_with_concurrent_runners(db):
    fired: list[int] = []

    async def count(session, timer):
        fired.append(timer.id)

    async with db.session() as s:
        for i in range(60):
            await store.schedule(s, "count", utcnow() - timedelta(seconds=1), dedupe_key=f"c{i}")
    runners = [TimerRunner(db, {"count": count}, tick_s=1, lease_s=30) for _ in range(3)]
    results = await asyncio.gather(*(r.tick() for r in runners))
    assert sum(results) == 60 and sorted(fired) == sorted(set(fired)) and len(fired) == 60


async def test_failed_timer_is_retried_later_not_lost(db):
    calls = []

    async def flaky(session, timer):
        calls.append(timer.attempts)
        if len(calls) == 1:
            raise RuntimeError("peer down")

    async with db.session() as s:
        t = await store.schedule(s, "flaky", utcnow() - timedelta(seconds=1))
    runner = TimerRunner(db, {"flaky": flaky}, tick_s=1, lease_s=30)
    assert await runner.tick() == 0
    async with db.session() as s:
        row = await s.get(Timer, t.id)
        assert row.state == "pending" and "peer down" in row.last_error and row.due_at > utcnow()
        row.due_at = utcnow() - timedelta(seconds=1)
    assert await runner.tick() == 1 and len(calls) == 2


async def test_expired_lease_of_dead_runner_is_taken_over(db):
    fired = []

    async def note(session, timer):
        fired.append(timer.id)

    async with db.session() as s:
        await store.schedule(s, "note", utcnow() - timedelta(seconds=1))
    # A runner claims the timer and dies before firing it.
    assert len(await store.claim_due(db, "dead-runner", lease_s=0.05)) == 1
    await asyncio.sleep(0.1)
    assert (
        await TimerRunner(db, {"note": note}, tick_s=1, lease_s=30).tick() == 1 and len(fired) == 1
    )


async def test_state_survives_a_restart(settings, db, world):
    """Submit through one app, drop it, and read everything back through a fresh one."""
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(
        TestServer(create_app(settings, db, run_timers=False), host="127.0.0.1")
    ) as c1:
        w = await (
            await c1.post("/api/v1/warnings", json=alert_json(), headers=world.agency("QX"))
        ).json()
    await db.dispose()
    fresh = Database(settings.database.url, schema=settings.database.schema_name)
    try:
        async with TestClient(
            TestServer(create_app(settings, fresh, run_timers=True), host="127.0.0.1")
        ) as c2:
            got = await (
                await c2.get(f"/api/v1/warnings/{w['id']}", headers=world.agency("QX"))
            ).json()
            assert got["state"] == "pending" and got["id"] == w["id"]
    finally:
        await fresh.dispose()
