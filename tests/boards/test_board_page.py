"""The digital board page: what it shows, in which order, how levels look, its heartbeat."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from sqlalchemy import select

from tests.boards.conftest import DIGITAL, ELSEWHERE, PAPER, Boards
from tests.boards.helpers import shown_ids
from tests.factories import BEIJING, TOWN_DAIBU, TOWN_SHEZHU, VILLAGE_SHEZHU
from warnpub.boards.look import LOOKS
from warnpub.boards.tables import BoardCredential, BoardWarning
from warnpub.cap.model import Level

pytestmark = pytest.mark.postgres


async def page(boards: Boards, board: str = DIGITAL, **query: str) -> str:
    r = await boards.client.get(boards.url(board, **query))
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/html")
    return await r.text()


async def test_most_severe_then_newest_first(boards: Boards) -> None:
    yellow_old = await boards.release(severity="Moderate", event="暴雨")
    red = await boards.release(severity="Extreme", event="暴雨")
    blue = await boards.release(severity="Minor", event="大风", code=VILLAGE_SHEZHU)
    orange = await boards.release(severity="Severe", event="大风", code="320481000000")
    yellow_new = await boards.release(severity="Moderate", event="大风")
    assert shown_ids(await page(boards)) == [red, orange, yellow_new, yellow_old, blue]


async def test_level_by_colour_name_and_icon(boards: Boards) -> None:
    expected = {
        "Extreme": (Level.RED, "红色预警", "octagon"),
        "Severe": (Level.ORANGE, "橙色预警", "triangle"),
        "Moderate": (Level.YELLOW, "黄色预警", "diamond"),
        "Minor": (Level.BLUE, "蓝色预警", "circle"),
    }
    ids = {sev: await boards.release(severity=sev) for sev in expected}
    html = await page(boards)
    articles = dict(re.findall(r'data-warning="([^"]+)"(.*?)</article>', html, re.S))
    shapes = set()
    for severity, (level, name, shape) in expected.items():
        body = articles[ids[severity]]
        look = LOOKS[level]
        assert f"background:{look.background};color:{look.foreground}" in body  # colour
        assert f'<span class="level-name">{name}</span>' in body  # name, in words
        assert f'<svg class="level-icon" data-shape="{shape}"' in body  # icon
        shapes.add(shape)
    assert len(shapes) == 4, "each level has its own icon shape"
    english = await page(boards, lang="en")
    assert '<span class="level-name">Red warning</span>' in english


async def test_only_released_public_warnings_that_cover_the_board(boards: Boards) -> None:
    town = await boards.release(severity="Moderate", code=TOWN_SHEZHU)
    city = await boards.release(severity="Moderate", code="320481000000")
    other_town = await boards.release(severity="Moderate", code=TOWN_DAIBU)
    pending = await boards.submit(severity="Moderate", code=TOWN_SHEZHU)
    assert set(shown_ids(await page(boards))) == {town, city}
    assert set(shown_ids(await page(boards, ELSEWHERE))) == {city, other_town}
    assert pending not in await page(boards)


async def test_cancelled_warning_leaves_the_board(boards: Boards) -> None:
    first = await boards.release(severity="Moderate")
    second = await boards.release(severity="Moderate")
    await boards.cancel(first)
    assert shown_ids(await page(boards)) == [second]
    await boards.cancel(second)
    html = await page(boards)
    assert shown_ids(html) == [] and "当前没有生效的预警" in html


async def test_a_cap_cancel_clears_the_board(boards: Boards) -> None:
    r = await boards.client.get(
        f"/api/v1/warnings/{await boards.release(severity='Moderate')}",
        headers=boards.world.operator("duty1"),
    )
    warning = await r.json()
    assert len(shown_ids(await page(boards))) == 1
    sent = datetime.fromisoformat(warning["sent"].replace("Z", "+00:00")).astimezone(BEIJING)
    references = f"{warning['sender']},{warning['identifier']},{sent.isoformat()}"
    cancel = await boards.release(severity="Moderate", msg_type="Cancel", references=[references])
    assert shown_ids(await page(boards)) == [], "neither the warning nor the Cancel is shown"
    assert cancel


async def test_page_request_is_a_heartbeat_that_marks_shown_warnings_delivered(
    boards: Boards,
) -> None:
    warning = await boards.release(severity="Severe")
    digital = await boards.delivery(DIGITAL, warning)
    elsewhere = await boards.delivery(ELSEWHERE, warning)
    paper = await boards.delivery(PAPER, warning)
    await page(boards)
    row = await boards.delivery_state(digital)
    assert row.state == "delivered" and row.final_at is not None
    assert (await boards.delivery_state(elsewhere)).state == "sent", "another board's delivery"
    await page(boards, PAPER)
    assert (await boards.delivery_state(paper)).state == "sent", "paper waits for 'posted'"
    async with boards.db.session() as s:
        seen = await s.get(BoardCredential, boards.devices[DIGITAL].id)
        assert seen is not None and seen.last_seen_at is not None and seen.last_seen_via == "page"
        shown = (await s.execute(select(BoardWarning))).scalars().all()
        assert [(b.device_id, b.warning_id) for b in shown if b.shown_at] == [
            (boards.devices[DIGITAL].id, warning)
        ]


async def test_poll_returns_the_content_and_is_a_heartbeat(boards: Boards) -> None:
    warning = await boards.release(severity="Moderate")
    delivery = await boards.delivery(DIGITAL, warning)
    r = await boards.client.get(boards.url(DIGITAL, "/poll"))
    assert r.status == 200
    body = await r.json()
    assert [w["id"] for w in body["warnings"]] == [warning]
    assert body["warnings"][0]["level_name"] == "黄色预警"
    assert shown_ids(body["html"]) == [warning] and body["version"]
    assert (await boards.delivery_state(delivery)).state == "delivered"
    again = await (await boards.client.get(boards.url(DIGITAL, "/poll"))).json()
    assert again["version"] == body["version"], "the same content keeps its version"


async def test_page_is_locked_down(boards: Boards) -> None:
    r = await boards.client.get(boards.url(DIGITAL))
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'nonce-" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp)
    assert nonce and f'<script nonce="{nonce.group(1)}">' in await r.text()
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-store"
