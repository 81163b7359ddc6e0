"""Partner systems get every released warning once, over their own webhook instance: one
delivery per partner, retried on the partner's errors, never carried by another partner."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from sqlalchemy import select

from tests.dispatch.conftest import make_county, start_sim
from warnpub.audiences.targeting import partner_id
from warnpub.callbacks.signing import HEADER, verify
from warnpub.channels.base import ChannelError
from warnpub.dispatch.dispatcher import check_partners
from warnpub.storage.tables import Delivery

CITY = "320481000000"
SECRET = "partner-secret-0123456789abcdef"


@dataclass
class Partner:
    name: str
    fail_first: int = 0
    bodies: list[tuple[str, bytes, str]] = field(default_factory=list)
    refused: int = 0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        verify(SECRET, request.headers.get(HEADER), body)  # raises on a bad signature
        if self.refused < self.fail_first:
            self.refused += 1
            return web.json_response({"error": "busy"}, status=503)
        self.bodies.append(
            (request.headers["Content-Type"], body, request.headers["Idempotency-Key"])
        )
        return web.json_response({"ok": True})


@asynccontextmanager
async def partner_server(partner: Partner) -> AsyncIterator[Partner]:
    app = web.Application()
    app.router.add_post("/warnings", partner.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    partner.url = f"http://127.0.0.1:{runner.addresses[0][1]}/warnings"
    try:
        yield partner
    finally:
        await runner.cleanup()


def webhook(partner: Partner, fmt: str) -> dict[str, object]:
    return {
        "name": partner.name,
        "adapter": "webhook",
        "url": partner.url,
        "secret": SECRET,
        "format": fmt,
        "rate_per_s": 50,
    }


async def test_each_partner_gets_the_warning_once(settings, db):
    settings.dispatch.retry_base_s = 0.05
    settings.dispatch.retry_max_s = 0.2
    sim, sim_runner = await start_sim()
    async with (
        partner_server(Partner("tv-station", fail_first=2)) as tv,
        partner_server(Partner("wechat-bridge")) as bridge,
    ):
        county, client = await make_county(
            settings,
            db,
            [sim],
            people=60,
            extra_channels={"webhook": [webhook(tv, "cap"), webhook(bridge, "json")]},
        )
        try:
            w = await county.submit(severity="Moderate", code=CITY)
            await county.approve(w["id"])
            await county.wait_state(w["id"], "completed", timeout=60)
            async with db.session() as s:
                rows = (
                    await s.execute(
                        select(Delivery.target_id, Delivery.state, Delivery.attempts, Delivery.gateway)
                        .where(Delivery.warning_id == w["id"], Delivery.target_kind == "partner")
                        .order_by(Delivery.target_id)
                    )
                ).all()
        finally:
            await client.close()
            await sim_runner.cleanup()
    by_id = {r.target_id: r for r in rows}
    assert set(by_id) == {partner_id("tv-station"), partner_id("wechat-bridge")}
    tv_row, bridge_row = by_id[partner_id("tv-station")], by_id[partner_id("wechat-bridge")]
    # Each row went through its own partner's instance, and was delivered once.
    assert (tv_row.state, tv_row.gateway) == ("delivered", "tv-station")
    assert (bridge_row.state, bridge_row.gateway) == ("delivered", "wechat-bridge")
    assert tv.refused == 2 and tv_row.attempts == 3  # two 503s, then accepted
    assert len(tv.bodies) == 1 and len(bridge.bodies) == 1
    content_type, body, key = tv.bodies[0]
    assert content_type.startswith("application/cap+xml") and b"<alert" in body
    assert key.startswith("wp-")
    content_type, body, _ = bridge.bodies[0]
    assert content_type.startswith("application/json")
    envelope = json.loads(body)
    assert envelope["id"] == w["id"] and envelope["level"] == "yellow"


def test_partners_whose_numbers_collide_are_refused():
    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

    # "plumless" and "buckeroo" are a well-known CRC-32 collision.
    pair = ("plumless", "buckeroo")
    assert partner_id(pair[0]) == partner_id(pair[1])
    with pytest.raises(ChannelError, match="cannot be told apart"):
        check_partners([Named(pair[0]), Named(pair[1])])  # type: ignore[list-item]
    check_partners([Named("tv"), Named("radio")])  # type: ignore[list-item]
