"""Contract harness for the ``board`` adapter: a real warnpub database and application with
notice boards in 社渚村, and kiosks that poll their board pages over HTTP.

- the peer is the board store: the adapter records what it makes available to each board in
  ``board_warnings``; ``received()`` reads it back;
- transient fault: another connection holds the SQLite write lock (the database is busy), so
  the adapter's write times out (``timeout_s`` 0.5 s);
- permanent fault: the boards are switched off (inactive);
- receipts: each kiosk requests its board (``GET /boards/<id>/poll?token=…``); the warnings it
  was shown mark its deliveries delivered. A receipt is reported for every delivery the boards
  showed, with the reference the adapter answered.

The contract's messages carry delivery ids 7001…; the harness creates those deliveries (board
targets, state ``sending``, as a worker leaves them) for one approved warning of the town.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
from sqlalchemy import select, update

from tests.channels.contract import Fault, Received
from tests.channels.peers import serve
from tests.factories import VILLAGE_SHEZHU, alert_json, seed
from warnpub.api.app import create_app
from warnpub.audiences.tables import Device
from warnpub.boards.tables import BoardWarning
from warnpub.boards.tokens import issue
from warnpub.channels.base import Channel, Receipt, Status
from warnpub.channels.board import NoticeBoard
from warnpub.clock import utcnow
from warnpub.config import load_settings
from warnpub.storage.engine import Database
from warnpub.storage.migrate import upgrade
from warnpub.storage.tables import Delivery

BOARDS = 12
FIRST_DELIVERY = 7000


class BoardHarness:
    name = "board-board"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="warnpub-board-"))
        self.path = self.dir / "boards.db"
        self.url = f"sqlite+aiosqlite:///{self.path}"
        self.settings = load_settings(environ={"WARNPUB_DATABASE_URL": self.url})
        self.db: Database | None = None
        self.base = ""
        self.tokens: dict[str, str] = {}
        self.warning_id = ""
        self._lock: sqlite3.Connection | None = None
        self._stack = AsyncExitStack()

    async def start(self) -> None:
        await asyncio.to_thread(upgrade, self.url)
        self.db = db = Database(self.url)
        world = await seed(db, self.settings)
        app = create_app(self.settings, db, run_timers=False)
        self.base = await self._stack.enter_async_context(serve(app))
        async with aiohttp.ClientSession() as http:
            r = await http.post(
                f"{self.base}/api/v1/warnings",
                json=alert_json(severity="Moderate", instruction="请立即转移"),
                headers=world.agency("QX"),
            )
            assert r.status == 202, await r.text()
            self.warning_id = (await r.json())["id"]
            r = await http.post(
                f"{self.base}/api/v1/warnings/{self.warning_id}/approve",
                headers=world.operator("duty1"),
            )
            assert r.status == 200, await r.text()
        now = utcnow()
        async with db.session() as s:
            for i in range(1, BOARDS + 1):
                device = Device(
                    external_id=f"contract-{i}",
                    kind="board_digital",
                    name=f"contract board {i}",
                    area_code=VILLAGE_SHEZHU,
                    address=self.address(i),
                )
                s.add(device)
                await s.flush()
                self.tokens[device.address] = (await issue(s, device, "test")).token
                s.add(
                    Delivery(
                        id=FIRST_DELIVERY + i,
                        warning_id=self.warning_id,
                        target_kind="device",
                        target_id=device.id or 0,
                        channel="board",
                        route="board",
                        area_code=VILLAGE_SHEZHU,
                        state="sending",
                        next_attempt_at=now,
                        gateway="contract-board",
                    )
                )

    async def stop(self) -> None:
        await self.clear_faults()
        await self._stack.aclose()
        if self.db is not None:
            await self.db.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    def build_channel(self) -> Channel:
        return NoticeBoard("contract-board", {"database_url": self.url, "timeout_s": 0.5})

    def address(self, i: int) -> str:
        return f"contract-board-{i:02d}"

    async def inject_fault(self, fault: Fault) -> None:
        if fault is Fault.TRANSIENT:
            self._lock = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._lock.execute("BEGIN EXCLUSIVE")
        else:
            await self._switch(active=False)

    async def clear_faults(self) -> None:
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None
        if self.db is not None:
            await self._switch(active=True)

    async def _switch(self, *, active: bool) -> None:
        assert self.db is not None
        async with self.db.session() as s:
            await s.execute(
                update(Device).where(Device.external_id.like("contract-%")).values(active=active)
            )

    async def received(self) -> list[Received]:
        assert self.db is not None
        async with self.db.reader() as s:  # a read goes on while the write lock is held
            rows = (
                await s.execute(
                    select(Device.address, BoardWarning.text, BoardWarning.reference)
                    .join(Device, Device.id == BoardWarning.device_id)
                    .where(BoardWarning.sent_at.is_not(None))
                    .order_by(BoardWarning.sent_at, Device.address)
                )
            ).all()
        return [Received(address, text, reference or "") for address, text, reference in rows]

    async def receipts(self) -> list[Receipt]:
        """Every kiosk requests its board once; what the boards showed comes back."""
        assert self.db is not None
        async with aiohttp.ClientSession() as http:
            for board, token in self.tokens.items():
                async with http.get(f"{self.base}/boards/{board}/poll?token={token}") as r:
                    assert r.status == 200, await r.text()
        async with self.db.reader() as s:
            rows = (
                await s.execute(
                    select(Delivery.id, BoardWarning.reference, Delivery.final_at)
                    .join(
                        BoardWarning,
                        (BoardWarning.device_id == Delivery.target_id)
                        & (BoardWarning.warning_id == Delivery.warning_id),
                    )
                    .where(Delivery.state == "delivered", BoardWarning.shown_at.is_not(None))
                )
            ).all()
        return [
            Receipt(Status.DELIVERED, provider_ref=reference, delivery_id=delivery_id, at=at)
            for delivery_id, reference, at in rows
        ]


HARNESS = BoardHarness
