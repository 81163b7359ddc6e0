"""``warnpub speaker-sim``: simulated speaker groups on the real Mosquitto broker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.channels.mqtt_peer import (
    BROKER_HOST,
    BROKER_PORT,
    free_port,
    listening,
    publish,
    require_broker,
    unique_prefix,
)
from warnpub.channels.speaker_wire import Ack, PlayCommand, StopCommand
from warnpub.cli.main import main
from warnpub.speakersim import SimOptions, SpeakerSim, SpeakerSimError, parse_codes


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    require_broker()
    return BROKER_HOST, BROKER_PORT


def play(reference: str, *, drill: bool = False, expires_at: datetime | None = None) -> bytes:
    delivery_id = int(reference.removeprefix("wp-"))
    return PlayCommand(
        delivery_id=delivery_id,
        reference=reference,
        text="请注意，请注意！",
        language="zh-CN",
        audio_url=None,
        repeat=2,
        interval_s=5,
        priority=1,
        expires_at=expires_at,
        drill=drill,
    ).to_json()


@asynccontextmanager
async def sim(prefix: str, **options: Any) -> AsyncIterator[SpeakerSim]:
    lines: list[str] = []
    s = SpeakerSim(
        SimOptions(host=BROKER_HOST, port=BROKER_PORT, topic_prefix=prefix, **options),
        on_event=lines.append,
    )
    s.lines = lines  # type: ignore[attr-defined]
    await s.start()
    try:
        yield s
    finally:
        await s.stop()


def acks(seen: list[Any]) -> dict[str, Ack]:
    return {m.topic.rsplit("/", 2)[-2]: Ack.from_json(m.payload) for m in seen}


async def test_answers_played_failed_or_nothing(mqtt_broker):
    prefix = unique_prefix()
    async with (
        listening(f"{prefix}/+/ack") as seen,
        sim(prefix, fail={"bad"}, silent={f"{prefix}/mute"}) as s,
    ):
        await publish(f"{prefix}/ok/play", play("wp-1", drill=True))
        await publish(f"{prefix}/bad/play", play("wp-2"))
        await publish(f"{prefix}/mute/play", play("wp-3"))
        await s.wait_for_commands(3)
        got = acks(await seen.wait(2))
        await asyncio.sleep(0.2)
    assert [(c.code, c.outcome) for c in s.commands] == [
        ("ok", "played"),
        ("bad", "failed"),
        ("mute", "silent"),
    ]
    assert set(got) == {"ok", "bad"} and len(seen.messages) == 2
    assert (got["ok"].reference, got["ok"].status, got["ok"].delivery_id) == ("wp-1", "played", 1)
    assert got["ok"].at is not None
    assert got["bad"].status == "failed" and got["bad"].error == "simulated failure"
    assert s.lines[0].startswith(f"play {prefix}/ok wp-1 drill repeat=2 interval=5s audio=no")
    assert s.lines[0].endswith("-> played")
    assert s.lines[1].endswith("-> failed (simulated failure)")
    assert [c.code for c in s.played] == ["ok"]


async def test_a_reference_is_played_once_and_acknowledged_again(mqtt_broker):
    prefix = unique_prefix()
    async with listening(f"{prefix}/+/ack") as seen, sim(prefix) as s:
        await publish(f"{prefix}/ok/play", play("wp-7"))
        await s.wait_for_commands(1)
        await publish(f"{prefix}/ok/play", play("wp-7"))
        await s.wait_for_commands(2)
        got = await seen.wait(2)
    assert [c.outcome for c in s.commands] == ["played", "duplicate"]
    assert len(s.played) == 1
    assert [Ack.from_json(m.payload).status for m in got] == ["played", "played"]


async def test_expired_and_malformed_commands(mqtt_broker):
    prefix = unique_prefix()
    past = datetime.now(UTC) - timedelta(minutes=1)
    async with listening(f"{prefix}/+/ack") as seen, sim(prefix) as s:
        await publish(f"{prefix}/a/play", play("wp-1", expires_at=past))
        await publish(f"{prefix}/b/play", b'{"reference": "wp-2"}')
        await s.wait_for_commands(2)
        got = await seen.wait(1)
        await asyncio.sleep(0.2)
    assert [c.outcome for c in s.commands] == ["failed", "malformed"]
    assert "delivery_id" in s.commands[1].error
    assert len(got) == 1 and Ack.from_json(got[0].payload).error == "the command had expired"


async def test_silent_rate_is_decided_once_per_group(mqtt_broker):
    prefix = unique_prefix()
    async with sim(prefix, silent_rate=0.5, seed=3) as s:
        for i in range(12):
            await publish(f"{prefix}/g{i % 6}/play", play(f"wp-{i + 1}"))
        await s.wait_for_commands(12)
    by_group: dict[str, set[str]] = {}
    for c in s.commands:
        by_group.setdefault(c.code, set()).add("silent" if c.outcome == "silent" else "answered")
    assert all(len(v) == 1 for v in by_group.values()), by_group
    kinds = {next(iter(v)) for v in by_group.values()}
    assert kinds == {"silent", "answered"}  # with seed 3, some of each


async def test_delay_and_stop_commands(mqtt_broker):
    prefix = unique_prefix()
    async with listening(f"{prefix}/+/ack") as seen, sim(prefix, delay_s=0.4) as s:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await publish(f"{prefix}/ok/play", play("wp-1"))
        await seen.wait(1)
        took = loop.time() - sent
        stop = StopCommand("wp-1", datetime.now(UTC)).to_json()
        await publish(f"{prefix}/ok/stop", stop)
        for _ in range(100):
            if s.stops:
                break
            await asyncio.sleep(0.02)
    assert took >= 0.4
    assert [(x.address, x.reference) for x in s.stops] == [(f"{prefix}/ok", "wp-1")]
    assert s.lines[-1] == f"stop {prefix}/ok wp-1"


async def test_knobs_change_while_running(mqtt_broker):
    prefix = unique_prefix()
    async with sim(prefix) as s:
        s.fail = {"a"}
        await publish(f"{prefix}/a/play", play("wp-1"))
        await s.wait_for_commands(1)
        s.fail = set()
        s.silent = {"a"}
        await publish(f"{prefix}/a/play", play("wp-2"))
        await s.wait_for_commands(2)
    assert [c.outcome for c in s.commands] == ["failed", "silent"]


async def test_unreachable_broker_is_a_clear_error():
    port = free_port()
    s = SpeakerSim(SimOptions(port=port, connect_timeout_s=3))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SpeakerSimError, match=f"cannot reach the MQTT broker at 127.0.0.1:{port}"):
        await s.start()
    assert loop.time() - started < 3


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"silent_rate": 1.5}, "silent rate"),
        ({"topic_prefix": "a/#"}, "wildcard"),
        ({"delay_s": -1}, "delay"),
    ],
)
def test_bad_options(options, says):
    with pytest.raises(SpeakerSimError, match=says):
        SpeakerSim(SimOptions(**options))


def test_parse_codes():
    assert parse_codes(" 320481101200, 320481101201 ,,") == {"320481101200", "320481101201"}
    assert parse_codes(None) == set()


def test_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["speaker-sim", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "--silent" in out and "--fail" in out


async def test_command_line_process(mqtt_broker):
    prefix = unique_prefix()
    env = {**os.environ}
    env.pop("WARNPUB_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "warnpub",
        "speaker-sim",
        "--host",
        BROKER_HOST,
        "--port",
        str(BROKER_PORT),
        "--topic-prefix",
        prefix,
        "--delay-s",
        "0",
        "--fail",
        "bad",
        "--silent",
        "mute",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
        assert first.decode().startswith(f"speaker-sim on mqtt://{BROKER_HOST}:{BROKER_PORT}")
        async with listening(f"{prefix}/+/ack") as seen:
            for code, ref in (("ok", "wp-1"), ("bad", "wp-2"), ("mute", "wp-3")):
                await publish(f"{prefix}/{code}/play", play(ref))
            lines = [
                (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode().strip()
                for _ in range(3)
            ]
            got = acks(await seen.wait(2))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=20)
    assert code == 0
    assert [line.rsplit("-> ", 1)[1] for line in lines] == [
        "played",
        "failed (simulated failure)",
        "silent",
    ]
    assert {k: v.status for k, v in got.items()} == {"ok": "played", "bad": "failed"}


async def test_command_line_refuses_bad_options():
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "warnpub",
        "speaker-sim",
        "--silent-rate",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 2
    assert "silent rate 2.0: give a share from 0 to 1" in err.decode()
    assert out == b""
