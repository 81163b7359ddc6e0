"""GET /api/v1/warnings/{id}/report: operators only; the same numbers as the report itself."""

from __future__ import annotations

import pytest

from tests.reports.county import P3_PHONE, build

pytestmark = pytest.mark.postgres


async def test_operator_gets_the_report(client, db, settings):
    county = await build(db, settings)
    r = await client.get(
        f"/api/v1/warnings/{county.warning_id}/report", headers=county.world.operator("duty1")
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["warning"]["id"] == county.warning_id and body["warning"]["drill"] is False
    assert body["totals"] == {
        "targeted": 10,
        "sent": 10,
        "delivered": 5,
        "acknowledged": 2,
        "unreached": 4,
        "pending": 1,
        "ack_expected": 2,
        "coverage": 0.5,
    }
    assert {row["label"]: row["unreached"] for row in body["by_town"]} == {"戴埠镇": 4, "社渚镇": 0}
    marks = {x["name"]: x for x in body["milestones"]}
    assert marks["delivered_50"]["at"] == "2026-06-01T00:10:00Z"
    assert marks["delivered_50"]["since_approved_s"] == 540
    assert body["unreached"] is None and body["unreached_total"] == 4
    assert {x["status"] for x in body["checks"]} <= {"met", "missed", "pending", "not_applicable"}


async def test_drill_report_lists_the_unreached(client, db, settings):
    county = await build(db, settings, status="Exercise")
    r = await client.get(
        f"/api/v1/warnings/{county.warning_id}/report", headers=county.world.operator("chief")
    )
    body = await r.json()
    assert r.status == 200 and body["warning"]["drill"] is True
    assert [u["name"] for u in body["unreached"]] == [
        "戴北村公告屏",
        "视障三",
        "联络员五",
        "村民七",
    ]
    assert P3_PHONE not in await r.text()
    r = await client.get(
        f"/api/v1/warnings/{county.warning_id}/report?unreached=false",
        headers=county.world.operator("chief"),
    )
    assert (await r.json())["unreached"] is None


async def test_unreached_on_request(client, db, settings):
    county = await build(db, settings)
    r = await client.get(
        f"/api/v1/warnings/{county.warning_id}/report?unreached=true",
        headers=county.world.operator("duty1"),
    )
    assert len((await r.json())["unreached"]) == 4


async def test_unknown_warning_is_404_problem(client, db, settings):
    county = await build(db, settings)
    r = await client.get(
        "/api/v1/warnings/01NOSUCHWARNING0000000000/report", headers=county.world.operator("duty1")
    )
    assert r.status == 404
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = await r.json()
    assert body["status"] == 404 and "01NOSUCHWARNING0000000000" in body["detail"]


async def test_bad_flag_is_422_naming_it(client, db, settings):
    county = await build(db, settings)
    r = await client.get(
        f"/api/v1/warnings/{county.warning_id}/report?unreached=maybe",
        headers=county.world.operator("duty1"),
    )
    assert r.status == 422
    assert r.headers["Content-Type"].startswith("application/problem+json")
    body = await r.json()
    assert body["errors"][0]["field"] == "unreached" and "maybe" in body["errors"][0]["message"]


async def test_agencies_and_strangers_are_refused(client, db, settings):
    county = await build(db, settings)
    url = f"/api/v1/warnings/{county.warning_id}/report"
    r = await client.get(url, headers=county.world.agency("QX"))
    assert r.status == 403 and "operators" in (await r.json())["detail"]
    r = await client.get(url)
    assert r.status == 401
