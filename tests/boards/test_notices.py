"""Paper notices: the printable A4 page with its QR code, who may print it, and the village
contact's "posted" acknowledgement that marks the paper board's delivery delivered."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.boards.conftest import DIGITAL, ELSEWHERE, PAPER, Boards
from tests.factories import TOWN_DAIBU, VILLAGE_SHEZHU
from warnpub.boards.notices import qr_svg
from warnpub.boards.tables import BoardWarning

pytestmark = pytest.mark.postgres


def notice_url(warning_id: str, area: str = VILLAGE_SHEZHU) -> str:
    return f"/notices/{warning_id}/{area}"


async def test_notice_is_a4_with_a_qr_code_to_the_full_text(boards: Boards) -> None:
    warning = await boards.release(severity="Severe", event="暴雨", instruction="转移到安全地带")
    r = await boards.client.get(notice_url(warning), headers=boards.world.operator("duty1"))
    assert r.status == 200, await r.text()
    html = await r.text()
    assert "@page { size: A4;" in html and "print-color-adjust: exact" in html
    full_text = boards.settings.render.full_text_url.format(id=warning)
    assert str(qr_svg(full_text)) in html, "the QR code encodes the public full-text URL"
    assert '<svg viewBox="0 0 ' in html and 'class="qr"' in html
    assert full_text in html
    assert "橙色预警" in html and 'data-shape="triangle"' in html and "转移到安全地带" in html
    assert "社渚村" in html
    assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    public = await boards.client.get(f"/w/{warning}")
    assert public.status == 200, "the QR code leads to a page that exists"


async def test_who_may_print(boards: Boards) -> None:
    warning = await boards.release(severity="Moderate")
    url = notice_url(warning)
    assert (await boards.client.get(f"{url}?token={boards.tokens[PAPER]}")).status == 200
    assert (await boards.client.get(url, headers=boards.world.operator("duty1"))).status == 200
    r = await boards.client.get(f"{url}?token={boards.tokens[ELSEWHERE]}")
    assert r.status == 403 and "its own area" in (await r.json())["detail"]
    r = await boards.client.get(url, headers=boards.world.agency("QX"))
    assert r.status == 401 and "operator token" in (await r.json())["detail"]
    r = await boards.client.get(url)
    assert r.status == 401 and r.headers["Content-Type"].startswith("application/problem+json")


async def test_refusals_say_why(boards: Boards) -> None:
    warning = await boards.release(severity="Moderate")
    staff = boards.world.operator("duty1")
    r = await boards.client.get(notice_url(warning, "320481103206"), headers=staff)
    assert r.status == 422 and "does not cover" in (await r.json())["detail"]
    r = await boards.client.get(notice_url(warning, "999999999999"), headers=staff)
    assert r.status == 404
    r = await boards.client.get(notice_url("01NOSUCHWARNING0000000000"), headers=staff)
    assert r.status == 404
    pending = await boards.submit(severity="Moderate", code=TOWN_DAIBU)
    r = await boards.client.get(notice_url(pending, "320481103206"), headers=staff)
    assert r.status == 409 and "pending" in (await r.json())["detail"]
    await boards.cancel(warning)
    r = await boards.client.get(notice_url(warning), headers=staff)
    assert r.status == 409 and "take down" in (await r.json())["detail"]


async def post(boards: Boards, board: str, body: object, **kw: str):
    return await boards.client.post(boards.url(board, "/posted"), json=body, **kw)


async def test_posted_acknowledgement_marks_the_paper_delivery_delivered(boards: Boards) -> None:
    warning = await boards.release(severity="Severe")
    delivery = await boards.delivery(PAPER, warning)
    r = await post(boards, PAPER, {"warning_id": warning, "by": "王联络员"})
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["deliveries_delivered"] == 1 and body["posted_at"]
    row = await boards.delivery_state(delivery)
    assert row.state == "delivered" and row.acknowledged_at is not None
    again = await (await post(boards, PAPER, {"warning_id": warning})).json()
    assert again["posted_at"] == body["posted_at"] and again["deliveries_delivered"] == 0
    async with boards.db.session() as s:
        shown = await s.get(BoardWarning, (boards.devices[PAPER].id, warning))
        assert shown is not None and shown.posted_by == "王联络员"


async def test_bad_posted_acknowledgements_change_nothing(boards: Boards) -> None:
    warning = await boards.release(severity="Moderate")
    other = await boards.release(severity="Moderate", code=TOWN_DAIBU)
    delivery = await boards.delivery(PAPER, warning)

    async def rows() -> int:
        async with boards.db.session() as s:
            return (await s.execute(select(func.count()).select_from(BoardWarning))).scalar_one()

    before = await rows()
    r = await post(boards, PAPER, {"warning_id": other})
    assert r.status == 422 and "not in force for board" in (await r.json())["detail"]
    r = await post(boards, PAPER, {})
    assert r.status == 422 and "warning_id" in (await r.json())["detail"]
    r = await boards.client.post(
        boards.url(PAPER, "/posted"),
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 400
    r = await post(boards, DIGITAL, {"warning_id": warning})
    assert r.status == 422 and "digital board" in (await r.json())["detail"]
    r = await boards.client.post(f"/boards/{PAPER}/posted", json={"warning_id": warning})
    assert r.status == 401
    assert await rows() == before
    assert (await boards.delivery_state(delivery)).state == "sent"
