"""Agency text with HTML or script in it is shown as text: on the board page, in its events
and polls, and on the printed notice."""

from __future__ import annotations

import pytest

from tests.boards.conftest import DIGITAL, HOSTILE, Boards
from tests.boards.helpers import next_event
from tests.factories import VILLAGE_SHEZHU

pytestmark = pytest.mark.postgres

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


def assert_inert(html: str) -> None:
    assert ESCAPED in html, "the hostile text is shown, escaped"
    assert "<script>alert" not in html
    assert "<img" not in html
    assert "onerror=alert(1)>" not in html


async def test_hostile_text_is_shown_as_text(boards: Boards) -> None:
    warning = await boards.release(
        severity="Severe",
        headline=HOSTILE,
        description=HOSTILE,
        instruction=HOSTILE,
        sender_name=HOSTILE,
    )
    page = await (await boards.client.get(boards.url(DIGITAL))).text()
    assert_inert(page)
    assert page.count("<script") == 2, "only the page's own config and script"
    poll = await (await boards.client.get(boards.url(DIGITAL, "/poll"))).json()
    assert_inert(poll["html"])
    assert poll["warnings"][0]["headline"] == HOSTILE, "JSON carries the text as it is"
    async with boards.client.get(boards.url(DIGITAL, "/events")) as stream:
        _, data = await next_event(stream)
        assert_inert(data["html"])
    notice = await boards.client.get(
        f"/notices/{warning}/{VILLAGE_SHEZHU}", headers=boards.world.operator("duty1")
    )
    assert notice.status == 200
    assert_inert(await notice.text())
