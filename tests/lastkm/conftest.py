"""A synthetic village (社渚村, under the real 社渚镇 of Liyang's divisions) with a person in every
needs group, three village contacts and a town duty officer; the real app with its dispatcher,
the gateway simulator on loopback (receipts and replies signed back to the app), the visit
channel, and a timer runner the test ticks."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from tests.dispatch.conftest import Sim, sms_config, start_sim
from tests.factories import TOWN_SHEZHU, VILLAGE_SHEZHU, World, alert_json, seed
from warnpub.api.app import create_app
from warnpub.audiences.needs import Need
from warnpub.audiences.tables import Person
from warnpub.channels.registry import build_channels
from warnpub.config import LadderConfig, Settings
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.review.timers import HANDLERS
from warnpub.storage.engine import Database
from warnpub.timers.runner import TimerRunner

PHONES = {
    "contact_a": "+8613900000001",
    "contact_b": "+8613900000002",
    "contact_c": "+8613900000003",
    "officer": "+8613900000009",
    "elderly": "+8613900000011",
    "hearing": "+8613900000012",
    "visual": "+8613900000013",
    "mobility": "+8613900000015",
    "foreign": "+8613900000016",
    "resident": "+8613900000017",
}
CODE_IN_TEXT = re.compile(r"(?:回复|Reply )(\d{4})")
LINK_IN_TEXT = re.compile(r"(http://127\.0\.0\.1:\d+/a/[0-9a-z]+\.[A-Za-z0-9_-]{12})")


@dataclass
class Village:
    client: TestClient
    db: Database
    settings: Settings
    world: World
    sim: Sim
    dispatcher: Dispatcher
    runner: TimerRunner
    ids: dict[str, int] = field(default_factory=dict)

    async def submit_and_approve(self, **kw: Any) -> str:
        r = await self.client.post(
            "/api/v1/warnings",
            json=alert_json(code=VILLAGE_SHEZHU, **kw),
            headers=self.world.agency("QX"),
        )
        assert r.status == 202, await r.text()
        warning_id = (await r.json())["id"]
        for username in ("duty1", "chief"):
            r = await self.client.post(
                f"/api/v1/warnings/{warning_id}/approve", headers=self.world.operator(username)
            )
            assert r.status == 200, await r.text()
            if (await r.json())["state"] != "pending":
                break
        return warning_id

    async def until(self, check: Callable[[], Awaitable[Any]], what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while not (found := await check()):
            assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
            await self.dispatcher.sweep()
            await self.runner.tick()
            await asyncio.sleep(0.1)
        return found

    def texts_to(self, who: str) -> list[str]:
        phone = PHONES[who]
        return [m["text"] for m in self.sim.gateway.messages(0, 100_000)["messages"] if m["to"] == phone]

    async def reply(self, who: str, text: str, phone: str | None = None) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.post(
            f"{self.sim.url}/inbound", json={"from": phone or PHONES[who], "text": text}
        ) as r:
            assert r.status == 200, await r.text()
            body = await r.json()
        assert body["forwarded"], body
        return body


async def add_people(db: Database) -> dict[str, int]:
    ids: dict[str, int] = {}
    async with db.session() as s:
        def person(key: str, role: str = "resident", **kw: Any) -> Person:
            p = Person(
                external_id=f"lk-{key}",
                name=f"测试{key}",
                area_code=kw.pop("area_code", VILLAGE_SHEZHU),
                role=role,
                phone=PHONES.get(key),
                **kw,
            )
            s.add(p)
            return p

        contacts = {k: person(k, "village_contact") for k in ("contact_a", "contact_b", "contact_c")}
        person("officer", "town_duty_officer", area_code=TOWN_SHEZHU)
        await s.flush()
        a, b = contacts["contact_a"].id, contacts["contact_b"].id
        person("elderly", needs=int(Need.ELDERLY_ALONE), relay_contact_id=a)
        person("hearing", needs=int(Need.HEARING_IMPAIRED), relay_contact_id=a)
        person("visual", needs=int(Need.VISUALLY_IMPAIRED), relay_contact_id=a)
        person("nophone_a", needs=int(Need.NO_PHONE), relay_contact_id=a)
        person("mobility", needs=int(Need.LIMITED_MOBILITY), relay_contact_id=b)
        person("foreign", needs=int(Need.NON_CHINESE_SPEAKER), relay_contact_id=b, language="en")
        person("nophone_b", needs=int(Need.NO_PHONE), relay_contact_id=b)
        person("resident", relay_contact_id=a)
        await s.flush()
        for p in (await s.execute(select(Person).where(Person.external_id.like("lk-%")))).scalars():
            ids[p.external_id.removeprefix("lk-")] = p.id  # type: ignore[union-attr]
    return ids


@pytest.fixture
async def village(settings: Settings, db: Database) -> AsyncIterator[Village]:
    world = await seed(db, settings)
    ids = await add_people(db)
    sim, sim_runner = await start_sim()
    settings.channels = {
        "sms": [sms_config(sim, "sim0")],
        "relay": [{"name": "visits", "adapter": "visit"}],
    }
    settings.dispatch.receipt_timeout_s = 30
    ladder = LadderConfig(wait_s=0.5, steps=["resend", "duty_officer", "console"], repeat=1)
    settings.escalation.ladders = {level: ladder for level in ("red", "orange", "yellow", "blue")}  # type: ignore[misc]
    dispatcher = Dispatcher(db, settings, build_channels(settings))
    runner = TimerRunner(db, HANDLERS, tick_s=1, lease_s=30)
    client = TestClient(
        TestServer(create_app(settings, db, run_timers=False, dispatcher=dispatcher), host="127.0.0.1")
    )
    await client.start_server()
    base = f"http://127.0.0.1:{client.server.port}"
    settings.server.public_url = base
    await sim.control(
        callback_url=f"{base}/api/v1/callbacks/sms/sim0/receipts",
        inbound_url=f"{base}/api/v1/callbacks/sms/sim0/inbound",
    )
    try:
        yield Village(client, db, settings, world, sim, dispatcher, runner, ids)
    finally:
        await client.close()
        await sim_runner.cleanup()
