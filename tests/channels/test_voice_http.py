"""The http_voice adapter, the simulator's voice endpoint and the call-outcome parser.

Against the real gateway simulator where it can produce the situation (calls, outcomes,
idempotency, throttling, outage, refusals, wrong credentials, slowness); against a scripted
HTTP server on 127.0.0.1 for answers the simulator never gives (other dialects, odd statuses).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

# The contract module imports every harness, this one included: importing it first completes
# that cycle before the harness is used here.
import tests.channels.contract  # noqa: F401
from tests.channels.harness_voice import OutcomeReceiver, outcome_receiver, voice_config
from tests.channels.peers import Sim, running_sim, serve
from warnpub.callbacks.voice_calls import CallFormat, CallOutcome, parse_call_outcomes
from warnpub.channels.base import ChannelError, Message, Status
from warnpub.channels.registry import build_channels
from warnpub.channels.voice_http import HttpVoice, parse_config
from warnpub.config import Settings
from warnpub.problems import Problem

NUMBER = "+8613800138000"
SECRET = "voice-callback-secret"


def msg(i: int = 1, to: str = NUMBER, text: str = "请注意，暴雨红色预警。", **kw: Any) -> Message:
    return Message(delivery_id=i, address=to, text=text, idempotency_key=f"wp-{i}", **kw)


@pytest.fixture
async def receiver() -> AsyncIterator[OutcomeReceiver]:
    async with outcome_receiver(SECRET) as r:
        yield r


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with running_sim(secret=SECRET, voice_delay_ms=20) as s:
        yield s


async def voice(sim: Sim, receiver: OutcomeReceiver, **extra: Any) -> HttpVoice:
    channel = HttpVoice("test-voice", voice_config(sim, receiver, **extra))
    await channel.start()
    return channel


async def calls(sim: Sim) -> list[dict[str, Any]]:
    async with sim.http.get(f"{sim.url}/voice/calls?limit=1000") as r:
        assert r.status == 200
        return (await r.json())["calls"]


# -- configuration ------------------------------------------------------------------------

BASE = {"url": "http://gw/call", "callback_url": "http://wp/cb", "callback_secret": "s"}


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "key url: this key is required"),
        ({"url": "http://x"}, "key callback_url: this key is required"),
        (
            {"url": "http://x", "callback_url": "http://y"},
            "key callback_secret: this key is required",
        ),
        ({**BASE, "callback_secret": " "}, "key callback_secret: must not be empty"),
        ({**BASE, "url": "ftp://x"}, "key url: 'ftp://x' is not an http:// or https:// URL"),
        ({**BASE, "callback_url": "/relative"}, "key callback_url:"),
        ({**BASE, "confirm_digit": "12"}, "key confirm_digit: '12' is not one phone key"),
        ({**BASE, "retries": -1}, "key retries:"),
        ({**BASE, "retries": 11}, "key retries:"),
        ({**BASE, "retry_interval_s": 0}, "key retry_interval_s: Input should be greater than 0"),
        ({**BASE, "repeat": 0}, "key repeat:"),
        ({**BASE, "auth_header": "X-Key"}, "auth_header and auth_value together"),
        ({**BASE, "auth_header": "X Key", "auth_value": "v"}, "key auth_header:"),
        ({**BASE, "prompts": {"zh": ""}}, "key prompts: give each language a non-empty prompt"),
        ({**BASE, "fields": {"to": "x", "text": "x"}}, "key fields: the field names must differ"),
        ({**BASE, "retry": 2}, "key retry: unknown key for the http_voice adapter"),
    ],
)
def test_bad_config_names_the_key(config, expected):
    with pytest.raises(ChannelError) as caught:
        parse_config(config)
    assert expected in str(caught.value)


def test_registry_names_the_instance_and_the_key():
    settings = Settings()
    settings.channels = {
        "voice": [{"name": "calls", "adapter": "http_voice", **BASE, "retries": "x"}]
    }
    with pytest.raises(ChannelError) as caught:
        build_channels(settings, factories={"http_voice": HttpVoice})
    assert str(caught.value).startswith(
        "channels.voice[0] (name 'calls', adapter 'http_voice'): key retries:"
    )
    settings.channels = {"sms": [{"name": "calls", "adapter": "http_voice", **BASE}]}
    with pytest.raises(ChannelError, match=r"move this entry under \[\[channels.voice\]\]"):
        build_channels(settings, factories={"http_voice": HttpVoice})


def test_limits_defaults_and_secrets():
    channel = HttpVoice("calls", {**BASE, "auth_header": "X-Key", "auth_value": "k3y-v4lue"})
    assert channel.kind == "voice" and channel.limits.receipts is True
    assert channel.limits.max_batch == 10 and channel.limits.rate_per_s == 5.0
    assert channel.limits.receipt_timeout_s == 1800.0
    assert (channel.retries, channel.retry_interval_s, channel.confirm_digit) == (2, 300.0, "1")
    shown = repr(channel) + str(channel.config) + repr(channel.config)
    assert "k3y-v4lue" not in shown and "callback_secret=SecretStr('**********')" in shown
    assert channel.callback_secret == "s"


def test_prompt_follows_the_language():
    channel = HttpVoice("calls", {**BASE, "prompts": {"zh": "请按1", "en": "Press 1", "bo": "༡"}})
    assert channel.prompt_for("zh-CN") == "请按1"
    assert channel.prompt_for("en-GB") == "Press 1"
    assert channel.prompt_for("bo") == "༡"
    assert channel.prompt_for("ug") == "请按1"  # no prompt for it: Mandarin


# -- calls against the simulator --------------------------------------------------------------


async def test_a_call_carries_script_prompt_reference_and_callback(sim, receiver):
    channel = await voice(sim, receiver, caller_id="057187000000")
    try:
        (result,) = await channel.send([msg(1)])
        (english,) = await channel.send([msg(2, to="+8613800138001", language="en")])
    finally:
        await channel.close()
    assert result.status is Status.SENT and result.provider_ref.startswith("call-")
    first, second = await calls(sim)
    assert first["to"] == NUMBER and first["text"] == "请注意，暴雨红色预警。"
    assert first["reference"] == "wp-1" and first["prompt"] == "收到预警请按1。"
    assert first["language"] == "zh-CN" and first["attempt"] == 1
    assert second["prompt"] == "If you have heard this warning, press 1."
    assert english.provider_ref == second["id"]
    outcomes = await receiver.wait_for(2)
    assert {o.delivery_id for o in outcomes} == {1, 2}
    assert all(o.outcome is CallOutcome.CONFIRMED and o.acknowledged for o in outcomes)
    assert {o.provider_ref for o in outcomes} == {result.provider_ref, english.provider_ref}


async def test_a_batch_is_requested_in_parallel(sim, receiver):
    channel = await voice(sim, receiver, max_batch=5)
    messages = [msg(i, to=f"+861380013800{i}") for i in range(5)]
    try:
        results = await channel.send(messages)
    finally:
        await channel.close()
    assert sorted(r.delivery_id for r in results) == list(range(5))
    assert all(r.status is Status.SENT for r in results)
    assert len({r.provider_ref for r in results}) == 5 and len(await calls(sim)) == 5


async def test_the_reference_stops_a_second_call_while_the_first_rings(sim, receiver):
    await sim.control(voice_delay_ms=5000)
    channel = await voice(sim, receiver)
    try:
        (first,) = await channel.send([msg(1)])
        (again,) = await channel.send([msg(1)])
    finally:
        await channel.close()
    assert first.status is again.status is Status.SENT
    assert first.provider_ref == again.provider_ref
    stats = (await sim.stats())["calls"]
    assert stats["placed"] == 1 and stats["duplicates"] == 1


async def test_after_no_answer_the_same_reference_calls_again(sim, receiver):
    await sim.control(voice_outcomes={NUMBER: ["no_answer", "busy", "answered"]})
    channel = await voice(sim, receiver)
    try:
        results = []
        for n in range(1, 4):
            (result,) = await channel.send([msg(7)])
            results.append(result)
            await receiver.wait_for(n)
        (after,) = await channel.send([msg(7)])  # answered: no further call
    finally:
        await channel.close()
    assert len({r.provider_ref for r in results}) == 3
    assert after.provider_ref == results[2].provider_ref
    assert [c["attempt"] for c in await calls(sim)] == [1, 2, 3]
    outcomes = receiver.outcomes
    assert [o.outcome for o in outcomes] == [
        CallOutcome.NO_ANSWER,
        CallOutcome.BUSY,
        CallOutcome.ANSWERED,
    ]
    assert [o.status for o in outcomes] == [Status.TRANSIENT, Status.TRANSIENT, Status.DELIVERED]
    assert [o.error for o in outcomes] == ["no answer", "the line was busy", ""]
    assert not any(o.acknowledged for o in outcomes)


async def test_throttling_429_gives_retry_after(sim, receiver):
    await sim.control(throttle_per_s=1)
    channel = await voice(sim, receiver)
    try:
        (ok,) = await channel.send([msg(1)])
        (throttled,) = await channel.send([msg(2, to="+8613800138001")])
    finally:
        await channel.close()
    assert ok.status is Status.SENT
    assert throttled.status is Status.TRANSIENT and "429 throttled" in throttled.error
    assert throttled.retry_after_s is not None and 0 < throttled.retry_after_s <= 1


async def test_outage_503_is_transient_with_retry_after(sim, receiver):
    await sim.control(outage_s=30)
    channel = await voice(sim, receiver)
    try:
        (down,) = await channel.send([msg(1)])
        await sim.control(outage_s=0)
        (up,) = await channel.send([msg(1)])
    finally:
        await channel.close()
    assert down.status is Status.TRANSIENT and "503 outage" in down.error
    assert down.retry_after_s is not None and 29 <= down.retry_after_s <= 30
    assert up.status is Status.SENT and len(await calls(sim)) == 1


async def test_refusals_are_permanent_and_numbers_masked(sim, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    await sim.control(permanent_numbers=["+8613800138001"])
    channel = await voice(sim, receiver)
    try:
        (invalid,) = await channel.send([msg(1, to="+8610000")])
        (unreachable,) = await channel.send([msg(2, to="+8613800138001")])
        (not_e164,) = await channel.send([msg(3, to="13800138000")])
        (empty,) = await channel.send([msg(4, text="  ")])
    finally:
        await channel.close()
    assert invalid.status is Status.PERMANENT and "400 invalid_number" in invalid.error
    assert unreachable.status is Status.PERMANENT and "unreachable_number" in unreachable.error
    assert not_e164.status is Status.PERMANENT and "E.164" in not_e164.error
    assert empty.status is Status.PERMANENT and "empty" in empty.error
    assert all(r.retry_after_s is None for r in (invalid, unreachable, not_e164, empty))
    stats = (await sim.stats())["calls"]
    assert stats["requested"] == 2 and stats["placed"] == 0  # the last two never left
    seen = caplog.text + " ".join(r.error for r in (invalid, unreachable, not_e164))
    assert "13800138001" not in seen and "13800138000" not in seen


async def test_wrong_credentials_are_transient_and_never_shown(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Bearer v0ice-t0ken"
    async with running_sim(secret=SECRET, auth_header="Authorization", auth_value=secret) as s:
        good = await voice(s, receiver, auth_header="Authorization", auth_value=secret)
        bad = await voice(s, receiver, auth_header="Authorization", auth_value="nope")
        try:
            (ok,) = await good.send([msg(1)])
            (refused,) = await bad.send([msg(2)])
        finally:
            await good.close()
            await bad.close()
    assert ok.status is Status.SENT
    assert refused.status is Status.TRANSIENT and "401" in refused.error
    seen = caplog.text + repr(good) + str(good.config) + refused.error
    assert "v0ice-t0ken" not in seen


async def test_slow_or_unreachable_gateway_is_transient(sim, receiver):
    await sim.control(latency_ms=2000)
    slow = await voice(sim, receiver, timeout_s=0.3)
    gone = HttpVoice(
        "gone", {**voice_config(sim, receiver), "url": "http://127.0.0.1:9/voice/calls"}
    )
    try:
        (timed_out,) = await slow.send([msg(1)])
        (unreachable,) = await gone.send([msg(2)])
    finally:
        await slow.close()
        await gone.close()
    assert timed_out.status is Status.TRANSIENT and "no answer within 0.3 s" in timed_out.error
    assert unreachable.status is Status.TRANSIENT
    assert "cannot reach the voice gateway" in unreachable.error


async def test_send_nothing_and_close_twice(sim, receiver):
    channel = await voice(sim, receiver)
    assert await channel.send([]) == []
    await channel.close()
    await channel.close()


# -- other dialects and odd answers (a scripted gateway) ------------------------------------


@dataclass
class Scripted:
    answers: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), json.loads(await request.read())))
        status, body, headers = self.answers.pop(0)
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=status, text=text, headers=headers)


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    peer = Scripted()
    app = web.Application()
    app.router.add_post("/{tail:.*}", peer.handle)
    async with serve(app) as url:
        peer.url = url
        yield peer


def scripted_voice(peer: Scripted, **extra: Any) -> HttpVoice:
    return HttpVoice(
        "scripted",
        {
            "url": f"{peer.url}/call",
            "callback_url": "http://127.0.0.1:8080/api/v1/callbacks/voice/scripted/outcomes",
            "callback_secret": SECRET,
            **extra,
        },
    )


async def test_field_names_response_paths_and_headers(scripted):
    scripted.answers = [(201, {"data": {"call_id": "C-9"}}, {})]
    channel = scripted_voice(
        scripted,
        auth_header="X-Api-Key",
        auth_value="k",
        fields={"to": "callee", "text": "tts", "reference": "out_id"},
        response={"id": "data.call_id"},
        repeat=3,
    )
    try:
        (result,) = await channel.send([msg(5)])
    finally:
        await channel.close()
    assert result.status is Status.SENT and result.provider_ref == "C-9"
    ((headers, body),) = scripted.requests
    assert headers["Idempotency-Key"] == "wp-5" and headers["X-Api-Key"] == "k"
    assert body == {
        "callee": NUMBER,
        "tts": "请注意，暴雨红色预警。",
        "prompt": "收到预警请按1。",
        "confirm_digit": "1",
        "language": "zh-CN",
        "out_id": "wp-5",
        "callback_url": "http://127.0.0.1:8080/api/v1/callbacks/voice/scripted/outcomes",
        "repeat": 3,
    }


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retry_after"),
    [
        (200, {"status": "queued"}, {}, Status.TRANSIENT, None),  # no call id: cannot match
        (200, "not json", {}, Status.TRANSIENT, None),
        (429, {"code": "throttled"}, {"Retry-After": "7"}, Status.TRANSIENT, 7.0),
        (429, {"retry_after_s": 2.5}, {}, Status.TRANSIENT, 2.5),
        (503, "down", {"Retry-After": "12"}, Status.TRANSIENT, 12.0),
        (500, {"code": "internal"}, {}, Status.TRANSIENT, None),
        (502, "<html>bad gateway</html>", {}, Status.TRANSIENT, None),
        (408, {}, {}, Status.TRANSIENT, None),
        (403, {}, {}, Status.TRANSIENT, None),
        (400, {"code": "invalid_number"}, {}, Status.PERMANENT, None),
        (404, {"error": "no such route"}, {}, Status.PERMANENT, None),
        (422, {"code": "rejected_content"}, {}, Status.PERMANENT, None),
    ],
)
async def test_classification(scripted, status, body, headers, expected, retry_after):
    scripted.answers = [(status, body, headers)]
    channel = scripted_voice(scripted)
    try:
        (result,) = await channel.send([msg(1)])
    finally:
        await channel.close()
    assert result.status is expected and result.error, result
    assert result.retry_after_s == retry_after
    assert f"HTTP {status}" in result.error


# -- the outcome callback's body ------------------------------------------------------------


def test_outcomes_parse_to_call_receipts():
    body = {
        "calls": [
            {"id": "c1", "reference": "wp-11", "status": "answered", "digits": "31", "at": 0},
            {"id": "c2", "reference": "wp-12", "status": "ANSWERED", "digits": ""},
            {"id": "c3", "reference": "13", "status": "no-answer"},
            {"id": "c4", "status": "busy"},
            {"reference": "wp-15", "status": "failed", "error": "+8613800138000 is out of service"},
            {"id": "c6", "reference": "wp-16", "status": "ringing"},
            {"id": "c7", "reference": "wp-17", "status": "confirmed"},
        ]
    }
    got = parse_call_outcomes(json.dumps(body).encode())
    assert [(r.delivery_id, r.provider_ref, r.outcome) for r in got] == [
        (11, "c1", CallOutcome.CONFIRMED),
        (12, "c2", CallOutcome.ANSWERED),
        (13, "c3", CallOutcome.NO_ANSWER),
        (None, "c4", CallOutcome.BUSY),
        (15, None, CallOutcome.FAILED),
        (17, "c7", CallOutcome.CONFIRMED),
    ]
    assert [r.status for r in got] == [
        Status.DELIVERED,
        Status.DELIVERED,
        Status.TRANSIENT,
        Status.TRANSIENT,
        Status.PERMANENT,
        Status.DELIVERED,
    ]
    assert [r.acknowledged for r in got] == [True, False, False, False, False, True]
    assert got[0].at is not None and got[0].at.year == 1970
    assert got[4].error.endswith("8000 is out of service") and "13800" not in got[4].error


def test_outcome_format_and_confirm_digit_are_configurable():
    fmt = CallFormat(list_field="records", id="callId", status="state", digits="dtmf")
    body = {"records": [{"callId": "x", "state": "answered", "dtmf": "#"}]}
    (r,) = parse_call_outcomes(body, fmt, confirm_digit="#")
    assert r.outcome is CallOutcome.CONFIRMED and r.provider_ref == "x"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{not json", 400, None),
        (b"[]", 422, "calls"),
        (b'"text"', 422, None),
        (b'{"calls": {}}', 422, "calls"),
        (b'{"calls": [{"id": "c", "status": "lost"}]}', 422, "calls[0].status"),
        (b'{"calls": [{"id": "c"}]}', 422, "calls[0].status"),
        (b'{"calls": [{"status": "busy"}]}', 422, "calls[0]"),
        (b'{"calls": [{"id": "c", "status": "busy", "at": "yesterday"}]}', 422, "calls[0].at"),
        (b'{"calls": [3]}', 422, "calls[0]"),
    ],
)
def test_bad_outcome_bodies_name_the_field(body, status, field):
    with pytest.raises(Problem) as caught:
        parse_call_outcomes(body)
    assert caught.value.status == status
    if field is not None:
        assert caught.value.errors and caught.value.errors[0].field == field


# -- the simulator's voice knobs --------------------------------------------------------------


async def test_voice_knobs_are_checked_and_reset(sim, receiver):
    status, body, _ = await sim.post("/control", {"voice_outcome": "maybe"})
    assert status == 400 and "voice_outcome: use one of confirmed" in body["error"]
    status, body, _ = await sim.post("/control", {"voice_outcomes": {NUMBER: ["ringing"]}})
    assert status == 400 and "'ringing' is not an outcome" in body["error"]
    status, body, _ = await sim.post("/control", {"voice_outcomes": {NUMBER: []}})
    assert status == 400 and "non-empty list" in body["error"]
    status, body, _ = await sim.post("/control", {"voice_delay_ms": -1})
    assert status == 400 and body["error"].startswith("voice_delay_ms:")
    shown = await sim.control(voice_outcomes={NUMBER: "busy"}, voice_outcome="no_answer")
    assert shown["voice_outcomes"] == {NUMBER: ["busy"]} and shown["voice_outcome"] == "no_answer"
    channel = await voice(sim, receiver)
    try:
        await channel.send([msg(1)])
    finally:
        await channel.close()
    await receiver.wait_for(1)
    assert receiver.outcomes[0].outcome is CallOutcome.BUSY
    await sim.reset()
    stats = await sim.stats()
    assert stats["calls"]["placed"] == 0 and await calls(sim) == []
    assert (await sim.control())["voice_outcome"] == "confirmed"


async def test_a_call_request_without_callback_url_is_refused(sim):
    status, body, _ = await sim.post("/voice/calls", {"to": NUMBER, "text": "x", "reference": "r"})
    assert status == 400 and body["code"] == "malformed" and "callback_url" in body["error"]
    await sim.control(voice_callback_url="http://127.0.0.1:9/outcomes")
    status, body, _ = await sim.post("/voice/calls", {"to": NUMBER, "text": "x", "reference": "r"})
    assert status == 200 and body["status"] == "queued" and body["id"].startswith("call-")
    status, body, _ = await sim.post("/voice/calls", ["not", "an", "object"])
    assert status == 400 and body["code"] == "malformed"
