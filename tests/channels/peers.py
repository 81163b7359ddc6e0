"""Real peers on 127.0.0.1 for the channel tests: the gateway simulator and a callback receiver.

Both are real aiohttp servers on a free port chosen by the OS (port 0), started in-process
with ``web.AppRunner``; tests talk to them over HTTP only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from warnpub.callbacks.signing import HEADER, verify
from warnpub.callbacks.sms_receipts import InboundSms, parse_inbound, parse_receipts
from warnpub.channels.base import Receipt
from warnpub.gatewaysim import create_sim_app
from warnpub.problems import Problem


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 at a free port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@dataclass
class Sim:
    """A running ``warnpub gateway-sim``, driven over HTTP."""

    url: str
    http: aiohttp.ClientSession

    @property
    def sms_url(self) -> str:
        return f"{self.url}/sms"

    @property
    def batch_url(self) -> str:
        return f"{self.url}/sms/batch"

    async def post(self, path: str, body: Any, **kwargs: Any) -> tuple[int, Any, Mapping[str, str]]:
        async with self.http.post(self.url + path, json=body, **kwargs) as r:
            return r.status, await r.json(), r.headers

    async def control(self, **knobs: Any) -> dict[str, Any]:
        status, body, _ = await self.post("/control", knobs)
        assert status == 200, body
        return body

    async def reset(self) -> None:
        status, _, _ = await self.post("/reset", {})
        assert status == 200

    async def stats(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/stats") as r:
            assert r.status == 200
            return await r.json()

    async def messages(self, since: int = 0, limit: int = 1000) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/messages?since={since}&limit={limit}") as r:
            assert r.status == 200
            return await r.json()


@asynccontextmanager
async def running_sim(**options: Any) -> AsyncIterator[Sim]:
    async with serve(create_sim_app(options)) as url, aiohttp.ClientSession() as http:
        yield Sim(url, http)


@dataclass
class CallbackReceiver:
    """Receives the simulator's callbacks like warnpub will: verifies the signature first."""

    secret: str
    url: str = ""
    receipts: list[Receipt] = field(default_factory=list)
    inbound: list[InboundSms] = field(default_factory=list)
    requests: int = 0
    refused: list[str] = field(default_factory=list)  # why each refused callback was refused
    fail_next: int = 0  # answer 500 to this many callbacks (to exercise the sender's retries)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def receipts_url(self) -> str:
        return f"{self.url}/receipts"

    @property
    def inbound_url(self) -> str:
        return f"{self.url}/inbound"

    async def wait_for_receipts(self, count: int, within_s: float = 5.0) -> list[Receipt]:
        async with asyncio.timeout(within_s):
            while len(self.receipts) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.receipts

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response({"error": "try again"}, status=500)
        try:
            verify(self.secret, request.headers.get(HEADER), body)
            if request.path.endswith("/receipts"):
                self.receipts.extend(parse_receipts(body))
            else:
                self.inbound.extend(parse_inbound(body))
        except Problem as problem:
            self.refused.append(problem.detail)
            self.arrived.set()
            return web.json_response(problem.as_dict(), status=problem.status)
        self.arrived.set()
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/receipts", self._handle)
        app.router.add_post("/inbound", self._handle)
        return app


@asynccontextmanager
async def callback_receiver(secret: str) -> AsyncIterator[CallbackReceiver]:
    receiver = CallbackReceiver(secret)
    async with serve(receiver.app()) as url:
        receiver.url = url
        yield receiver
