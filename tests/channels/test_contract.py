"""Every channel adapter against the shared contract (tests/channels/contract.py): one test per
harness × case, each against a real peer on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.channels.contract import CASES, HARNESSES, Case, Harness


def test_every_harness_is_found():
    assert any(getattr(h, "name", "") == "sms-http_json" for h in HARNESSES)


@pytest.fixture(params=HARNESSES, ids=lambda h: getattr(h, "name", h.__name__))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    instance = request.param()
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_contract(harness: Harness, case: Case) -> None:
    channel = harness.build_channel()
    await channel.start()
    try:
        await case.run(harness, channel)
    finally:
        await channel.close()
