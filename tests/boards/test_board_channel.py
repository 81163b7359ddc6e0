"""The board channel with the real dispatcher: an approved warning reaches the town's boards,
the digital board's page marks it delivered, the paper notice's "posted" does too, and a
cancel clears the board. Plus the adapter's answers for boards it cannot reach."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from tests.boards.conftest import DIGITAL, ELSEWHERE, PAPER, Boards, add_boards
from tests.boards.helpers import shown_ids
from tests.factories import seed
from warnpub.api.app import create_app
from warnpub.audiences.tables import Device
from warnpub.channels.base import ChannelError, Message, Status
from warnpub.channels.board import NoticeBoard, reference_of
from warnpub.channels.registry import build_channels
from warnpub.config import Settings
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery

pytestmark = pytest.mark.postgres


def board_config(settings: Settings) -> dict[str, object]:
    return {
        "name": "boards",
        "adapter": "board",
        "database_url": settings.database.url,
        "schema_name": settings.database.schema_name,
    }


@pytest.fixture
async def dispatched(settings: Settings, db: Database) -> AsyncIterator[Boards]:
    world = await seed(db, settings)
    devices, issued = await add_boards(db)
    settings.channels = {"board": [board_config(settings)]}
    dispatcher = Dispatcher(
        db, settings, build_channels(settings, factories={"board": NoticeBoard})
    )
    app = create_app(settings, db, run_timers=False, dispatcher=dispatcher)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Boards(client, db, settings, world, devices, issued)


async def board_deliveries(boards: Boards, warning_id: str) -> dict[str, Delivery]:
    async with boards.db.reader() as s:
        rows = (
            await s.execute(
                select(Device.address, Delivery)
                .join(Device, Device.id == Delivery.target_id)
                .where(Delivery.warning_id == warning_id, Delivery.target_kind == "device")
            )
        ).all()
    return {address: d for address, d in rows}


async def wait_for(boards: Boards, warning_id: str, want: dict[str, str]) -> dict[str, Delivery]:
    deadline = time.monotonic() + 30
    while True:
        found = await board_deliveries(boards, warning_id)
        if {a: d.state for a, d in found.items()} == want or time.monotonic() > deadline:
            assert {a: d.state for a, d in found.items()} == want
            return found
        await asyncio.sleep(0.05)


async def test_warning_reaches_the_boards_and_the_cancel_clears_them(dispatched: Boards) -> None:
    boards = dispatched
    warning = await boards.release(severity="Severe")
    sent = await wait_for(boards, warning, {DIGITAL: "sent", PAPER: "sent"})
    assert sent[DIGITAL].provider_ref == reference_of(DIGITAL, warning)
    assert sent[DIGITAL].gateway == "boards"
    assert ELSEWHERE not in sent, "a board in another town is not targeted"

    html = await (await boards.client.get(boards.url(DIGITAL))).text()
    assert shown_ids(html) == [warning]
    after = await wait_for(boards, warning, {DIGITAL: "delivered", PAPER: "sent"})
    assert after[DIGITAL].final_at is not None

    r = await boards.client.post(boards.url(PAPER, "/posted"), json={"warning_id": warning})
    assert r.status == 200, await r.text()
    await wait_for(boards, warning, {DIGITAL: "delivered", PAPER: "delivered"})

    await boards.cancel(warning)
    html = await (await boards.client.get(boards.url(DIGITAL))).text()
    assert shown_ids(html) == []


async def test_a_board_that_already_shows_the_warning_is_delivered_at_once(
    boards: Boards,
) -> None:
    warning = await boards.release(severity="Moderate")
    await boards.client.get(boards.url(DIGITAL))  # the board shows it before the send
    channel = NoticeBoard("boards", {})
    channel.bind_database(boards.db)
    await channel.start()
    try:
        (result,) = await channel.send(
            [Message(1, DIGITAL, "暴雨黄色预警", metadata={"warning_id": warning})]
        )
    finally:
        await channel.close()
    assert result.status is Status.DELIVERED
    assert result.provider_ref == reference_of(DIGITAL, warning)


async def test_boards_that_cannot_be_reached_are_permanent_failures(boards: Boards) -> None:
    warning = await boards.release(severity="Moderate")
    async with boards.db.session() as s:
        s.add(
            Device(
                kind="speaker_group",
                name="广播",
                area_code=boards.devices[DIGITAL].area_code,
                address="warnpub/speakers/x",
            )
        )
        off = await s.get(Device, boards.devices[ELSEWHERE].id)
        assert off is not None
        off.active = False
    channel = NoticeBoard("boards", {})
    channel.bind_database(boards.db)
    meta = {"warning_id": warning}
    messages = [
        Message(1, "no-such-board", "x", metadata=meta),
        Message(2, "warnpub/speakers/x", "x", metadata=meta),
        Message(3, ELSEWHERE, "x", metadata=meta),
        Message(4, DIGITAL, "x"),
        Message(5, DIGITAL, "x", metadata={"warning_id": "01NOSUCHWARNING0000000000"}),
        Message(6, PAPER, "x", metadata=meta),
    ]
    results = {r.delivery_id: r for r in await channel.send(messages)}
    assert [results[i].status for i in range(1, 7)] == [Status.PERMANENT] * 5 + [Status.SENT]
    assert "no notice board" in results[1].error
    assert "not a notice board" in results[2].error
    assert "switched off" in results[3].error
    assert "names no warning" in results[4].error
    assert "does not exist" in results[5].error


def test_configuration_errors_name_the_key() -> None:
    with pytest.raises(ChannelError) as err:
        NoticeBoard("boards", {"timeout_s": 0, "colour": "red"})
    assert "key timeout_s" in str(err.value) and "key colour: unknown key" in str(err.value)
    board = NoticeBoard("boards", {"receipt_timeout_s": 600})
    assert board.kind == "board" and board.limits.receipts
    assert board.limits.receipt_timeout_s == 600
