"""Contract harness for the ``http_json`` SMS adapter against the real gateway simulator."""

from __future__ import annotations

import secrets
from contextlib import AsyncExitStack

from tests.channels.contract import Fault, Received
from tests.channels.peers import CallbackReceiver, Sim, callback_receiver, running_sim
from warnpub.channels.base import Channel, Receipt
from warnpub.channels.sms_http import HttpJsonSms


class SmsHarness:
    name = "sms-http_json"

    def __init__(self) -> None:
        self.secret = secrets.token_hex(16)
        self._stack = AsyncExitStack()
        self.sim: Sim
        self.receiver: CallbackReceiver

    async def start(self) -> None:
        self.receiver = await self._stack.enter_async_context(callback_receiver(self.secret))
        self.sim = await self._stack.enter_async_context(
            running_sim(callback_url=self.receiver.receipts_url, secret=self.secret)
        )

    async def stop(self) -> None:
        await self._stack.aclose()

    def build_channel(self) -> Channel:
        return HttpJsonSms(
            "contract-sim",
            {
                "url": self.sim.sms_url,
                "batch_url": self.sim.batch_url,
                "max_batch": 50,
                "timeout_s": 5,
                "callback_secret": self.secret,
            },
        )

    def address(self, i: int) -> str:
        return f"+86138{i:08d}"

    async def inject_fault(self, fault: Fault) -> None:
        if fault is Fault.TRANSIENT:
            await self.sim.control(outage_s=3600)
        else:
            await self.sim.control(permanent_numbers=[self.address(i) for i in range(100)])

    async def clear_faults(self) -> None:
        await self.sim.control(outage_s=0, permanent_numbers=[])

    async def received(self) -> list[Received]:
        page = await self.sim.messages(limit=100_000)
        return [Received(m["to"], m["text"], m["reference"]) for m in page["messages"]]

    async def receipts(self) -> list[Receipt]:
        assert not self.receiver.refused, self.receiver.refused
        return list(self.receiver.receipts)


HARNESS = SmsHarness
