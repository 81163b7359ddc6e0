"""The speaker simulator's stop commands: a stop ends a broadcast still playing, and a stop
that overtakes its play command keeps the group from playing it at all."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tests.channels.mqtt_peer import (
    BROKER_HOST,
    BROKER_PORT,
    listening,
    publish,
    require_broker,
    unique_prefix,
)
from warnpub.channels.speaker_wire import PlayCommand, StopCommand
from warnpub.speakersim import SimOptions, SpeakerSim


def play(reference: str, repeat: int = 3, interval_s: float = 5) -> bytes:
    return PlayCommand(
        delivery_id=int(reference.removeprefix("wp-").split("-")[0]),
        reference=reference,
        text="请注意，请注意！",
        language="zh-CN",
        audio_url=None,
        repeat=repeat,
        interval_s=interval_s,
        priority=1,
        expires_at=None,
        drill=False,
    ).to_json()


def stop(reference: str) -> bytes:
    return StopCommand(reference, datetime.now(UTC)).to_json()


async def wait(condition, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition() and loop.time() < deadline:
        await asyncio.sleep(0.02)


async def test_stop_ends_a_broadcast_and_an_early_stop_prevents_it():
    require_broker()
    prefix = unique_prefix()
    sim = SpeakerSim(SimOptions(host=BROKER_HOST, port=BROKER_PORT, topic_prefix=prefix))
    await sim.start()
    try:
        async with listening(f"{prefix}/+/ack") as acks:
            await publish(f"{prefix}/a/play", play("wp-1"))
            await publish(f"{prefix}/a/play", play("wp-2", repeat=1, interval_s=0))
            await acks.wait(2)
            assert sim.playing == [(f"{prefix}/a", "wp-1")], "wp-2 played once and is over"

            await publish(f"{prefix}/a/stop", stop("wp-1"))
            await publish(f"{prefix}/a/stop", stop("wp-2"))
            await wait(lambda: len(sim.stops) == 2)
            assert [(x.reference, x.was_playing) for x in sim.stops] == [
                ("wp-1", True),
                ("wp-2", False),
            ]
            assert sim.playing == []

            # A stop that overtook its play command: the group never plays it, nor answers.
            await publish(f"{prefix}/b/stop", stop("wp-3"))
            await wait(lambda: len(sim.stops) == 3)
            await publish(f"{prefix}/b/play", play("wp-3"))
            await sim.wait_for_commands(3)
            await asyncio.sleep(0.3)
        late = sim.commands[-1]
        assert (late.address, late.outcome) == (f"{prefix}/b", "stopped")
        assert late.line().endswith("-> stopped (stopped before it was played)")
        assert len(acks.messages) == 2
        assert sim.playing == []
    finally:
        await sim.stop()
