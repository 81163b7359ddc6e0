"""The ``mqtt_speaker`` channel against the real Mosquitto broker on 127.0.0.1:1883.

Speaker groups are simulated by warnpub.speakersim on the same broker, or answered by hand
with a plain MQTT client. Each test has its own topic prefix; the broker is never restarted
(a lost connection is made with a TCP relay in front of it).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.channels.mqtt_peer import (
    BROKER_HOST,
    BROKER_PORT,
    TcpProxy,
    forget_session,
    free_port,
    listening,
    publish,
    unique_prefix,
)
from tests.conftest import IN_CI
from warnpub.channels.base import ChannelError, Message, PushesReceipts, Receipt, Status
from warnpub.channels.registry import build_channels, load_factory
from warnpub.channels.speaker_mqtt import MqttSpeaker, parse_config
from warnpub.channels.speaker_wire import Ack
from warnpub.config import Settings
from warnpub.render.audio import audio_name
from warnpub.speakersim import SimOptions, SpeakerSim

PLAY_FIELDS = {
    "delivery_id",
    "reference",
    "text",
    "language",
    "audio_url",
    "repeat",
    "interval_s",
    "priority",
    "expires_at",
    "drill",
}
SCRIPT = "这是一次应急演练，不是真实预警。请注意，请注意！暴雨红色预警。请立即转移。"


class Receipts:
    """A receipt sink that records what the channel pushes."""

    def __init__(self) -> None:
        self.got: list[Receipt] = []

    async def __call__(self, receipts: Sequence[Receipt]) -> None:
        self.got.extend(receipts)

    async def wait(self, count: int, timeout_s: float = 5.0) -> list[Receipt]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self.got) < count and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return list(self.got)


def message(address: str, delivery_id: int = 41, **kw: Any) -> Message:
    return Message(
        delivery_id=delivery_id,
        address=address,
        text=kw.pop("text", SCRIPT),
        idempotency_key=f"wp-{delivery_id}",
        **kw,
    )


@asynccontextmanager
async def speaker(
    prefix: str, sink: Receipts | None = None, /, **config: Any
) -> AsyncIterator[MqttSpeaker]:
    channel = MqttSpeaker(
        "county",
        {
            "host": BROKER_HOST,
            "port": BROKER_PORT,
            "topic_prefix": prefix,
            "connect_timeout_s": 3,
            "publish_timeout_s": 3,
            "reconnect_max_s": 0.5,
            **config,
        },
    )
    if sink is not None:
        channel.bind_receipts(sink)
    await channel.start()
    try:
        yield channel
    finally:
        await channel.close()


@asynccontextmanager
async def groups(prefix: str, **options: Any) -> AsyncIterator[SpeakerSim]:
    sim = SpeakerSim(SimOptions(host=BROKER_HOST, port=BROKER_PORT, topic_prefix=prefix, **options))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


# -- configuration --------------------------------------------------------------------------


def test_defaults_and_limits():
    channel = MqttSpeaker("county", {})
    cfg = channel.config
    assert (cfg.host, cfg.port, cfg.topic_prefix, cfg.qos) == (
        "127.0.0.1",
        1883,
        "warnpub/speakers",
        1,
    )
    assert channel.kind == "speaker" and isinstance(channel, PushesReceipts)
    assert channel.limits.receipts is True
    assert channel.limits.receipt_timeout_s == cfg.ack_timeout_s
    assert channel.client_id.startswith("warnpub-county-")
    assert "password" not in repr(channel)


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"topic_prefix": "warnpub/#"}, "key topic_prefix: 'warnpub/#' cannot be a topic prefix"),
        ({"topic_prefix": "/warnpub"}, "key topic_prefix:"),
        ({"qos": 0}, "key qos:"),
        ({"password": "x"}, "password is set without username"),
        ({"audio_base_url": "ftp://x/audio"}, "key audio_base_url:"),
        ({"port": 0}, "key port:"),
        ({"colour": "red"}, "key colour: unknown key for the mqtt_speaker adapter"),
        ({"voices": {"zh": "cmn; rm -rf /"}}, "key voices:"),
        ({"client_id_prefix": "a b"}, "key client_id_prefix:"),
    ],
)
def test_bad_configuration_names_the_key(config, says):
    with pytest.raises(ChannelError) as refused:
        parse_config(config)
    assert says in str(refused.value)


def test_registered_as_an_entry_point():
    assert load_factory("mqtt_speaker") is MqttSpeaker
    settings = Settings(
        channels={"speaker": [{"name": "county", "adapter": "mqtt_speaker", "qos": 2}]}
    )
    (channel,) = build_channels(settings)["speaker"]
    assert isinstance(channel, MqttSpeaker) and channel.config.qos == 2
    bad = Settings(channels={"speaker": [{"name": "county", "adapter": "mqtt_speaker", "qos": 0}]})
    with pytest.raises(
        ChannelError,
        match=r"channels.speaker\[0\] \(name 'county', adapter 'mqtt_speaker'\): key qos",
    ):
        build_channels(bad)


# -- publishing -----------------------------------------------------------------------------


async def test_play_command_topic_and_payload(mqtt_broker):
    prefix = unique_prefix()
    address = f"{prefix}/320481101200"
    expires = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    drill = message(
        address,
        41,
        language="zh-CN",
        priority=7,
        expires_at=expires,
        metadata={"status": "Exercise", "repeat": "5", "interval_s": "12.5"},
    )
    real = message(f"{prefix}/320481101201", 42, text="Attention please.", language="en")
    async with listening(f"{prefix}/#") as seen, speaker(prefix) as channel:
        results = await channel.send([drill, real])
        assert [(r.status, r.provider_ref) for r in results] == [
            (Status.SENT, "wp-41"),
            (Status.SENT, "wp-42"),
        ]
        published = await seen.wait(2)
    by_topic = {m.topic: m for m in published}
    assert set(by_topic) == {f"{address}/play", f"{prefix}/320481101201/play"}
    first = by_topic[f"{address}/play"]
    assert first.qos == 1 and not first.retain
    doc = json.loads(first.payload)
    assert set(doc) == PLAY_FIELDS
    assert doc == {
        "delivery_id": 41,
        "reference": "wp-41",
        "text": SCRIPT,
        "language": "zh-CN",
        "audio_url": None,
        "repeat": 5,
        "interval_s": 12.5,
        "priority": 7,
        "expires_at": "2026-07-01T12:00:00Z",
        "drill": True,
    }
    other = json.loads(by_topic[f"{prefix}/320481101201/play"].payload)
    assert other["drill"] is False and other["expires_at"] is None
    assert (other["repeat"], other["interval_s"]) == (3, 30.0)  # the instance's defaults
    assert other["language"] == "en" and other["text"] == "Attention please."


async def test_drill_flag_from_metadata_and_defaults(mqtt_broker):
    prefix = unique_prefix()
    async with listening(f"{prefix}/+/play") as seen, speaker(prefix, repeat=2) as channel:
        await channel.send(
            [
                message(f"{prefix}/a", 1, metadata={"drill": "true"}),
                message(f"{prefix}/b", 2, metadata={"status": "Actual", "repeat": "x"}),
            ]
        )
        got = {
            json.loads(m.payload)["reference"]: json.loads(m.payload) for m in await seen.wait(2)
        }
    assert got["wp-1"]["drill"] is True
    assert got["wp-2"]["drill"] is False and got["wp-2"]["repeat"] == 2  # bad override ignored


async def test_an_address_that_is_no_topic_is_permanent(mqtt_broker):
    prefix = unique_prefix()
    async with listening(f"{prefix}/#") as seen, speaker(prefix) as channel:
        results = await channel.send(
            [
                message(f"{prefix}/+", 1),
                message("", 2),
                message(f"{prefix}/ok", 3),
                message("$SYS/broker", 4),
            ]
        )
        statuses = {r.delivery_id: r for r in results}
        assert statuses[1].status is Status.PERMANENT and "wildcard" in statuses[1].error
        assert statuses[2].status is Status.PERMANENT and "empty" in statuses[2].error
        assert statuses[3].status is Status.SENT
        assert statuses[4].status is Status.PERMANENT
        published = await seen.wait(1)
        await asyncio.sleep(0.2)
    assert [m.topic for m in seen.messages] == [f"{prefix}/ok/play"] == [m.topic for m in published]


# -- acknowledgements -----------------------------------------------------------------------


async def test_played_ack_becomes_a_delivered_receipt(mqtt_broker):
    prefix = unique_prefix()
    sink = Receipts()
    async with groups(prefix, delay_s=0.2), speaker(prefix, sink) as channel:
        (result,) = await channel.send([message(f"{prefix}/320481101200", 41)])
        assert result.status is Status.SENT and result.provider_ref == "wp-41"
        (receipt,) = await sink.wait(1)
    assert receipt.status is Status.DELIVERED
    assert (receipt.provider_ref, receipt.delivery_id) == ("wp-41", 41)
    assert receipt.at is not None and abs(receipt.at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_failed_ack_becomes_a_permanent_receipt(mqtt_broker):
    prefix = unique_prefix()
    sink = Receipts()
    async with groups(prefix, fail={"320481101200"}), speaker(prefix, sink) as channel:
        (result,) = await channel.send([message(f"{prefix}/320481101200", 41)])
        assert result.status is Status.SENT
        (receipt,) = await sink.wait(1)
    assert receipt.status is Status.PERMANENT and receipt.delivery_id == 41
    assert "could not play wp-41" in receipt.error and "simulated failure" in receipt.error


async def test_ack_wait_gives_the_answer_in_the_result(mqtt_broker):
    prefix = unique_prefix()
    sink = Receipts()
    async with (
        groups(prefix, fail={"bad"}, silent={"mute"}),
        speaker(prefix, sink, ack_wait_s=1.0) as channel,
    ):
        results = await channel.send(
            [message(f"{prefix}/ok", 1), message(f"{prefix}/bad", 2), message(f"{prefix}/mute", 3)]
        )
        got = await sink.wait(2)
    assert [r.status for r in results] == [Status.DELIVERED, Status.PERMANENT, Status.SENT]
    assert all(r.provider_ref == f"wp-{r.delivery_id}" for r in results)
    # Every ack is also pushed to the sink (applying it twice is harmless: it is final).
    assert sorted((r.delivery_id, r.status) for r in got) == [
        (1, Status.DELIVERED),
        (2, Status.PERMANENT),
    ]


async def test_silence_gives_no_receipt(mqtt_broker):
    prefix = unique_prefix()
    sink = Receipts()
    async with groups(prefix, silent={"320481101200"}) as sim, speaker(prefix, sink) as channel:
        (result,) = await channel.send([message(f"{prefix}/320481101200", 41)])
        assert result.status is Status.SENT
        await sim.wait_for_commands(1)
        await asyncio.sleep(0.5)
    assert [c.outcome for c in sim.commands] == ["silent"]
    assert sink.got == []


async def test_malformed_acks_are_ignored(mqtt_broker):
    prefix = unique_prefix()
    sink = Receipts()
    address = f"{prefix}/320481101200"
    async with speaker(prefix, sink) as channel:
        await channel.send([message(address, 41)])
        for bad in (b"not json", b"[1]", b'{"reference": "wp-41", "status": "lost"}', b"{}"):
            await publish(f"{address}/ack", bad)
        await publish(f"{address}/ack", Ack("wp-41", "played").to_json())
        got = await sink.wait(1)
        await asyncio.sleep(0.2)
    assert (
        [(r.delivery_id, r.status) for r in sink.got]
        == [(41, Status.DELIVERED)]
        == [(r.delivery_id, r.status) for r in got]
    )


async def test_address_outside_the_prefix_gets_its_own_ack_subscription(mqtt_broker):
    prefix = unique_prefix()
    custom = prefix.replace("/speakers", "/towns/t101/hall")
    sink = Receipts()
    async with listening(f"{custom}/play") as seen, speaker(prefix, sink) as channel:
        (result,) = await channel.send([message(custom, 43)])
        assert result.status is Status.SENT
        assert [m.topic for m in await seen.wait(1)] == [f"{custom}/play"]
        await publish(f"{custom}/ack", Ack("wp-43", "played", delivery_id=43).to_json())
        (receipt,) = await sink.wait(1)
    assert receipt.status is Status.DELIVERED and receipt.delivery_id == 43


async def test_receipts_wait_for_a_sink_that_fails(mqtt_broker):
    prefix = unique_prefix()
    calls: list[int] = []

    async def flaky(receipts: Sequence[Receipt]) -> None:
        calls.append(len(receipts))
        if len(calls) == 1:
            raise RuntimeError("database is down")

    async with groups(prefix), speaker(prefix) as channel:
        channel.bind_receipts(flaky)
        await channel.send([message(f"{prefix}/a", 1)])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while len(calls) < 2 and loop.time() < deadline:
            await asyncio.sleep(0.05)
    assert calls == [1, 1]  # the same receipt, handed over again


# -- stop -----------------------------------------------------------------------------------


async def test_stop_publishes_on_the_stop_topic(mqtt_broker):
    prefix = unique_prefix()
    address = f"{prefix}/320481101200"
    async with listening(f"{address}/stop") as seen, speaker(prefix) as channel:
        result = await channel.stop(address, "wp-41")
        assert (result.status, result.delivery_id, result.provider_ref) == (
            Status.SENT,
            41,
            "wp-41",
        )
        (stop,) = await seen.wait(1)
        bad = await channel.stop(f"{prefix}/#", "wp-41")
    assert stop.qos == 1
    doc = json.loads(stop.payload)
    assert doc["reference"] == "wp-41" and doc["at"].endswith("Z")
    assert bad.status is Status.PERMANENT


# -- the connection -------------------------------------------------------------------------


async def test_no_broker_is_transient_at_once(mqtt_broker):
    port = free_port()
    prefix = unique_prefix()
    channel = MqttSpeaker("county", {"port": port, "topic_prefix": prefix})
    await channel.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        (result,) = await channel.send([message(f"{prefix}/a", 1)])
        stopped = await channel.stop(f"{prefix}/a", "wp-1")
        took = loop.time() - started
    finally:
        await channel.close()
    assert result.status is Status.TRANSIENT and f"127.0.0.1:{port}" in result.error
    assert stopped.status is Status.TRANSIENT
    assert took < 3, "a refused connection must not wait out a timeout"


async def test_reconnects_after_losing_the_broker(mqtt_broker):
    prefix = unique_prefix()
    custom = prefix.replace("/speakers", "/towns/t1")
    relay = TcpProxy()
    await relay.start()
    sink = Receipts()
    try:
        async with groups(prefix) as sim, speaker(prefix, sink, port=relay.port) as channel:
            first = await channel.send([message(f"{prefix}/a", 1), message(custom, 2)])
            assert [r.status for r in first] == [Status.SENT, Status.SENT]
            await relay.block()
            (down,) = await channel.send([message(f"{prefix}/a", 3)])
            assert down.status is Status.TRANSIENT and down.error
            await relay.unblock()
            (up,) = await channel.send([message(f"{prefix}/a", 3)])
            assert up.status is Status.SENT
            assert channel.connected
            # Both ack subscriptions are back: the prefix wildcard and the custom address.
            await publish(f"{custom}/ack", Ack("wp-2", "played").to_json())
            got = await sink.wait(3)
    finally:
        await relay.close()
    assert sorted(r.delivery_id for r in got) == [1, 2, 3]
    assert [c.command.reference for c in sim.played if c.command] == ["wp-1", "wp-3"]


async def test_persistent_session_keeps_acks_sent_while_away(mqtt_broker):
    prefix = unique_prefix()
    relay = TcpProxy()
    await relay.start()
    sink = Receipts()
    client_prefix = f"wp-test-{prefix.split('/')[1][:12]}-"
    config = {"port": relay.port, "persistent_session": True, "client_id_prefix": client_prefix}
    try:
        async with groups(prefix, delay_s=0.5) as sim, speaker(prefix, sink, **config) as ch:
            assert ch.client_id.startswith(client_prefix) and str(ch.client_id).count("-") >= 3
            (result,) = await ch.send([message(f"{prefix}/a", 1)])
            assert result.status is Status.SENT
            await relay.block()  # away while the group plays and answers
            await sim.wait_for_commands(1)
            await asyncio.sleep(1.0)
            assert sink.got == []
            await relay.unblock()
            (receipt,) = await sink.wait(1, timeout_s=8)
            client_id = ch.client_id
    finally:
        await relay.close()
    await forget_session(client_id)
    assert receipt.status is Status.DELIVERED and receipt.delivery_id == 1


# -- audio ----------------------------------------------------------------------------------


async def test_without_espeak_the_text_alone_is_sent(mqtt_broker, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng on this PATH
    prefix = unique_prefix()
    config = {"audio_base_url": "http://127.0.0.1:8080/audio", "audio_dir": str(tmp_path)}
    async with listening(f"{prefix}/+/play") as seen, speaker(prefix, **config) as channel:
        assert channel.synthesiser is not None and not channel.synthesiser.available
        await channel.send([message(f"{prefix}/a", 1)])
        (play,) = await seen.wait(1)
    doc = json.loads(play.payload)
    assert doc["audio_url"] is None and doc["text"] == SCRIPT


async def test_audio_url_given_by_the_dispatcher_is_passed_on(mqtt_broker):
    prefix = unique_prefix()
    url = "http://127.0.0.1:8080/audio/" + "a" * 64 + ".wav"
    async with listening(f"{prefix}/+/play") as seen, speaker(prefix) as channel:
        await channel.send([message(f"{prefix}/a", 1, metadata={"audio_url": url})])
        (play,) = await seen.wait(1)
    assert json.loads(play.payload)["audio_url"] == url


async def test_with_espeak_a_wav_is_synthesised_and_linked(mqtt_broker, tmp_path: Path):
    if shutil.which("espeak-ng") is None:
        if IN_CI:
            pytest.fail("espeak-ng is not installed; .ci/run installs it")
        pytest.skip("espeak-ng is not installed here (apt-get install espeak-ng); CI installs it")
    prefix = unique_prefix()
    base = "http://127.0.0.1:8080/audio"
    config = {"audio_base_url": base + "/", "audio_dir": str(tmp_path)}
    async with listening(f"{prefix}/+/play") as seen, speaker(prefix, **config) as channel:
        results = await channel.send(
            [message(f"{prefix}/a", 1), message(f"{prefix}/b", 2, text="Attention.", language="en")]
        )
        assert [r.status for r in results] == [Status.SENT, Status.SENT]
        plays = {
            json.loads(m.payload)["reference"]: json.loads(m.payload) for m in await seen.wait(2)
        }
    zh = audio_name(SCRIPT, "cmn", channel.config.speech_wpm)
    en = audio_name("Attention.", "en", channel.config.speech_wpm)
    assert plays["wp-1"]["audio_url"] == f"{base}/{zh}.wav"
    assert plays["wp-2"]["audio_url"] == f"{base}/{en}.wav"
    for name in (zh, en):
        assert (tmp_path / f"{name}.wav").read_bytes()[:4] == b"RIFF"
