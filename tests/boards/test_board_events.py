"""The board's event stream: the content at once, an update when a warning is released or
cancelled, a ping (and heartbeat) when idle; the stream ends when the server shuts down."""

from __future__ import annotations

import asyncio

import pytest

from tests.boards.conftest import DIGITAL, Boards
from tests.boards.helpers import next_event, shown_ids
from warnpub.api import boards as board_api
from warnpub.boards import hub

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "CHECK_S", 0.05)
    monkeypatch.setattr(board_api, "KEEPALIVE_S", 0.3)


async def test_events_follow_releases_and_cancels(boards: Boards) -> None:
    first = await boards.release(severity="Moderate")
    async with boards.client.get(boards.url(DIGITAL, "/events")) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        name, data = await next_event(stream)
        assert name == "board" and shown_ids(data["html"]) == [first]

        red = await boards.release(severity="Extreme")
        name, data = await next_event(stream)
        assert name == "board" and shown_ids(data["html"]) == [red, first]
        assert data["warnings"][0]["level_name"] == "红色预警"

        await boards.cancel(red)
        name, data = await next_event(stream)
        assert name == "board" and shown_ids(data["html"]) == [first]

        await boards.cancel(first)
        name, data = await next_event(stream)
        assert shown_ids(data["html"]) == [] and "当前没有生效的预警" in data["html"]


async def test_a_pending_warning_sends_no_update(boards: Boards) -> None:
    async with boards.client.get(boards.url(DIGITAL, "/events")) as stream:
        name, data = await next_event(stream)
        assert shown_ids(data["html"]) == []
        await boards.submit(severity="Moderate")
        name, _ = await next_event(stream, skip=())
        name2, _ = await next_event(stream, skip=())
        assert (name, name2) == ("ping", "ping"), "nothing new to show: only pings"


async def test_stream_is_a_heartbeat_and_marks_deliveries_sent_later(boards: Boards) -> None:
    warning = await boards.release(severity="Severe")
    async with boards.client.get(boards.url(DIGITAL, "/events")) as stream:
        await next_event(stream)
        # The board already shows the warning when the dispatcher sends its delivery: the next
        # heartbeat of the stream (a ping) marks it delivered.
        delivery = await boards.delivery(DIGITAL, warning)
        await next_event(stream, skip=())
        await next_event(stream, skip=())
        assert (await boards.delivery_state(delivery)).state == "delivered"


async def test_rotated_token_ends_the_stream(boards: Boards) -> None:
    from warnpub.boards import tokens

    async with boards.client.get(boards.url(DIGITAL, "/events")) as stream:
        await next_event(stream)
        async with boards.db.session() as s:
            await tokens.issue(s, boards.devices[DIGITAL], "test")
        name, data = await next_event(stream, skip=("ping", "board"))
        assert name == "denied" and data["status"] == 401
        with pytest.raises(EOFError):
            await next_event(stream, timeout=5)


async def test_shutdown_ends_open_streams(boards: Boards) -> None:
    stream = await boards.client.get(boards.url(DIGITAL, "/events"))
    await next_event(stream)
    started = asyncio.get_running_loop().time()
    await boards.client.server.app.shutdown()
    with pytest.raises(EOFError):
        await next_event(stream, timeout=5, skip=("ping", "board"))
    assert asyncio.get_running_loop().time() - started < 5
    stream.release()
