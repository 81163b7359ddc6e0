"""A county to dispatch to: a real gateway simulator on loopback, the real app with its
dispatcher, a generated population, and helpers to submit and approve warnings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.factories import World, alert_json, seed
from warnpub.api.app import create_app
from warnpub.audiences.demo_data import DemoOptions, generate
from warnpub.channels.registry import build_channels
from warnpub.config import Settings
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.gatewaysim.app import GATEWAY, create_sim_app
from warnpub.storage.engine import Database

SECRET = "sim-callback-secret"


@dataclass
class Sim:
    url: str
    app: web.Application

    @property
    def gateway(self):
        return self.app[GATEWAY]

    async def stats(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.url}/stats") as r:
            return await r.json()

    async def control(self, **knobs: Any) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}/control", json=knobs) as r,
        ):
            assert r.status == 200, await r.text()


async def start_sim(**config: Any) -> tuple[Sim, web.AppRunner]:
    app = create_sim_app({"secret": SECRET, **config})
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return Sim(f"http://127.0.0.1:{port}", app), runner


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    s, runner = await start_sim()
    yield s
    await runner.cleanup()


def sms_config(sim: Sim, name: str = "sim", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "adapter": "http_json",
        "url": f"{sim.url}/sms",
        "rate_per_s": 2000,
        "concurrency": 32,
        "callback_secret": SECRET,
        "timeout_s": 5,
        **extra,
    }


@dataclass
class County:
    client: TestClient
    db: Database
    settings: Settings
    world: World
    dispatcher: Dispatcher

    async def submit(self, **kw: Any) -> dict[str, Any]:
        r = await self.client.post(
            "/api/v1/warnings", json=alert_json(**kw), headers=self.world.agency("QX")
        )
        assert r.status == 202, await r.text()
        return await r.json()

    async def approve(self, warning_id: str, *who: str) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for username in who or ("duty1",):
            r = await self.client.post(
                f"/api/v1/warnings/{warning_id}/approve", headers=self.world.operator(username)
            )
            body = await r.json()
            assert r.status == 200, body
        return body

    async def warning(self, warning_id: str) -> dict[str, Any]:
        r = await self.client.get(
            f"/api/v1/warnings/{warning_id}", headers=self.world.operator("duty1")
        )
        return await r.json()

    async def wait_state(self, warning_id: str, state: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = await self.warning(warning_id)
            if body["state"] == state:
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(
            f"warning {warning_id} is {body['state']}, not {state}, after {timeout} s"
        )


async def make_county(
    settings: Settings,
    db: Database,
    sims: list[Sim],
    *,
    people: int = 400,
    extra_channels: dict[str, list[dict[str, Any]]] | None = None,
    **sms_extra: Any,
) -> tuple[County, TestClient]:
    world = await seed(db, settings)
    async with db.session() as s:
        await generate(s, DemoOptions(people=people, seed=7, villages_per_town=2))
    settings.channels = {
        "sms": [sms_config(sim, f"sim{i}", **sms_extra) for i, sim in enumerate(sims)],
        **(extra_channels or {}),
    }
    settings.dispatch.receipt_timeout_s = 30
    dispatcher = Dispatcher(db, settings, build_channels(settings))
    client = TestClient(
        TestServer(
            create_app(settings, db, run_timers=False, dispatcher=dispatcher), host="127.0.0.1"
        )
    )
    await client.start_server()
    base = f"http://127.0.0.1:{client.server.port}"
    for i, sim in enumerate(sims):
        await sim.control(callback_url=f"{base}/api/v1/callbacks/sms/sim{i}/receipts")
    return County(client, db, settings, world, dispatcher), client


@pytest.fixture
async def county(settings, db, sim) -> AsyncIterator[County]:
    c, client = await make_county(settings, db, [sim])
    yield c
    await client.close()
