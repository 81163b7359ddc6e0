"""End to end through the real simulator: plan, send, receipts, completion, cancel, metrics."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from tests.dispatch.conftest import make_county
from warnpub.storage.tables import Delivery

pytestmark = pytest.mark.postgres
CITY = "320481000000"


async def deliveries(db, warning_id: str) -> list[Delivery]:
    async with db.session() as s:
        return list(
            (await s.execute(select(Delivery).where(Delivery.warning_id == warning_id))).scalars()
        )


async def test_warning_reaches_everyone_once_and_completes(county, sim):
    w = await county.submit(severity="Moderate", code=CITY)
    await county.approve(w["id"])
    done = await county.wait_state(w["id"], "completed")
    assert done["state"] == "completed"
    rows = await deliveries(county.db, w["id"])
    sms = [d for d in rows if d.channel == "sms"]
    stats = await sim.stats()
    assert stats["accepted"] == len(sms) == stats["unique_references"]
    assert stats["duplicates"] == 0
    assert all(d.state == "delivered" for d in sms), {d.state for d in sms}
    # Channels this county has not configured are recorded as such, never left waiting.
    assert {d.last_error for d in rows if d.channel in ("voice", "relay")} <= {
        "no voice channel is configured",
        "no relay channel is configured",
    }
    assert not [d for d in rows if d.state in ("queued", "sending", "planned")]


async def test_special_needs_and_contacts_leave_first(county, sim):
    w = await county.submit(severity="Moderate", code=CITY)
    await county.approve(w["id"])
    await county.wait_state(w["id"], "completed")
    rows = {f"wp-{d.id}": d for d in await deliveries(county.db, w["id"]) if d.channel == "sms"}
    order = [m["reference"] for m in sim.gateway.messages(0, 100_000)["messages"]]
    tiers = [rows[ref].tier for ref in order if ref in rows]
    assert tiers == sorted(tiers), "a lower tier left before a higher one"


async def test_cancel_stops_what_has_not_left(settings, db, sim):
    county, client = await make_county(settings, db, [sim], rate_per_s=100)
    try:
        w = await county.submit(severity="Moderate", code=CITY)
        await county.approve(w["id"])
        # Cancel once sending is under way (PostgreSQL on a busy machine may take a while to
        # write the plan), but long before 100/s gets through the whole city.
        for _ in range(200):
            if (await sim.stats())["accepted"] > 0:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        r = await county.client.post(
            f"/api/v1/warnings/{w['id']}/cancel",
            json={"reason": "wrong area"},
            headers=county.world.operator("duty1"),
        )
        assert r.status == 200
        accepted_at_cancel = (await sim.stats())["accepted"]
        await asyncio.sleep(1.0)
        accepted_later = (await sim.stats())["accepted"]
        async with db.session() as s:
            states = dict(
                (
                    await s.execute(
                        select(Delivery.state, func.count())
                        .where(Delivery.warning_id == w["id"])
                        .group_by(Delivery.state)
                    )
                ).all()
            )
    finally:
        await client.close()
    assert 0 < accepted_at_cancel < sum(states.values())
    # Only what was already on its way (at most one round of claims) leaves after the cancel.
    assert accepted_later - accepted_at_cancel <= 100
    assert states.get("cancelled", 0) > 0 and not states.get("queued") and not states.get("planned")


async def test_metrics_show_deliveries_and_gateway_health(county, sim):
    w = await county.submit(severity="Moderate", code=CITY)
    await county.approve(w["id"])
    await county.wait_state(w["id"], "completed")
    text = await (await county.client.get("/metrics")).text()
    assert 'warnpub_deliveries{channel="sms",state="delivered"}' in text
    assert 'warnpub_send_seconds_count{channel="sms",instance="sim0"}' in text
    assert 'warnpub_gateway_error_rate{channel="sms",instance="sim0"} 0.0' in text


async def test_update_reaches_the_original_areas_and_the_new_ones(county, sim):
    from tests.factories import TOWN_DAIBU, TOWN_SHEZHU, cap_xml

    h = {**county.world.agency("QX"), "Content-Type": "application/cap+xml"}
    first = await (
        await county.client.post(
            "/api/v1/warnings",
            data=cap_xml(identifier="qx-u1", code=TOWN_SHEZHU, severity="Moderate"),
            headers=h,
        )
    ).json()
    await county.approve(first["id"])
    await county.wait_state(first["id"], "completed")
    ref = f"qx@320481,qx-u1,{first['sent'].replace('Z', '+00:00')}"
    update = await (
        await county.client.post(
            "/api/v1/warnings",
            data=cap_xml(
                identifier="qx-u2",
                msg_type="Update",
                references=ref,
                code=TOWN_DAIBU,
                severity="Moderate",
            ),
            headers=h,
        )
    ).json()
    await county.approve(update["id"])
    await county.wait_state(update["id"], "completed")
    towns = {d.area_code[:9] for d in await deliveries(county.db, update["id"])}
    reached_first = {
        d.target_id
        for d in await deliveries(county.db, first["id"])
        if d.state == "delivered" and d.target_kind == "person"
    }
    reached_update = {
        d.target_id for d in await deliveries(county.db, update["id"]) if d.target_kind == "person"
    }
    assert towns == {TOWN_SHEZHU[:9], TOWN_DAIBU[:9]}
    assert reached_first <= reached_update
