"""Contract harness for the ``webhook`` adapter against a real partner endpoint on 127.0.0.1.

:class:`PartnerPeer` is what a partner system runs: an aiohttp server that checks the
``X-Warnpub-Signature`` of every request with the shared secret (401 when it does not match),
acts once per ``Idempotency-Key`` and answers 200 ``{"id": …}``. Faults are injected as
answers: :data:`Fault.TRANSIENT` → 500, :data:`Fault.PERMANENT` → 400, or any status, headers
and delay through :meth:`PartnerPeer.answer`.

A webhook instance has exactly one recipient, the partner, so every address is the partner's
name; the contract's cases still tell messages apart by their text.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.channels.contract import Fault, Received
from tests.channels.peers import serve
from warnpub.callbacks.signing import HEADER, verify
from warnpub.channels.base import Channel, Receipt
from warnpub.channels.webhook import Webhook
from warnpub.problems import Problem

PARTNER = "county-tv"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One request the partner acted on."""

    key: str
    content_type: str
    body: bytes
    headers: dict[str, str]


@dataclass
class PartnerPeer:
    secret: str
    url: str = ""
    accepted: list[Delivery] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why each unsigned/forged request failed
    requests: int = 0
    status: int = 200  # the answer to give instead of acting (anything but 200)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    def answer(self, status: int = 200, delay_s: float = 0.0, **headers: str) -> None:
        self.status, self.delay_s, self.headers = status, delay_s, headers

    async def _hook(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        try:
            verify(self.secret, request.headers.get(HEADER), body)
        except Problem as problem:
            self.refused.append(problem.detail)
            return web.json_response({"error": problem.detail}, status=401)
        if self.status != 200:
            return web.json_response(
                {"error": f"injected {self.status}"}, status=self.status, headers=self.headers
            )
        key = request.headers.get("Idempotency-Key", "")
        known = [i for i, d in enumerate(self.accepted) if key and d.key == key]
        if not known:
            self.accepted.append(
                Delivery(key, request.headers.get("Content-Type", ""), body, dict(request.headers))
            )
        index = known[0] if known else len(self.accepted) - 1
        return web.json_response({"id": f"tv-{index + 1}", "duplicate": bool(known)})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        return app


def received_text(delivery: Delivery) -> str:
    """What a person at the partner would read: the JSON text or headline, or the CAP XML."""
    if delivery.content_type.startswith("application/json"):
        doc: dict[str, Any] = json.loads(delivery.body)
        return str(doc.get("text") or doc.get("headline") or "")
    return delivery.body.decode("utf-8")


class WebhookHarness:
    name = "webhook-json"

    def __init__(self) -> None:
        self.secret = secrets.token_hex(16)
        self.peer = PartnerPeer(self.secret)
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        base = await self._stack.enter_async_context(serve(self.peer.app()))
        self.peer.url = f"{base}/hook"

    async def stop(self) -> None:
        await self._stack.aclose()

    def build_channel(self) -> Channel:
        return Webhook(
            PARTNER,
            {"url": self.peer.url, "secret": self.secret, "format": "json", "timeout_s": 5},
        )

    def address(self, i: int) -> str:
        return PARTNER

    async def inject_fault(self, fault: Fault) -> None:
        self.peer.answer(500 if fault is Fault.TRANSIENT else 400)

    async def clear_faults(self) -> None:
        self.peer.answer(200)

    async def received(self) -> list[Received]:
        assert not self.peer.refused, self.peer.refused
        return [Received(PARTNER, received_text(d), d.key) for d in self.peer.accepted]

    async def receipts(self) -> list[Receipt]:
        return []  # the partner's 2xx is the receipt (DELIVERED at once; limits.receipts False)


HARNESS = WebhookHarness
