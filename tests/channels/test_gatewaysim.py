"""The gateway simulator over real HTTP: idempotency, faults, rate figures, signed receipts."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.channels.peers import CallbackReceiver, Sim, callback_receiver, running_sim
from warnpub.channels.base import Status
from warnpub.cli.main import main
from warnpub.gatewaysim import SimConfig, SimConfigError, SimGateway, create_sim_app
from warnpub.gatewaysim.state import valid_number

SECRET = "shared-callback-secret"


def item(ref: str | None, to: str = "+8613800138000", text: str = "预警") -> dict:
    out = {"to": to, "text": text}
    if ref is not None:
        out["reference"] = ref
    return out


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with running_sim() as s:
        yield s


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    async with callback_receiver(SECRET) as r:
        yield r


async def test_same_reference_is_accepted_once(sim):
    first = await sim.post("/sms", item("d-1"))
    again = await sim.post("/sms", item("d-1"))
    status, body, _ = await sim.post("/sms/batch", {"messages": [item("d-1"), item("d-2")]})
    assert first[0] == again[0] == status == 200
    assert first[1]["id"] == again[1]["id"] == body["results"][0]["id"]
    assert again[1]["duplicate"] is True and "duplicate" not in first[1]
    stats = await sim.stats()
    assert stats["accepted"] == 2 and stats["unique_references"] == 2 and stats["duplicates"] == 2
    assert stats["per_number"] == {"+8613800138000": 2}
    assert stats["numbers_with_more_than_one"] == 1


async def test_messages_in_order_of_acceptance_with_paging(sim):
    for i in range(5):
        await sim.post("/sms", item(f"r{i}", to=f"+86138001380{i:02d}"))
    first = await sim.messages(0, 3)
    rest = await sim.messages(first["next"], 3)
    refs = [m["reference"] for m in first["messages"] + rest["messages"]]
    assert refs == ["r0", "r1", "r2", "r3", "r4"] and first["total"] == 5 and rest["next"] == 5
    assert [m["seq"] for m in first["messages"]] == [1, 2, 3]
    assert first["messages"][0]["at"].endswith("Z") and first["messages"][0]["ts"] > 0
    async with sim.http.get(f"{sim.url}/messages?since=-1") as r:
        assert r.status == 400


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("13800138000", "invalid_number"),  # not E.164
        ("+861380013800", "invalid_number"),  # one digit short
        ("+8610000000000", "invalid_number"),  # E.164 shape, not a valid number
        ("+86 138 0013 8000", "invalid_number"),
        (12345, "invalid_number"),
        (None, "invalid_number"),
    ],
)
async def test_invalid_numbers_are_permanent(sim, to, code):
    status, body, _ = await sim.post("/sms", {"to": to, "text": "x", "reference": "a"})
    assert status == 400 and body["code"] == code and body["permanent"] is True
    assert (await sim.stats())["accepted"] == 0


async def test_permanent_numbers_and_empty_text(sim):
    await sim.control(permanent_numbers=["+8613800138001"])
    status, body, _ = await sim.post(
        "/sms/batch",
        [item("a", to="+8613800138001"), item("b", text=""), item("c"), "not an object"],
    )
    codes = [r.get("code") for r in body["results"]]
    assert status == 200 and codes == ["unreachable_number", "rejected_content", None, "malformed"]
    assert [r.get("permanent") for r in body["results"][:2]] == [True, True]


async def test_outage_window(sim):
    await sim.control(outage_s=0.3)
    status, body, headers = await sim.post("/sms", item("o-1"))
    assert status == 503 and body["code"] == "outage" and headers["Retry-After"] == "1"
    await asyncio.sleep(0.35)
    status, _, _ = await sim.post("/sms", item("o-1"))
    stats = await sim.stats()
    assert status == 200 and stats["accepted"] == 1 and stats["outage_refused"] == 1


async def test_error_rate_accepts_nothing_and_is_reproducible():
    async with running_sim(error_rate=0.5, seed=7) as sim:
        answers = [(await sim.post("/sms", item(f"e{i}")))[0] for i in range(20)]
        stats = await sim.stats()
        await sim.reset()
        again = [(await sim.post("/sms", item(f"e{i}")))[0] for i in range(20)]
    assert set(answers) == {200, 500} and answers == again
    assert stats["injected_errors"] == answers.count(500) == 20 - stats["accepted"]


async def test_throttling_answers_429_beyond_the_rate(sim):
    await sim.control(throttle_per_s=3)
    answers = [await sim.post("/sms", item(f"t{i}", to=f"+86138001380{i:02d}")) for i in range(5)]
    assert [a[0] for a in answers] == [200, 200, 200, 429, 429]
    _, body, headers = answers[3]
    assert headers["Retry-After"] == "1" and body["code"] == "throttled"
    assert 0 < body["retry_after_s"] <= 1
    stats = await sim.stats()
    assert stats["accepted"] == 3 and stats["throttled"] == 2 and stats["max_per_1s"] == 3
    await sim.control(throttle_per_s=0)
    assert (await sim.post("/sms", item("t9")))[0] == 200


def test_sliding_window_maximum_counts_any_one_second():
    now = [0.0]
    gateway = SimGateway(SimConfig(), clock=lambda: now[0])
    for i, t in enumerate([0.0, 0.5, 0.9, 1.2, 1.6, 1.7, 1.75, 3.0]):
        now[0] = t
        assert gateway.submit(item(str(i), to=f"+86138001380{i:02d}")).status == 200
    # (0.75, 1.75] holds 0.9, 1.2, 1.6, 1.7, 1.75: five; no one-second window holds more.
    assert gateway.stats()["max_per_1s"] == 5


def test_throttle_window_slides():
    now = [0.0]
    gateway = SimGateway(SimConfig(throttle_per_s=2), clock=lambda: now[0])
    assert [gateway.submit(item(str(i))).status for i in range(3)] == [200, 200, 429]
    now[0] = 0.5
    refused = gateway.submit(item("3"))
    assert refused.status == 429 and refused.retry_after_s == pytest.approx(0.5)
    now[0] = 1.0  # the first two left the window (0, 1]
    assert gateway.submit(item("3")).status == 200


async def test_receipts_are_signed_batched_and_delivered(receiver):
    async with running_sim(callback_url=receiver.receipts_url, secret=SECRET) as sim:
        status, body, _ = await sim.post(
            "/sms/batch", [item(str(i), to=f"+86138001380{i:02d}") for i in range(1, 6)]
        )
        receipts = await receiver.wait_for_receipts(5)
        stats = await sim.stats()
    assert status == 200
    ids = {r["id"] for r in body["results"]}
    assert {r.provider_ref for r in receipts} == ids
    assert {r.delivery_id for r in receipts} == {1, 2, 3, 4, 5}
    assert all(r.status is Status.DELIVERED and r.at is not None for r in receipts)
    assert not receiver.refused and receiver.requests <= 2  # batched
    assert stats["receipts"]["sent"] == 5 and stats["receipts"]["pending"] == 0


async def test_failed_callbacks_are_retried(receiver):
    receiver.fail_next = 2
    async with running_sim(
        callback_url=receiver.receipts_url, secret=SECRET, receipts="fail"
    ) as sim:
        await sim.post("/sms", item("42"))
        (receipt,) = await receiver.wait_for_receipts(1)
        stats = await sim.stats()
    assert receipt.status is Status.PERMANENT and receipt.error == "undeliverable"
    assert receiver.requests == 3 and stats["receipts"]["callback_failures"] == 2


async def test_receipt_delay_and_none(receiver):
    async with running_sim(callback_url=receiver.receipts_url, secret=SECRET) as sim:
        await sim.control(receipt_delay_ms=300)
        await sim.post("/sms", item("1"))
        await asyncio.sleep(0.1)
        assert receiver.receipts == [] and (await sim.stats())["receipts"]["pending"] == 1
        await receiver.wait_for_receipts(1, within_s=3)
        await sim.control(receipts="none", receipt_delay_ms=0)
        await sim.post("/sms", item("2"))
        await asyncio.sleep(0.1)
    assert len(receiver.receipts) == 1


async def test_wrong_secret_is_refused_then_dropped(receiver):
    async with running_sim(
        callback_url=receiver.receipts_url, secret="not-the-shared-one", callback_attempts=2
    ) as sim:
        await sim.post("/sms", item("1"))
        for _ in range(100):
            if (await sim.stats())["receipts"]["dropped"]:
                break
            await asyncio.sleep(0.02)
        stats = await sim.stats()
    assert receiver.receipts == [] and len(receiver.refused) == 2
    assert "signature does not match" in receiver.refused[0]
    assert stats["receipts"]["dropped"] == 1 and stats["receipts"]["sent"] == 0


async def test_inbound_reply_is_forwarded_signed(receiver):
    async with running_sim(inbound_url=receiver.inbound_url, secret=SECRET) as sim:
        status, body, _ = await sim.post("/inbound", {"from": "+8613800138000", "text": "1"})
        assert status == 200 and body["forwarded"] is True
        await sim.control(inbound_url=None)
        assert (await sim.post("/inbound", {"from": "+8613800138000", "text": "1"}))[0] == 409
    (reply,) = receiver.inbound
    assert (
        reply.sender == "+8613800138000" and reply.text == "1" and reply.provider_ref == body["id"]
    )


async def test_queued_inbound_is_answered_at_once_then_forwarded_with_retries(receiver):
    async with running_sim(
        inbound_url=receiver.inbound_url, secret=SECRET, inbound_mode="queue"
    ) as sim:
        status, body, _ = await sim.post("/inbound", {"from": "+8613800138000", "text": "4821 1"})
        assert status == 202 and body["queued"] is True and body["forwarded"] is False
        for _ in range(100):
            if receiver.inbound:
                break
            await asyncio.sleep(0.02)
        (reply,) = receiver.inbound
        assert reply.text == "4821 1" and reply.provider_ref == body["id"]
        assert (await sim.stats())["inbound_forwarded"] == 1

        # An app that keeps refusing (here: a wrong signature) gets the retries, then it is lost.
        await sim.control(secret="not-the-receivers", callback_attempts=2)
        status, _, _ = await sim.post("/inbound", {"from": "+8613800138000", "text": "4821 2"})
        assert status == 202
        for _ in range(200):
            if (await sim.stats())["inbound_lost"]:
                break
            await asyncio.sleep(0.02)
        stats = await sim.stats()
    assert stats["inbound_lost"] == 1 and len(receiver.inbound) == 1
    assert len(receiver.refused) == 2


async def test_reset_forgets_messages_and_faults(sim):
    await sim.post("/sms", item("x"))
    await sim.control(outage_s=60, error_rate=1)
    await sim.reset()
    stats = await sim.stats()
    assert stats["accepted"] == 0 and stats["requests"] == 0 and stats["outage_left_s"] == 0
    assert (await sim.post("/sms", item("x")))[0] == 200


async def test_control_refuses_bad_knobs_and_changes_nothing(sim):
    status, body, _ = await sim.post(
        "/control", {"error_rate": 2, "receipts": "maybe", "colour": "red", "latency_ms": 5}
    )
    assert status == 400 and body["code"] == "bad_control"
    for word in ("error_rate", "receipts", "colour"):
        assert word in body["error"]
    shown = await sim.control()
    assert shown["latency_ms"] == 0 and shown["error_rate"] == 0 and shown["secret"] is None


async def test_malformed_requests(sim):
    async with sim.http.post(f"{sim.url}/sms", data=b"{not json") as r:
        assert r.status == 400 and (await r.json())["code"] == "malformed"
    assert (await sim.post("/sms", ["a list"]))[0] == 400
    assert (await sim.post("/sms/batch", {"messages": []}))[0] == 400
    status, body, _ = await sim.post("/sms/batch", [item(str(i)) for i in range(1001)])
    assert status == 413 and body["code"] == "batch_too_large"


async def test_auth_required_when_configured():
    async with running_sim(auth_header="X-Api-Key", auth_value="k1") as sim:
        assert (await sim.post("/sms", item("1")))[0] == 401
        assert (await sim.post("/sms", item("1"), headers={"X-Api-Key": "k1"}))[0] == 200


def test_bad_start_options_name_the_knob():
    with pytest.raises(SimConfigError, match="error_rate"):
        create_sim_app({"error_rate": 1.5})
    with pytest.raises(SimConfigError, match="auth_header"):
        create_sim_app({"auth_header": "X-Key"})
    with pytest.raises(SimConfigError, match="callback_url"):
        create_sim_app({"callback_url": "localhost:80"})


def test_number_validation_is_cached():
    valid_number.cache_clear()
    assert valid_number("+8613800138000") and valid_number("+8613800138000")
    assert not valid_number("+0013800138000")
    info = valid_number.cache_info()
    assert info.hits == 1 and info.misses == 2


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["gateway-sim", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "--throttle-per-s" in out and "--callback-url" in out


def test_cli_bad_option_exits_2(capsys):
    assert main(["gateway-sim", "--error-rate", "3"]) == 2
    assert "error-rate" in capsys.readouterr().err


async def test_cli_serves_until_sigterm(tmp_path):
    env = {**os.environ, "WARNPUB_GATEWAY_SIM_SECRET": SECRET}
    env.pop("WARNPUB_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "warnpub", "gateway-sim", "--port", "0", "--throttle-per-s", "5"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("gateway-sim listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/sms", json=item("cli-1")) as r:
                assert r.status == 200
            async with http.post(f"{url}/control", json={}) as r:
                knobs = await r.json()
        assert knobs["throttle_per_s"] == 5 and knobs["secret"] == "***"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
