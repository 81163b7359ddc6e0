"""POST /api/v1/warnings: acceptance, every refusal (with no row written), idempotency, dedupe."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import SHARED_DATA
from tests.factories import TOWN_DAIBU, TOWN_SHEZHU, VILLAGE_SHEZHU, alert_json, cap_xml, seed
from warnpub.storage.tables import AuditEntry, IdempotencyRecord, Timer, WarningArea, WarningRecord

pytestmark = pytest.mark.postgres
XML = {"Content-Type": "application/cap+xml"}


async def counts(db) -> tuple[int, int, int, int, int]:
    async with db.session() as s:
        return tuple(
            [
                (await s.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (WarningRecord, WarningArea, Timer, IdempotencyRecord, AuditEntry)
            ]
        )


@pytest.fixture
async def world(db, settings):
    return await seed(db, settings)


async def test_json_warning_is_stored_pending_with_status_url(client, db, world):
    r = await client.post("/api/v1/warnings", json=alert_json(), headers=world.agency("QX"))
    assert r.status == 202, await r.text()
    body = await r.json()
    assert (
        body["state"] == "pending" and body["level"] == "yellow" and body["hazard"] == "rainstorm"
    )
    assert body["status_url"].endswith(f"/api/v1/warnings/{body['id']}")
    assert r.headers["Location"] == body["status_url"]
    got = await client.get(f"/api/v1/warnings/{body['id']}", headers=world.agency("QX"))
    detail = await got.json()
    assert detail["areas"] == [TOWN_SHEZHU]
    assert detail["alert"]["infos"][0]["instruction"] == "注意防范"
    async with db.session() as s:
        timers = (await s.execute(select(Timer.kind).order_by(Timer.kind))).scalars().all()
    assert timers == ["expire", "review_deadline"]


async def test_cap_xml_warning_keeps_original_and_maps_level(client, db, world):
    cap_body = cap_xml(severity="Severe")
    r = await client.post("/api/v1/warnings", data=cap_body, headers={**world.agency("QX"), **XML})
    assert r.status == 202, await r.text()
    body = await r.json()
    assert body["level"] == "orange" and body["approvals_needed"] == 2
    async with db.session() as s:
        w = await s.get(WarningRecord, body["id"])
    assert w.cap_xml == cap_body  # kept byte for byte (encodings and signatures intact)


async def test_green_channel_releases_at_once_and_is_marked(client, world):
    r = await client.post(
        "/api/v1/warnings", json=alert_json(severity="Extreme"), headers=world.agency("QX")
    )
    body = await r.json()
    assert r.status == 202 and body["state"] == "approved" and body["green_channel"] is True
    assert body["review_deadline"] is None


async def test_village_inside_town_scope_is_accepted(client, world):
    doc = alert_json(event="洪水", code=VILLAGE_SHEZHU)
    r = await client.post("/api/v1/warnings", json=doc, headers=world.agency("SL"))
    assert r.status == 202, await r.text()


HOSTILE_XML = {
    "entity bomb": b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>""",
    "external entity": b"""<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>""",
    "not xml": b"<alert><unclosed></alert>",
    "invalid utf-8": b'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">\xff\xfe</alert>',
}


@pytest.mark.parametrize("name", list(HOSTILE_XML))
async def test_hostile_or_malformed_xml_is_400_and_writes_nothing(client, db, world, name):
    before = await counts(db)
    r = await client.post(
        "/api/v1/warnings", data=HOSTILE_XML[name], headers={**world.agency("QX"), **XML}
    )
    assert r.status == 400, await r.text()
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert (await r.json())["detail"]
    assert await counts(db) == before


async def test_shared_xee_file_is_refused(client, db, world):
    path = SHARED_DATA / "cap-invalid" / "xee.cap"
    before = await counts(db)
    r = await client.post(
        "/api/v1/warnings", data=path.read_bytes(), headers={**world.agency("QX"), **XML}
    )
    assert r.status == 400 and "DTD" in (await r.json())["detail"] + str(
        (await r.json()).get("errors")
    )
    assert await counts(db) == before


def _shared(name: str) -> Path:
    path = SHARED_DATA / "cap-invalid" / name
    return path


async def test_schema_failure_is_422_naming_the_element(client, db, world):
    before = await counts(db)
    r = await client.post(
        "/api/v1/warnings",
        data=_shared("invalid.cap").read_bytes(),
        headers={**world.agency("QX"), **XML},
    )
    body = await r.json()
    assert r.status == 422 and any("scope" in (e["field"] + e["message"]) for e in body["errors"])
    assert await counts(db) == before


async def test_cap_11_is_refused_with_clear_message(client, world):
    r = await client.post(
        "/api/v1/warnings",
        data=_shared("noaa_errors.cap").read_bytes(),
        headers={**world.agency("QX"), **XML},
    )
    assert r.status == 422 and "CAP 1.2" in (await r.json())["detail"] + str(
        (await r.json()).get("errors")
    )


REFUSALS = [
    # (name, agency, document tweak, status, text expected in the problem)
    (
        "unknown area",
        "QX",
        lambda: alert_json(code="320481116999"),
        422,
        "unknown division code 320481116999",
    ),
    (
        "area outside agency",
        "SL",
        lambda: alert_json(event="洪水", code=TOWN_DAIBU),
        403,
        "outside agency SL",
    ),
    (
        "hazard outside agency",
        "SL",
        lambda: alert_json(event="暴雨"),
        403,
        "may not warn about rainstorm",
    ),
    ("unknown hazard", "QX", lambda: alert_json(event="陨石"), 422, "names no known hazard"),
    (
        "short division code",
        "QX",
        lambda: alert_json(code="320481"),
        422,
        "write it out to 12 digits",
    ),
    ("expires before sent", "QX", lambda: alert_json(hours=-1), 422, "expires"),
    (
        "unknown severity",
        "QX",
        lambda: alert_json(severity="Unknown"),
        422,
        "Extreme, Severe, Moderate or Minor",
    ),
    (
        "other sender",
        "QX",
        lambda: alert_json(sender="sl@320481"),
        403,
        "is not agency QX's sender",
    ),
    (
        "update of unknown",
        "QX",
        lambda: alert_json(
            msg_type="Update", references=["qx@320481,nope,2026-01-01T00:00:00+08:00"]
        ),
        422,
        "no warning qx@320481,nope",
    ),
]


@pytest.mark.parametrize("name,agency,make,status,text", REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_refusals_are_4xx_with_reason_and_write_nothing(
    client, db, world, name, agency, make, text, status
):
    before = await counts(db)
    r = await client.post("/api/v1/warnings", json=make(), headers=world.agency(agency))
    body = await r.json()
    assert r.status == status, body
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert text in body["detail"] + " ".join(
        e["message"] + e["field"] for e in body.get("errors", [])
    ), body
    assert await counts(db) == before


async def test_malformed_json_is_400(client, db, world):
    before = await counts(db)
    r = await client.post(
        "/api/v1/warnings",
        data=b'{"infos": [',
        headers={**world.agency("QX"), "Content-Type": "application/json"},
    )
    assert r.status == 400 and "JSON is malformed" in (await r.json())["detail"]
    assert await counts(db) == before


async def test_json_schema_errors_name_the_field(client, world):
    doc = alert_json()
    doc["infos"][0]["urgency"] = "Soonish"
    r = await client.post("/api/v1/warnings", json=doc, headers=world.agency("QX"))
    body = await r.json()
    assert r.status == 422 and any(
        e["field"].startswith("infos.0.urgency") for e in body["errors"]
    ), body


async def test_oversized_body_is_refused_before_parsing(client, db, world):
    before = await counts(db)
    r = await client.post(
        "/api/v1/warnings", data=b"<" * (1_048_576 + 1), headers={**world.agency("QX"), **XML}
    )
    assert r.status == 413 and "limit" in (await r.json())["detail"]
    assert await counts(db) == before


async def test_wrong_content_type_is_415(client, world):
    r = await client.post(
        "/api/v1/warnings",
        data=b"hello",
        headers={**world.agency("QX"), "Content-Type": "text/plain"},
    )
    assert r.status == 415


@pytest.mark.parametrize(
    "auth", [None, "Basic abc", "Bearer nonsense", "Bearer wpk_000000000000_forged"]
)
async def test_missing_or_bad_credentials_are_401(client, db, world, auth):
    headers = {"Authorization": auth} if auth else {}
    r = await client.post("/api/v1/warnings", json=alert_json(), headers=headers)
    assert r.status == 401 and (await r.json())["detail"]


async def test_revoked_key_is_refused(client, db, settings, world):
    from warnpub.auth.agencies import revoke_keys

    async with db.session() as s:
        await revoke_keys(s, "QX", actor="test")
    before = await counts(db)
    r = await client.post("/api/v1/warnings", json=alert_json(), headers=world.agency("QX"))
    assert r.status == 401 and "revoked" in (await r.json())["detail"]
    assert await counts(db) == before


async def test_rotated_key_works_and_old_one_stops(client, db, world):
    from warnpub.auth.agencies import rotate_key

    async with db.session() as s:
        new = await rotate_key(s, "QX", actor="test", revoke_old=True)
    assert (
        await client.post("/api/v1/warnings", json=alert_json(), headers=world.agency("QX"))
    ).status == 401
    r = await client.post(
        "/api/v1/warnings", json=alert_json(), headers={"Authorization": f"Bearer {new.key}"}
    )
    assert r.status == 202


async def test_idempotency_key_replays_first_answer(client, db, world):
    doc = alert_json()
    h = {**world.agency("QX"), "Idempotency-Key": "abc-1"}
    first = await client.post("/api/v1/warnings", json=doc, headers=h)
    second = await client.post("/api/v1/warnings", json=doc, headers=h)
    assert first.status == second.status == 202
    assert await first.json() == await second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(WarningRecord))).scalar_one() == 1


async def test_idempotency_key_with_other_body_is_422(client, db, world):
    h = {**world.agency("QX"), "Idempotency-Key": "abc-2"}
    assert (await client.post("/api/v1/warnings", json=alert_json(), headers=h)).status == 202
    before = await counts(db)
    r = await client.post("/api/v1/warnings", json=alert_json(), headers=h)
    assert r.status == 422 and "different request body" in (await r.json())["detail"]
    assert await counts(db) == before


async def test_same_identifier_twice_is_stored_once(client, db, world):
    body = cap_xml(identifier="qx-2026-0001")
    h = {**world.agency("QX"), **XML}
    first = await client.post("/api/v1/warnings", data=body, headers=h)
    again = await client.post("/api/v1/warnings", data=body, headers=h)
    assert first.status == 202 and again.status == 200
    assert (await again.json())["duplicate"] is True and (await again.json())["id"] == (
        await first.json()
    )["id"]
    other = await client.post(
        "/api/v1/warnings", data=cap_xml(identifier="qx-2026-0001", severity="Minor"), headers=h
    )
    assert other.status == 409 and "already used identifier" in (await other.json())["detail"]
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(WarningRecord))).scalar_one() == 1


async def test_update_and_cancel_reference_earlier_warning(client, db, world):
    h = {**world.agency("QX"), **XML}
    first = await (
        await client.post("/api/v1/warnings", data=cap_xml(identifier="qx-a"), headers=h)
    ).json()
    ref = f"qx@320481,qx-a,{first['sent'].replace('Z', '+00:00')}"
    upd = await client.post(
        "/api/v1/warnings",
        data=cap_xml(identifier="qx-b", msg_type="Update", references=ref),
        headers=h,
    )
    assert upd.status == 202, await upd.text()
    assert (
        await (
            await client.get(
                f"/api/v1/warnings/{(await upd.json())['id']}", headers=world.agency("QX")
            )
        ).json()
    )["references"] == [first["id"]]


async def test_agency_sees_only_its_own_warnings(client, world):
    r = await client.post("/api/v1/warnings", json=alert_json(), headers=world.agency("QX"))
    wid = (await r.json())["id"]
    assert (await client.get(f"/api/v1/warnings/{wid}", headers=world.agency("SL"))).status == 404
    listed = await (await client.get("/api/v1/warnings", headers=world.agency("SL"))).json()
    assert listed["warnings"] == []


async def test_operator_submits_on_behalf_of_agency_by_sender(client, world):
    doc = alert_json(sender="qx@320481")
    r = await client.post("/api/v1/warnings", json=doc, headers=world.operator("duty1"))
    assert r.status == 202, await r.text()


async def test_json_with_duplicate_keys_is_400(client, db, world):
    before = await counts(db)
    r = await client.post(
        "/api/v1/warnings",
        data=b'{"status": "Actual", "status": "Test"}',
        headers={**world.agency("QX"), "Content-Type": "application/json"},
    )
    assert r.status == 400 and "status" in (await r.json())["detail"]
    assert await counts(db) == before


def _polygon_alert(
    points: list[tuple[float, float]] | None = None, circle: str | None = None
) -> dict:
    doc = alert_json()
    area = {"area_desc": "沿河地带"}
    if points:
        area["polygons"] = [points]
    if circle:
        area["circles"] = [circle]
    doc["infos"][0]["areas"] = [area]
    return doc


async def _shezhu_boundary(db) -> None:
    """Give 社渚村 a square boundary around 31.30N 119.40E."""
    import json

    from warnpub.audiences.areas import load_areas_geojson

    square = [[119.39, 31.29], [119.41, 31.29], [119.41, 31.31], [119.39, 31.31], [119.39, 31.29]]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [square]},
        "properties": {
            "code": VILLAGE_SHEZHU,
            "name": "社渚村",
            "level": "village",
            "parent_code": "320481116",
        },
    }
    async with db.session() as s:
        await load_areas_geojson(
            s, json.dumps({"type": "FeatureCollection", "features": [feature]})
        )


async def test_polygon_and_circle_areas_resolve_to_villages(client, db, world):
    await _shezhu_boundary(db)
    # CAP writes lat,lon.
    poly = [
        (31.295, 119.395),
        (31.295, 119.405),
        (31.305, 119.405),
        (31.305, 119.395),
        (31.295, 119.395),
    ]
    r = await client.post("/api/v1/warnings", json=_polygon_alert(poly), headers=world.agency("QX"))
    assert r.status == 202, await r.text()
    detail = await (
        await client.get(f"/api/v1/warnings/{(await r.json())['id']}", headers=world.agency("QX"))
    ).json()
    assert detail["areas"] == [VILLAGE_SHEZHU]
    flood = _polygon_alert(circle="31.30,119.40 0.5")
    flood["infos"][0]["event"] = "洪水"
    r = await client.post("/api/v1/warnings", json=flood, headers=world.agency("SL"))
    assert r.status == 202, await r.text()  # the circle lies in 社渚镇, inside SL's areas
    detail = await (
        await client.get(f"/api/v1/warnings/{(await r.json())['id']}", headers=world.agency("SL"))
    ).json()
    assert detail["areas"] == [VILLAGE_SHEZHU]


async def test_polygon_that_covers_nothing_is_422(client, db, world):
    await _shezhu_boundary(db)
    before = await counts(db)
    far = [(30.0, 110.0), (30.0, 110.1), (30.1, 110.1), (30.1, 110.0), (30.0, 110.0)]
    r = await client.post("/api/v1/warnings", json=_polygon_alert(far), headers=world.agency("QX"))
    body = await r.json()
    assert r.status == 422 and "covers no known" in str(body["errors"]), body
    assert await counts(db) == before


async def test_a_reference_to_another_agencys_warning_does_not_tell_whether_it_exists(
    client, db, world
):
    """Agency SL naming one of QX's warnings in an Update gets the same refusal whether that
    warning exists or not: intake must not be a way to probe another agency's identifiers."""
    doc = alert_json()
    r = await client.post("/api/v1/warnings", json=doc, headers=world.agency("QX"))
    assert r.status == 202, await r.text()
    real = f"qx@320481,{doc['identifier']},{doc['sent']}"
    made_up = f"qx@320481,no-such-{doc['identifier']},{doc['sent']}"
    answers = []
    before = await counts(db)
    for ref in (real, made_up):
        r = await client.post(
            "/api/v1/warnings",
            json=alert_json(
                sender="sl@320481", event="洪水", msg_type="Update", references=[ref]
            ),
            headers=world.agency("SL"),
        )
        body = await r.json()
        assert r.status == 422, body
        [error] = body["errors"]
        assert "may only refer to the same sender's warnings" in error["message"]
        answers.append(error["message"].replace(ref.split(",")[1], "ID"))
    assert answers[0] == answers[1]
    assert await counts(db) == before
