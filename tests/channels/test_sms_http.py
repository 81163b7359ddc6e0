"""The http_json SMS driver: configuration errors, dialect, batches, classification, secrets.

Against the real gateway simulator where it can produce the situation; against a scripted
HTTP server on 127.0.0.1 for answers the simulator never gives (other dialects, odd statuses).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from tests.channels.peers import Sim, running_sim, serve
from warnpub.channels.base import ChannelError, Message, Status
from warnpub.channels.sms_http import HttpJsonSms, parse_config, parse_retry_after
from warnpub.clock import utcnow

NUMBER = "+8613800138000"


def msg(i: int = 1, to: str = NUMBER, text: str = "暴雨红色预警", key: str = "") -> Message:
    return Message(delivery_id=i, address=to, text=text, idempotency_key=key)


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with running_sim() as s:
        yield s


async def sms(config: dict[str, Any]) -> HttpJsonSms:
    channel = HttpJsonSms("test-gw", config)
    await channel.start()
    return channel


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, "key url: this key is required"),
        ({"url": "ftp://x/sms"}, "key url: 'ftp://x/sms' is not an http:// or https:// URL"),
        ({"url": "http:///sms"}, "key url:"),
        ({"url": "http://x", "batch_url": "nope"}, "key batch_url:"),
        ({"url": "http://x", "auth_header": "X-Key"}, "auth_header and auth_value together"),
        ({"url": "http://x", "auth_value": "s"}, "auth_header and auth_value together"),
        ({"url": "http://x", "auth_header": "X Key", "auth_value": "s"}, "key auth_header:"),
        ({"url": "http://x", "rate_per_s": 0}, "key rate_per_s: Input should be greater than 0"),
        ({"url": "http://x", "timeout_s": -1}, "key timeout_s:"),
        ({"url": "http://x", "max_batch": 0}, "key max_batch:"),
        ({"url": "http://x", "concurrency": "many"}, "key concurrency:"),
        (
            {"url": "http://x", "fields": {"to": "x", "text": "x"}},
            "key fields: the four field names must differ",
        ),
        ({"url": "http://x", "fields": {"phone": "m"}}, "key fields.phone: unknown key"),
        ({"url": "http://x", "response": {"id": ""}}, "key response.id: must not be empty"),
        ({"url": "http://x", "colour": "red"}, "key colour: unknown key for the http_json adapter"),
    ],
)
def test_bad_config_names_the_key(config, expected):
    with pytest.raises(ChannelError) as err:
        parse_config(config)
    assert expected in str(err.value)


def test_several_errors_are_reported_at_once():
    with pytest.raises(ChannelError) as err:
        parse_config({"rate_per_s": -1, "weight": -2})
    text = str(err.value)
    assert "key url" in text and "key rate_per_s" in text and "key weight" in text


def test_limits_and_defaults_from_config():
    single = HttpJsonSms("a", {"url": "http://127.0.0.1:1/sms", "rate_per_s": 2.5})
    assert single.limits.max_batch == 1 and single.limits.receipts is True
    assert single.limits.burst == 3 and single.limits.rate_per_s == 2.5 and single.weight == 1.0
    batch = HttpJsonSms(
        "b",
        {
            "name": "b",
            "adapter": "http_json",
            "url": "http://127.0.0.1:1/sms",
            "batch_url": "http://127.0.0.1:1/sms/batch",
            "concurrency": 3,
            "weight": 2,
            "receipt_timeout_s": 60,
            "callback_secret": "cb-secret",
        },
    )
    assert batch.limits.max_batch == 100 and batch.limits.concurrency == 3
    assert batch.limits.receipt_timeout_s == 60 and batch.weight == 2
    assert batch.callback_secret == "cb-secret" and single.callback_secret is None
    assert batch.kind == "sms" and batch.name == "b"


# -- against the simulator ----------------------------------------------------------------


async def test_single_send_carries_idempotency_key_and_sender(sim):
    channel = await sms({"url": sim.sms_url, "sender_id": "WARNPUB"})
    try:
        results = await channel.send([msg(1, key="delivery-1"), msg(2, to="+8613800138001")])
    finally:
        await channel.close()
    assert [r.status for r in results] == [Status.SENT, Status.SENT]
    page = (await sim.messages())["messages"]
    refs = {m["reference"]: m for m in page}
    assert set(refs) == {"delivery-1", "2"}  # the key, or the delivery id when none was set
    assert refs["delivery-1"]["sender"] == "WARNPUB" and refs["2"]["text"] == "暴雨红色预警"
    assert {r.provider_ref for r in results} == {m["id"] for m in page}


async def test_batch_endpoint_gives_one_result_per_message(sim):
    channel = await sms({"url": sim.sms_url, "batch_url": sim.batch_url, "max_batch": 10})
    batch = [
        msg(1, to="+8613800138001"),
        msg(2, to="12345"),  # not E.164
        msg(3, to="+8613800138003", text=" "),  # empty content
        msg(4, to="+8613800138004"),
    ]
    try:
        results = {r.delivery_id: r for r in await channel.send(batch)}
    finally:
        await channel.close()
    assert results[1].status is Status.SENT and results[4].status is Status.SENT
    assert results[2].status is Status.PERMANENT and "invalid_number" in results[2].error
    assert results[3].status is Status.PERMANENT and "rejected_content" in results[3].error
    stats = await sim.stats()
    assert stats["requests"] == 1 and stats["accepted"] == 2


async def test_more_than_max_batch_is_split(sim):
    channel = await sms({"url": sim.sms_url, "batch_url": sim.batch_url, "max_batch": 3})
    try:
        results = await channel.send([msg(i, to=f"+86138001380{i:02d}") for i in range(7)])
    finally:
        await channel.close()
    assert len(results) == 7 and all(r.status is Status.SENT for r in results)
    assert (await sim.stats())["requests"] == 3


async def test_without_batch_url_a_batch_goes_as_parallel_singles(sim):
    channel = await sms({"url": sim.sms_url, "max_batch": 5})
    try:
        results = await channel.send([msg(i, to=f"+86138001380{i:02d}") for i in range(5)])
    finally:
        await channel.close()
    assert sorted(r.delivery_id for r in results) == [0, 1, 2, 3, 4]
    assert all(r.status is Status.SENT for r in results)
    assert (await sim.stats())["requests"] == 5


async def test_throttling_429_gives_retry_after(sim):
    await sim.control(throttle_per_s=2)
    channel = await sms({"url": sim.sms_url, "batch_url": sim.batch_url, "max_batch": 5})
    try:
        first = await channel.send([msg(1, to="+8613800138001"), msg(2, to="+8613800138002")])
        single = await channel.send([msg(3, to="+8613800138003")])
        batch = await channel.send([msg(4, to="+8613800138004"), msg(5, to="+8613800138005")])
    finally:
        await channel.close()
    assert all(r.status is Status.SENT for r in first)
    (throttled,) = single
    assert throttled.status is Status.TRANSIENT and "429" in throttled.error
    assert throttled.retry_after_s == 1.0  # the Retry-After header (whole seconds)
    assert all(r.status is Status.TRANSIENT and r.retry_after_s == 1.0 for r in batch)
    assert (await sim.stats())["accepted"] == 2


async def test_partly_throttled_batch_retries_only_the_rest(sim):
    await sim.control(throttle_per_s=2)
    channel = await sms({"url": sim.sms_url, "batch_url": sim.batch_url, "max_batch": 5})
    try:
        results = {
            r.delivery_id: r
            for r in await channel.send([msg(i, to=f"+86138001380{i:02d}") for i in range(4)])
        }
    finally:
        await channel.close()
    assert [results[i].status for i in range(4)] == [Status.SENT] * 2 + [Status.TRANSIENT] * 2
    assert 0 < (results[3].retry_after_s or 0) <= 1.0  # per message, from the batch answer


async def test_timeout_is_transient_and_the_retry_is_not_doubled(sim):
    await sim.control(latency_ms=400)
    channel = await sms({"url": sim.sms_url, "timeout_s": 0.1})
    try:
        (late,) = await channel.send([msg(1, key="k-1")])
        assert late.status is Status.TRANSIENT and "no answer within 0.1 s" in late.error
        await asyncio.sleep(0.5)  # the gateway finished accepting it meanwhile
        await sim.control(latency_ms=0)
        (retried,) = await channel.send([msg(1, key="k-1")])
    finally:
        await channel.close()
    assert retried.status is Status.SENT
    stats = await sim.stats()
    assert stats["accepted"] == 1 and stats["duplicates"] == 1


async def test_server_errors_and_outage_are_transient(sim):
    channel = await sms({"url": sim.sms_url})
    try:
        await sim.control(error_rate=1.0)
        (error,) = await channel.send([msg(1)])
        await sim.control(error_rate=0, outage_s=30)
        (outage,) = await channel.send([msg(2)])
    finally:
        await channel.close()
    assert error.status is Status.TRANSIENT and error.error.startswith("HTTP 500 internal")
    assert outage.status is Status.TRANSIENT and outage.error.startswith("HTTP 503 outage")
    assert 29 <= (outage.retry_after_s or 0) <= 30
    assert (await sim.stats())["accepted"] == 0


async def test_unreachable_gateway_is_transient():
    channel = await sms({"url": "http://127.0.0.1:9/sms", "timeout_s": 2})  # discard port: closed
    try:
        (result,) = await channel.send([msg(1)])
    finally:
        await channel.close()
    assert result.status is Status.TRANSIENT and "cannot reach the gateway" in result.error


async def test_auth_header_is_sent_and_never_logged(caplog):
    secret = "Bearer s3cr3t-t0ken-value"
    caplog.set_level(logging.DEBUG)
    async with running_sim(auth_header="Authorization", auth_value=secret) as sim:
        good = await sms({"url": sim.sms_url, "auth_header": "Authorization", "auth_value": secret})
        bad = await sms({"url": sim.sms_url, "auth_header": "Authorization", "auth_value": "no"})
        try:
            (ok,) = await good.send([msg(1)])
            (refused,) = await bad.send([msg(2)])
            await sim.control(permanent_numbers=[NUMBER], error_rate=0)
            (permanent,) = await good.send([msg(3)])
        finally:
            await good.close()
            await bad.close()
        stats = await sim.stats()
    assert ok.status is Status.SENT and stats["accepted"] == 1 and stats["unauthorized"] == 1
    assert refused.status is Status.TRANSIENT and "401" in refused.error
    assert permanent.status is Status.PERMANENT
    seen = caplog.text + repr(good) + str(good.config) + repr(good.config)
    seen += " ".join(r.error for r in (ok, refused, permanent))
    assert secret not in seen and "s3cr3t" not in seen
    assert "13800138000" not in caplog.text  # numbers are masked in every log line


# -- other dialects and odd answers (a scripted gateway) ------------------------------------


@dataclass
class Scripted:
    """An HTTP server that records requests and answers from a script."""

    answers: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.requests.append((request.path, dict(request.headers), json.loads(raw)))
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


async def test_field_names_and_response_paths_are_configurable(scripted):
    scripted.answers = [
        (200, {"data": {"msgid": "P-1"}}, {}),
        (
            200,
            {
                "list": [
                    {"ref": "12", "data": {"msgid": "P-12"}},
                    {"ref": "13", "err": "bad", "fatal": True},
                ]
            },
            {},
        ),
    ]
    channel = await sms(
        {
            "url": f"{scripted.url}/send",
            "batch_url": f"{scripted.url}/send-many",
            "batch_field": "items",
            "sender_id": "应急",
            "fields": {
                "to": "mobile",
                "text": "content",
                "reference": "client_ref",
                "sender": "sign",
            },
            "response": {
                "id": "data.msgid",
                "reference": "ref",
                "error": "err",
                "permanent": "fatal",
                "results": "list",
            },
        }
    )
    try:
        (one,) = await channel.send([msg(11, key="11")])
        many = {
            r.delivery_id: r for r in await channel.send([msg(12), msg(13, to="+8613800138013")])
        }
    finally:
        await channel.close()
    path, headers, body = scripted.requests[0]
    assert path == "/send" and headers["Content-Type"].startswith("application/json")
    assert body == {"mobile": NUMBER, "content": "暴雨红色预警", "client_ref": "11", "sign": "应急"}
    assert scripted.requests[1][0] == "/send-many"
    assert [i["client_ref"] for i in scripted.requests[1][2]["items"]] == ["12", "13"]
    assert one.status is Status.SENT and one.provider_ref == "P-1"
    assert many[12].status is Status.SENT and many[12].provider_ref == "P-12"
    assert many[13].status is Status.PERMANENT and "bad" in many[13].error


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retry_after"),
    [
        (200, {"id": "x"}, {}, Status.SENT, None),
        (202, "", {}, Status.SENT, None),
        (200, {"code": "throttled", "retry_after_s": 2}, {}, Status.TRANSIENT, 2.0),
        (400, {"code": "invalid_number"}, {}, Status.PERMANENT, None),
        (422, {"code": "whatever", "permanent": True}, {}, Status.PERMANENT, None),
        (
            400,
            {"code": "rejected_content", "error": "to +8613800138000"},
            {},
            Status.PERMANENT,
            None,
        ),
        (400, {"code": "malformed"}, {}, Status.TRANSIENT, None),
        (401, {}, {}, Status.TRANSIENT, None),
        (403, {"code": "invalid_number"}, {}, Status.TRANSIENT, None),
        (404, "not here", {}, Status.TRANSIENT, None),
        (429, {}, {"Retry-After": "7"}, Status.TRANSIENT, 7.0),
        (429, {}, {"Retry-After": "0.5"}, Status.TRANSIENT, 0.5),
        (500, "<html>oops</html>", {}, Status.TRANSIENT, None),
        (503, {"code": "invalid_number"}, {"Retry-After": "3"}, Status.TRANSIENT, 3.0),
    ],
)
async def test_classification(scripted, status, body, headers, expected, retry_after):
    scripted.answers = [(status, body, headers)]
    channel = await sms({"url": f"{scripted.url}/sms"})
    try:
        (result,) = await channel.send([msg(1)])
    finally:
        await channel.close()
    assert result.status is expected, result
    assert result.retry_after_s == retry_after
    assert "13800138000" not in result.error
    if expected is not Status.SENT:
        assert result.error.startswith(f"HTTP {status}")


async def test_batch_answer_that_forgets_a_message_leaves_it_transient(scripted):
    scripted.answers = [(200, {"results": [{"reference": "1", "id": "a"}]}, {})]
    channel = await sms({"url": f"{scripted.url}/sms", "batch_url": f"{scripted.url}/batch"})
    try:
        results = {r.delivery_id: r for r in await channel.send([msg(1), msg(2)])}
    finally:
        await channel.close()
    assert results[1].status is Status.SENT and results[1].provider_ref == "a"
    assert results[2].status is Status.TRANSIENT and "did not mention" in results[2].error


async def test_batch_answer_without_results_list(scripted):
    scripted.answers = [(200, {"id": "batch-1"}, {}), (400, {"code": "invalid_number"}, {})]
    channel = await sms({"url": f"{scripted.url}/sms", "batch_url": f"{scripted.url}/batch"})
    try:
        ok = await channel.send([msg(1), msg(2)])
        bad = await channel.send([msg(3), msg(4)])
    finally:
        await channel.close()
    # One id for the whole request is not a message id.
    assert all(r.status is Status.SENT and r.provider_ref is None for r in ok)
    assert all(r.status is Status.PERMANENT for r in bad)


def test_retry_after_forms():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("nan") is None
    later = format_datetime(utcnow() + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 31


async def test_send_nothing_and_close_twice():
    channel = HttpJsonSms("idle", {"url": "http://127.0.0.1:9/sms"})
    assert await channel.send([]) == []
    await channel.close()
    await channel.start()
    await channel.close()
    await channel.close()
