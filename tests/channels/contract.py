"""The contract every channel adapter keeps, as a table of cases run against every harness.

A *harness* starts a real peer for one adapter (the gateway simulator for SMS, aiosmtpd for
e-mail, …), builds a channel instance that talks to it, injects faults at the peer, and
reports what the peer received and which receipts came back. ``tests/channels/test_contract.py``
runs every case in :data:`CASES` against every harness in :data:`HARNESSES`.

Adding a harness for a new adapter
----------------------------------
1. Create ``tests/channels/harness_<something>.py``.
2. In it, write a class that implements :class:`Harness` (a ``name`` class attribute for test
   ids; the methods below) and end the module with ``HARNESS = YourHarness`` (or
   ``HARNESSES = [A, B]`` for several). Nothing else to register: every ``harness_*.py`` module
   in this folder is imported by :func:`discover`, and an import error fails the suite loudly.
3. Run ``pytest tests/channels/test_contract.py -k <name>``.

What a harness must make true (what the cases check):

- ``address(i)`` gives distinct addresses the peer accepts;
- ``inject_fault(Fault.TRANSIENT)``: until ``clear_faults()``, the peer fails every send in a
  way worth retrying (SMS: 503 outage; SMTP: 421/451), and accepts nothing;
- ``inject_fault(Fault.PERMANENT)``: until ``clear_faults()``, the peer refuses the harness's
  addresses for good (SMS: unreachable number; SMTP: 550), and accepts nothing;
- ``received()`` lists every message the peer accepted, each once, oldest first;
- ``receipts()`` lists the delivery reports that reached warnpub's side so far (after the
  signature check, for SMS); a channel whose ``limits.receipts`` is False skips that case.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import pytest

from warnpub.channels.base import Channel, Message, Receipt, Result, Status

RECEIPT_WAIT_S = 5.0


class Fault(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Received:
    """One message as the peer accepted it."""

    address: str
    text: str  # what the person would read (the harness decodes MIME, JSON, …)
    reference: str = ""  # the idempotency key or message id the peer saw ("" if none)


class Harness(Protocol):
    name: str  # test id, e.g. "sms-http_json"

    async def start(self) -> None:
        """Start the real peer (and whatever receives its receipts)."""
        ...

    async def stop(self) -> None: ...

    def build_channel(self) -> Channel:
        """A channel instance configured for the peer (the suite starts and closes it)."""
        ...

    def address(self, i: int) -> str: ...

    async def inject_fault(self, fault: Fault) -> None: ...

    async def clear_faults(self) -> None: ...

    async def received(self) -> list[Received]: ...

    async def receipts(self) -> list[Receipt]: ...


HarnessFactory = Callable[[], Harness]


def discover() -> list[HarnessFactory]:
    """Every harness declared by a ``harness_*.py`` module next to this file."""
    found: list[HarnessFactory] = []
    for path in sorted(Path(__file__).parent.glob("harness_*.py")):
        module = importlib.import_module(f"{__package__}.{path.stem}")
        declared = getattr(module, "HARNESSES", None) or [module.HARNESS]
        found.extend(declared)
    return found


# -- the cases ----------------------------------------------------------------------------


def message(harness: Harness, i: int) -> Message:
    delivery_id = 7000 + i
    return Message(
        delivery_id=delivery_id,
        address=harness.address(i),
        text=f"【演练】暴雨红色预警：请立即转移 #{i}",
        subject="【演练】暴雨红色预警",
        idempotency_key=f"wp-{delivery_id}",  # as warnpub.dispatch.render does
    )


def _by_id(results: list[Result], messages: list[Message]) -> dict[int, Result]:
    assert len(results) == len(messages), f"one result per message: {results}"
    by_id = {r.delivery_id: r for r in results}
    assert set(by_id) == {m.delivery_id for m in messages}, results
    return by_id


def _accepted(result: Result, channel: Channel) -> None:
    assert result.status in (Status.SENT, Status.DELIVERED), result
    if channel.limits.receipts and result.status is Status.SENT:
        assert result.provider_ref, f"receipts are matched by provider_ref: {result}"


def _received_once(received: list[Received], messages: list[Message]) -> None:
    for m in messages:
        hits = [r for r in received if r.address == m.address and m.text in r.text]
        assert len(hits) == 1, f"{m.address}: expected once at the peer, got {hits}"


async def send_one(harness: Harness, channel: Channel) -> None:
    m = message(harness, 1)
    (result,) = _by_id(await channel.send([m]), [m]).values()
    _accepted(result, channel)
    received = await harness.received()
    _received_once(received, [m])
    assert len(received) == 1


async def send_batch(harness: Harness, channel: Channel) -> None:
    n = max(1, min(channel.limits.max_batch, 10))
    messages = [message(harness, i) for i in range(1, n + 1)]
    by_id = _by_id(await channel.send(messages), messages)
    for result in by_id.values():
        _accepted(result, channel)
    refs = [r.provider_ref for r in by_id.values() if r.provider_ref]
    assert len(set(refs)) == len(refs), f"provider refs must be distinct: {refs}"
    received = await harness.received()
    _received_once(received, messages)
    assert len(received) == n


async def transient_fault(harness: Harness, channel: Channel) -> None:
    m = message(harness, 1)
    await harness.inject_fault(Fault.TRANSIENT)
    (failed,) = _by_id(await channel.send([m]), [m]).values()
    assert failed.status is Status.TRANSIENT and failed.error, failed
    assert await harness.received() == [], "a transient failure must not have been accepted"
    await harness.clear_faults()
    (retried,) = _by_id(await channel.send([m]), [m]).values()
    _accepted(retried, channel)
    _received_once(await harness.received(), [m])  # nothing lost, nothing doubled


async def permanent_fault(harness: Harness, channel: Channel) -> None:
    m = message(harness, 1)
    await harness.inject_fault(Fault.PERMANENT)
    (result,) = _by_id(await channel.send([m]), [m]).values()
    assert result.status is Status.PERMANENT and result.error, result
    assert result.retry_after_s is None
    assert await harness.received() == []


async def receipt(harness: Harness, channel: Channel) -> None:
    if not channel.limits.receipts:
        pytest.skip(f"{harness.name}: the channel declares no receipts")
    m = message(harness, 1)
    (result,) = _by_id(await channel.send([m]), [m]).values()
    _accepted(result, channel)
    deadline = time.monotonic() + RECEIPT_WAIT_S
    while True:
        mine = [
            r
            for r in await harness.receipts()
            if (result.provider_ref and r.provider_ref == result.provider_ref)
            or r.delivery_id == m.delivery_id
        ]
        if mine or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert len(mine) == 1, f"expected one receipt for {result}, got {mine}"
    assert mine[0].status is Status.DELIVERED, mine[0]


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    run: Callable[[Harness, Channel], Awaitable[None]]


CASES = [
    Case("send_one", send_one),
    Case("send_batch", send_batch),
    Case("transient_fault", transient_fault),
    Case("permanent_fault", permanent_fault),
    Case("receipt", receipt),
]

HARNESSES: list[HarnessFactory] = discover()
