"""The demo's embedded MQTT broker: a real broker that a real client talks to on loopback."""

from __future__ import annotations

import asyncio

import aiomqtt

from warnpub.embedded_broker import embedded_broker
from warnpub.speakersim import SimOptions, SpeakerSim


async def test_messages_go_through_the_embedded_broker():
    async with embedded_broker() as (host, port):
        assert host == "127.0.0.1" and port > 0
        async with aiomqtt.Client(host, port, identifier="t-sub") as sub:
            await sub.subscribe("wp-test/#", qos=1)
            async with aiomqtt.Client(host, port, identifier="t-pub") as pub:
                await pub.publish("wp-test/a", b"play", qos=1)
            message = await asyncio.wait_for(anext(aiter(sub.messages)), timeout=5)
    assert str(message.topic) == "wp-test/a" and message.payload == b"play"


async def test_the_speaker_simulator_runs_on_it():
    async with embedded_broker() as (host, port):
        sim = SpeakerSim(SimOptions(host=host, port=port))
        await sim.start()
        await sim.stop()


async def test_the_port_is_released_after_use():
    async with embedded_broker() as (_, port):
        pass
    async with embedded_broker(port) as (_, again):
        assert again == port
