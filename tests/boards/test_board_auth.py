"""Board tokens: a board reads only its own page, with its own token; refusals say what to fix
and change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tests.boards.conftest import DIGITAL, ELSEWHERE, Boards
from warnpub.audiences.tables import Device
from warnpub.auth.secrets import sha256_hex
from warnpub.boards import tokens
from warnpub.boards.tables import BoardCredential

pytestmark = pytest.mark.postgres


async def last_seen(boards: Boards, board: str):
    async with boards.db.session() as s:
        row = await s.get(BoardCredential, boards.devices[board].id)
        assert row is not None
        return row.last_seen_at


async def refused(boards: Boards, url: str, status: int = 401, **headers: str) -> str:
    r = await boards.client.get(url, headers=headers)
    assert r.status == status, await r.text()
    assert r.headers["Content-Type"].startswith("application/problem+json")
    return (await r.json())["detail"]


@pytest.mark.parametrize("suffix", ["", "/poll", "/events"])
async def test_missing_or_wrong_token_is_refused(boards: Boards, suffix: str) -> None:
    before = await last_seen(boards, DIGITAL)
    detail = await refused(boards, f"/boards/{DIGITAL}{suffix}")
    assert "?token=" in detail and "warnpub board token" in detail
    detail = await refused(boards, f"/boards/{DIGITAL}{suffix}?token=wpb_not-a-real-token")
    assert "not valid" in detail and f"warnpub board token {DIGITAL}" in detail
    detail = await refused(boards, f"/boards/{DIGITAL}{suffix}?token={boards.world.keys['QX']}")
    assert "not a board token" in detail
    other = boards.tokens[ELSEWHERE]
    detail = await refused(boards, f"/boards/{DIGITAL}{suffix}?token={other}")
    assert f"belongs to board {ELSEWHERE!r}" in detail
    detail = await refused(
        boards, f"/boards/{DIGITAL}{suffix}", Authorization=f"Basic {boards.tokens[DIGITAL]}"
    )
    assert "Bearer" in detail
    assert await last_seen(boards, DIGITAL) == before is None, "a refusal records nothing"


async def test_header_or_query_token(boards: Boards) -> None:
    r = await boards.client.get(
        f"/boards/{DIGITAL}/poll", headers={"Authorization": f"Bearer {boards.tokens[DIGITAL]}"}
    )
    assert r.status == 200
    assert (await boards.client.get(boards.url(DIGITAL, "/poll"))).status == 200


async def test_rotated_token_stops_working_and_only_the_hash_is_stored(boards: Boards) -> None:
    old = boards.tokens[DIGITAL]
    async with boards.db.session() as s:
        device = await tokens.find_board(s, DIGITAL)
        issued = await tokens.issue(s, device, "test")
    assert issued.rotated and issued.token != old
    detail = await refused(boards, f"/boards/{DIGITAL}?token={old}")
    assert "rotated" in detail
    assert (await boards.client.get(f"/boards/{DIGITAL}?token={issued.token}")).status == 200
    async with boards.db.session() as s:
        row = await s.get(BoardCredential, boards.devices[DIGITAL].id)
        assert row is not None and row.token_hash == sha256_hex(issued.token)
        assert issued.token not in repr(row.model_dump())


async def test_switched_off_board_is_forbidden(boards: Boards) -> None:
    async with boards.db.session() as s:
        await s.execute(update(Device).where(Device.address == DIGITAL).values(active=False))
    detail = await refused(boards, boards.url(DIGITAL), 403)
    assert "switched off" in detail
