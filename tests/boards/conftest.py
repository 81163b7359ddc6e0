"""A county with notice boards: Liyang's areas, agencies and staff (tests.factories.seed), a
digital and a paper board in 社渚村, a digital board in another town, and the real app on
loopback; helpers to submit, approve and cancel warnings over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.factories import TOWN_DAIBU, VILLAGE_SHEZHU, World, alert_json, seed
from warnpub.api.app import create_app
from warnpub.audiences.tables import Device
from warnpub.boards import tokens
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery

DIGITAL = "board-320481116200"
PAPER = "paper-320481116200"
ELSEWHERE = "board-320481103206"
VILLAGE_DAIBU = "320481103206"
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(1)>"


@dataclass
class Boards:
    client: TestClient
    db: Database
    settings: Settings
    world: World
    devices: dict[str, Device] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)

    def url(self, board: str, suffix: str = "", **query: str) -> str:
        params = "&".join(f"{k}={v}" for k, v in {"token": self.tokens[board], **query}.items())
        return f"/boards/{board}{suffix}?{params}"

    async def submit(self, **kw: Any) -> str:
        r = await self.client.post(
            "/api/v1/warnings", json=alert_json(**kw), headers=self.world.agency("QX")
        )
        assert r.status == 202, await r.text()
        body = await r.json()
        self.states[body["id"]] = body["state"]
        return body["id"]

    async def approve(self, warning_id: str) -> None:
        if self.states.get(warning_id) != "pending":
            return  # released at once by the green channel (QX, red)
        for username in ("duty1", "chief"):
            r = await self.client.post(
                f"/api/v1/warnings/{warning_id}/approve", headers=self.world.operator(username)
            )
            body = await r.json()
            assert r.status == 200, body
            if body["state"] != "pending":
                return

    async def release(self, **kw: Any) -> str:
        warning_id = await self.submit(**kw)
        await self.approve(warning_id)
        return warning_id

    async def cancel(self, warning_id: str) -> None:
        r = await self.client.post(
            f"/api/v1/warnings/{warning_id}/cancel",
            json={"reason": "the rain has passed"},
            headers=self.world.operator("duty1"),
        )
        assert r.status == 200, await r.text()

    async def delivery(self, board: str, warning_id: str, state: str = "sent") -> int:
        """A board delivery as the dispatcher leaves it after the channel answered SENT."""
        device = self.devices[board]
        now = utcnow()
        async with self.db.session() as s:
            row = Delivery(
                warning_id=warning_id,
                target_kind="device",
                target_id=device.id or 0,
                channel="board",
                route="board",
                area_code=device.area_code,
                state=state,
                next_attempt_at=now,
                gateway="boards",
                provider_ref=f"{board}/{warning_id}",
                sent_at=now if state == "sent" else None,
            )
            s.add(row)
            await s.flush()
            return row.id or 0

    async def delivery_state(self, delivery_id: int) -> Delivery:
        async with self.db.session() as s:
            row = await s.get(Delivery, delivery_id)
            assert row is not None
            return row


async def add_boards(db: Database) -> tuple[dict[str, Device], dict[str, str]]:
    devices: dict[str, Device] = {}
    issued: dict[str, str] = {}
    async with db.session() as s:
        for address, kind, area, name in (
            (DIGITAL, "board_digital", VILLAGE_SHEZHU, "社渚村电子显示屏"),
            (PAPER, "board_paper", VILLAGE_SHEZHU, "社渚村公告栏"),
            (ELSEWHERE, "board_digital", VILLAGE_DAIBU, "戴北村电子显示屏"),
        ):
            device = Device(
                external_id=f"test-{address}", kind=kind, name=name, area_code=area, address=address
            )
            s.add(device)
            await s.flush()
            devices[address] = device
            issued[address] = (await tokens.issue(s, device, "test")).token
    return devices, issued


@pytest.fixture
async def boards(settings: Settings, db: Database) -> AsyncIterator[Boards]:
    world = await seed(db, settings)
    devices, issued = await add_boards(db)
    assert TOWN_DAIBU.startswith(VILLAGE_DAIBU[:9])
    app = create_app(settings, db, run_timers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Boards(client, db, settings, world, devices, issued)
