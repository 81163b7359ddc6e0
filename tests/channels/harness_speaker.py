"""Contract harness for the ``mqtt_speaker`` channel: the real Mosquitto broker, simulated
speaker groups (warnpub.speakersim) on it, and a TCP relay to cut the channel off the broker.

- transient fault: the relay drops the channel's connection and refuses new ones;
- permanent fault: the groups answer ``failed`` (the channel waits ``ack_wait_s`` for it);
- received: what the groups actually played (each reference once);
- receipts: what the channel pushed to its bound receipt sink.
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.channels.contract import Fault, Received
from tests.channels.mqtt_peer import (
    BROKER_HOST,
    BROKER_PORT,
    TcpProxy,
    require_broker,
    unique_prefix,
)
from warnpub.channels.base import Channel, Receipt
from warnpub.channels.speaker_mqtt import MqttSpeaker
from warnpub.speakersim import SimOptions, SpeakerSim


class SpeakerHarness:
    name = "speaker-mqtt_speaker"

    def __init__(self) -> None:
        self.prefix = unique_prefix()
        self.relay = TcpProxy()
        self.sim = SpeakerSim(
            SimOptions(host=BROKER_HOST, port=BROKER_PORT, topic_prefix=self.prefix)
        )
        self._receipts: list[Receipt] = []

    async def start(self) -> None:
        require_broker()
        await self.relay.start()
        await self.sim.start()

    async def stop(self) -> None:
        await self.sim.stop()
        await self.relay.close()

    async def _sink(self, receipts: Sequence[Receipt]) -> None:
        self._receipts.extend(receipts)

    def build_channel(self) -> Channel:
        channel = MqttSpeaker(
            "contract-speaker",
            {
                "host": "127.0.0.1",
                "port": self.relay.port,
                "topic_prefix": self.prefix,
                "ack_wait_s": 3,
                "connect_timeout_s": 3,
                "publish_timeout_s": 3,
                "reconnect_max_s": 0.5,
                "max_batch": 20,
            },
        )
        channel.bind_receipts(self._sink)
        return channel

    def address(self, i: int) -> str:
        return f"{self.prefix}/3204811012{i:02d}"

    async def inject_fault(self, fault: Fault) -> None:
        if fault is Fault.TRANSIENT:
            await self.relay.block()
        else:
            self.sim.fail = {self.address(i) for i in range(100)}

    async def clear_faults(self) -> None:
        await self.relay.unblock()
        self.sim.fail = set()

    async def received(self) -> list[Received]:
        return [
            Received(c.address, c.command.text, c.command.reference)
            for c in self.sim.played
            if c.command is not None
        ]

    async def receipts(self) -> list[Receipt]:
        return list(self._receipts)


HARNESS = SpeakerHarness
