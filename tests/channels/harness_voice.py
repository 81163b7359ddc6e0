"""Contract harness for the ``http_voice`` adapter against the real gateway simulator's voice
endpoint, with a real receiver on 127.0.0.1 for the signed call outcomes it posts back."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.channels.contract import Fault, Received
from tests.channels.peers import Sim, running_sim, serve
from warnpub.callbacks.signing import HEADER, verify
from warnpub.callbacks.voice_calls import CallReceipt, parse_call_outcomes
from warnpub.channels.base import Channel, Receipt
from warnpub.channels.voice_http import HttpVoice
from warnpub.problems import Problem


@dataclass
class OutcomeReceiver:
    """Receives call outcomes like warnpub will: verifies the signature, then parses."""

    secret: str
    url: str = ""
    outcomes: list[CallReceipt] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def outcomes_url(self) -> str:
        return f"{self.url}/outcomes"

    async def wait_for(self, count: int, within_s: float = 5.0) -> list[CallReceipt]:
        async with asyncio.timeout(within_s):
            while len(self.outcomes) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.outcomes

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify(self.secret, request.headers.get(HEADER), body)
            self.outcomes.extend(parse_call_outcomes(body))
        except Problem as problem:
            self.refused.append(problem.detail)
            self.arrived.set()
            return web.json_response(problem.as_dict(), status=problem.status)
        self.bodies.append(await request.json())
        self.arrived.set()
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/outcomes", self._handle)
        return app


@asynccontextmanager
async def outcome_receiver(secret: str) -> AsyncIterator[OutcomeReceiver]:
    receiver = OutcomeReceiver(secret)
    async with serve(receiver.app()) as url:
        receiver.url = url
        yield receiver


def voice_config(sim: Sim, receiver: OutcomeReceiver, **extra: Any) -> dict[str, Any]:
    return {
        "url": f"{sim.url}/voice/calls",
        "callback_url": receiver.outcomes_url,
        "callback_secret": receiver.secret,
        "timeout_s": 5,
        **extra,
    }


class VoiceHarness:
    name = "voice-http_voice"

    def __init__(self) -> None:
        self.secret = secrets.token_hex(16)
        self._stack = AsyncExitStack()
        self.sim: Sim
        self.receiver: OutcomeReceiver

    async def start(self) -> None:
        self.receiver = await self._stack.enter_async_context(outcome_receiver(self.secret))
        self.sim = await self._stack.enter_async_context(
            running_sim(secret=self.secret, voice_delay_ms=20)
        )

    async def stop(self) -> None:
        await self._stack.aclose()

    def build_channel(self) -> Channel:
        return HttpVoice("contract-voice", voice_config(self.sim, self.receiver))

    def address(self, i: int) -> str:
        return f"+86139{i:08d}"

    async def inject_fault(self, fault: Fault) -> None:
        if fault is Fault.TRANSIENT:
            await self.sim.control(outage_s=3600)
        else:
            await self.sim.control(permanent_numbers=[self.address(i) for i in range(100)])

    async def clear_faults(self) -> None:
        await self.sim.control(outage_s=0, permanent_numbers=[])

    async def received(self) -> list[Received]:
        async with self.sim.http.get(f"{self.sim.url}/voice/calls?limit=100000") as r:
            assert r.status == 200
            page = await r.json()
        return [Received(c["to"], c["text"], c["reference"]) for c in page["calls"]]

    async def receipts(self) -> list[Receipt]:
        assert not self.receiver.refused, self.receiver.refused
        return list(self.receiver.outcomes)


HARNESS = VoiceHarness
