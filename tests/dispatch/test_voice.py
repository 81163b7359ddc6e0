"""Voice calls end to end: the real app and dispatcher, the gateway simulator placing calls on
loopback and posting signed outcomes to ``/api/v1/callbacks/voice/{name}/outcomes``.

Every person's route here is ``voice`` then ``sms``: a call answered with 1 pressed is delivered
and acknowledged, a call answered without it delivered; no answer is called again on the
instance's schedule and then fails, and the person is sent the SMS of the route's next step.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from tests.dispatch.conftest import SECRET, County, Sim, sms_config, start_sim
from tests.factories import seed
from warnpub.api.app import create_app
from warnpub.audiences.demo_data import DemoOptions, generate
from warnpub.audiences.tables import Person
from warnpub.callbacks.signing import HEADER, sign
from warnpub.channels.registry import build_channels
from warnpub.channels.sms_http import HttpJsonSms
from warnpub.channels.voice_http import HttpVoice
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.storage.tables import Delivery

pytestmark = pytest.mark.postgres
CITY = "320481000000"
VOICE = "voice-sim"
# Until the entry point is installed, the adapters are handed to the registry directly.
FACTORIES = {"http_json": HttpJsonSms, "http_voice": HttpVoice}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class VoiceCounty:
    county: County
    sim: Sim
    base: str

    async def calls(self) -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.sim.url}/voice/calls?limit=100000") as r,
        ):
            return (await r.json())["calls"]

    async def rows(self, warning_id: str) -> list[Delivery]:
        async with self.county.db.session() as s:
            found = await s.execute(select(Delivery).where(Delivery.warning_id == warning_id))
            return list(found.scalars())

    async def release(self) -> str:
        w = await self.county.submit(severity="Moderate", code=CITY)
        await self.county.approve(w["id"])
        return str(w["id"])


async def voice_county(
    settings, db, *, people: int = 40, **voice: Any
) -> tuple[tuple[VoiceCounty, TestClient], Any]:
    """The app with an SMS and a voice instance, both on one simulator."""
    sim, sim_runner = await start_sim(voice_delay_ms=30)
    try:
        return await _county(settings, db, sim, people, voice), sim_runner
    except BaseException:
        await sim_runner.cleanup()
        raise


async def _county(
    settings, db, sim: Sim, people: int, voice: dict[str, Any]
) -> tuple[VoiceCounty, TestClient]:
    world = await seed(db, settings)
    async with db.session() as s:
        await generate(s, DemoOptions(people=people, seed=11, villages_per_town=2))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings.audiences.routes = {"default": ["voice", "sms"]}
    settings.channels = {
        "sms": [sms_config(sim, "sms-sim")],
        "voice": [
            {
                "name": VOICE,
                "adapter": "http_voice",
                "url": f"{sim.url}/voice/calls",
                "callback_url": f"{base}/api/v1/callbacks/voice/{VOICE}/outcomes",
                "callback_secret": SECRET,
                "rate_per_s": 500,
                "concurrency": 8,
                "timeout_s": 5,
                **voice,
            }
        ],
    }
    settings.dispatch.receipt_timeout_s = 30
    dispatcher = Dispatcher(db, settings, build_channels(settings, factories=FACTORIES))
    client = TestClient(
        TestServer(
            create_app(settings, db, run_timers=False, dispatcher=dispatcher),
            host="127.0.0.1",
            port=port,
        )
    )
    await client.start_server()
    await sim.control(callback_url=f"{base}/api/v1/callbacks/sms/sms-sim/receipts")
    county = County(client, db, settings, world, dispatcher)
    return VoiceCounty(county, sim, base), client


@pytest.fixture
async def make(settings, db) -> AsyncIterator[Any]:
    opened: list[tuple[TestClient, Any]] = []

    async def build(**voice: Any) -> VoiceCounty:
        (vc, client), runner = await voice_county(settings, db, **voice)
        opened.append((client, runner))
        return vc

    yield build
    for client, runner in opened:
        await client.close()
        await runner.cleanup()


async def test_pressed_1_is_delivered_and_acknowledged(make):
    vc = await make()
    await vc.sim.control(voice_outcome="confirmed")
    warning_id = await vc.release()
    await vc.county.wait_state(warning_id, "completed")
    rows = await vc.rows(warning_id)
    voice = [d for d in rows if d.channel == "voice"]
    assert voice, "the route's first step is a call"
    assert all(d.state == "delivered" for d in voice), {d.state for d in voice}
    assert all(d.acknowledged_at is not None for d in voice)
    assert all(d.provider_ref and d.provider_ref.startswith("call-") for d in voice)
    # Reached by the first step: no SMS step was planned for anyone.
    assert not [d for d in rows if d.channel == "sms"]
    calls = await vc.calls()
    assert sorted(c["reference"] for c in calls) == sorted(f"wp-{d.id}" for d in voice)
    assert all(c["attempt"] == 1 and c["prompt"] for c in calls)
    stats = (await vc.sim.stats())["calls"]
    assert stats["duplicates"] == 0 and stats["callbacks_dropped"] == 0


async def test_answered_without_1_is_delivered_not_acknowledged(make):
    vc = await make()
    await vc.sim.control(voice_outcome="answered")
    warning_id = await vc.release()
    await vc.county.wait_state(warning_id, "completed")
    voice = [d for d in await vc.rows(warning_id) if d.channel == "voice"]
    assert voice and all(d.state == "delivered" for d in voice)
    assert all(d.acknowledged_at is None for d in voice)


async def test_no_answer_twice_is_retried_then_the_next_step_is_sent(make):
    vc = await make(retries=1, retry_interval_s=0.5)
    await vc.sim.control(voice_outcome="no_answer")
    warning_id = await vc.release()
    await vc.county.wait_state(warning_id, "completed")
    rows = await vc.rows(warning_id)
    voice = [d for d in rows if d.channel == "voice"]
    sms = {d.target_id: d for d in rows if d.channel == "sms"}
    assert voice
    for d in voice:
        assert d.state == "failed" and d.attempts == 2, (d.state, d.attempts, d.last_error)
        assert d.last_error == "no answer; gave up after 2 attempt(s)"
        assert d.acknowledged_at is None
        # The route moved on: the person got the SMS of the next step.
        assert sms[d.target_id].stage == d.stage + 1
        assert sms[d.target_id].state == "delivered"
    calls = await vc.calls()
    by_ref: dict[str, list[dict[str, Any]]] = {}
    for c in calls:
        by_ref.setdefault(c["reference"], []).append(c)
    assert set(by_ref) == {f"wp-{d.id}" for d in voice}
    for ref, placed in by_ref.items():
        assert [c["attempt"] for c in placed] == [1, 2], ref
        assert [c["status"] for c in placed] == ["no_answer", "no_answer"]
        # The second call waited for the schedule (0.5 s after the first one's outcome).
        assert placed[1]["ts"] - placed[0]["ts"] >= 0.5
    assert (await vc.sim.stats())["calls"]["duplicates"] == 0


async def phones(vc: VoiceCounty) -> list[str]:
    async with vc.county.db.session() as s:
        found = await s.execute(select(Person.phone).where(Person.phone.isnot(None)))
        return [p for (p,) in found]


async def test_answered_on_the_second_call_needs_no_sms(make):
    vc = await make(retries=2, retry_interval_s=0.3)
    await vc.sim.control(
        voice_outcome="failed",
        voice_outcomes={p: ["no_answer", "confirmed"] for p in await phones(vc)},
    )
    warning_id = await vc.release()
    await vc.county.wait_state(warning_id, "completed")
    rows = await vc.rows(warning_id)
    voice = [d for d in rows if d.channel == "voice"]
    assert voice and all(d.state == "delivered" and d.attempts == 2 for d in voice)
    assert all(d.acknowledged_at is not None for d in voice)
    assert not [d for d in rows if d.channel == "sms"]
    outcomes = (await vc.sim.stats())["calls"]["outcomes"]
    assert outcomes["no_answer"] == outcomes["confirmed"] == len(voice)


async def test_busy_then_pressed_1_per_number(make):
    vc = await make(retries=2, retry_interval_s=0.2)
    target = (await phones(vc))[0]
    await vc.sim.control(
        voice_outcome="answered", voice_outcomes={target: ["busy", "no_answer", "confirmed"]}
    )
    warning_id = await vc.release()
    await vc.county.wait_state(warning_id, "completed")
    calls = [c for c in await vc.calls() if c["to"] == target]
    assert [c["status"] for c in calls] == ["busy", "no_answer", "confirmed"]
    ref = calls[0]["reference"]
    (row,) = [d for d in await vc.rows(warning_id) if f"wp-{d.id}" == ref]
    assert row.state == "delivered" and row.acknowledged_at is not None and row.attempts == 3
    others = [d for d in await vc.rows(warning_id) if d.channel == "voice" and d.id != row.id]
    assert all(d.state == "delivered" and d.acknowledged_at is None for d in others)


async def test_a_failed_call_moves_on_without_retrying(make):
    vc = await make(retries=2, retry_interval_s=0.2)
    await vc.sim.control(voice_outcome="failed")
    warning_id = await vc.release()
    await vc.county.wait_state(warning_id, "completed")
    rows = await vc.rows(warning_id)
    voice = [d for d in rows if d.channel == "voice"]
    sms = {d.target_id for d in rows if d.channel == "sms" and d.state == "delivered"}
    assert voice and all(d.state == "failed" and d.attempts == 1 for d in voice)
    assert all(d.last_error == "the number is not in service" for d in voice)
    assert {d.target_id for d in voice} <= sms


async def test_outcome_callbacks_are_signed_and_checked(make):
    vc = await make()
    client = vc.county.client
    url = f"/api/v1/callbacks/voice/{VOICE}/outcomes"
    body = json.dumps({"calls": [{"id": "call-x", "reference": "wp-1", "status": "answered"}]})

    async def count() -> int:
        async with vc.county.db.session() as s:
            return int((await s.execute(select(func.count()).select_from(Delivery))).scalar_one())

    before = await count()
    r = await client.post(url, data=body, headers={"Content-Type": "application/json"})
    assert r.status == 401
    r = await client.post(url, data=body, headers={HEADER: sign("wrong secret", body.encode())})
    assert r.status == 401
    r = await client.post(
        "/api/v1/callbacks/voice/nobody/outcomes",
        data=body,
        headers={HEADER: sign(SECRET, body.encode())},
    )
    assert r.status == 404 and "nobody" in (await r.json())["detail"]
    bad = json.dumps({"calls": [{"id": "call-x", "reference": "wp-1", "status": "lost"}]})
    r = await client.post(url, data=bad, headers={HEADER: sign(SECRET, bad.encode())})
    problem = await r.json()
    assert r.status == 422 and problem["errors"][0]["field"] == "calls[0].status", problem
    r = await client.post(url, data=body, headers={HEADER: sign(SECRET, body.encode())})
    assert r.status == 200 and await r.json() == {"applied": 0, "unmatched": 1}
    assert await count() == before


async def test_a_late_outcome_of_an_earlier_call_is_ignored(make):
    vc = await make(retries=1, retry_interval_s=2)
    await vc.sim.control(voice_outcome="no_answer")
    warning_id = await vc.release()

    async def every_row(state: str, attempts: int) -> list[Delivery]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = [d for d in await vc.rows(warning_id) if d.channel == "voice"]
            if rows and all(d.state == state and d.attempts == attempts for d in rows):
                return rows
            await asyncio.sleep(0.05)
        raise AssertionError(f"the voice rows are not all {state} after {attempts} attempt(s)")

    # The first calls end unanswered at once; the second ones ring for a long time.
    await every_row("queued", 1)
    await vc.sim.control(voice_delay_ms=60_000)
    d = (await every_row("sent", 2))[0]
    calls = [c for c in await vc.calls() if c["reference"] == f"wp-{d.id}"]
    assert [c["attempt"] for c in calls] == [1, 2] and d.provider_ref == calls[1]["id"]
    # The gateway repeats the first call's outcome, now saying "answered": it names the
    # delivery, but not the call that is ringing now, so nothing changes.
    late = json.dumps(
        {"calls": [{"id": calls[0]["id"], "reference": f"wp-{d.id}", "status": "answered"}]}
    )
    r = await vc.county.client.post(
        f"/api/v1/callbacks/voice/{VOICE}/outcomes",
        data=late,
        headers={HEADER: sign(SECRET, late.encode())},
    )
    assert r.status == 200 and await r.json() == {"applied": 0, "unmatched": 1}
    (again,) = [x for x in await vc.rows(warning_id) if x.id == d.id]
    assert again.state == "sent" and again.provider_ref == calls[1]["id"]
