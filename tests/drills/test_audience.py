"""Drill audiences (area / consent / list), the fifo switch, and intake of the parameter."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from tests.audiences.test_targeting import (
    DAIBEI_VILLAGE,
    HEKOU_COMMUNITY,
    SHEZHU_VILLAGE,
    XIAXI_VILLAGE,
    population,
)
from tests.factories import alert_json, seed
from warnpub.audiences.tables import Person
from warnpub.audiences.targeting import Scope, Targeter
from warnpub.config import load_settings
from warnpub.drills.audience import PARAMETER, DrillAudience, parse
from warnpub.storage.tables import WarningRecord

TOWN = "320481116000"  # 社渚镇: 社渚村, 下西村, 河口社区


def settings_with(**dispatch):
    s = load_settings(environ={})
    for k, v in dispatch.items():
        setattr(s.dispatch, k, v)
    s.channels = {"webhook": [{"name": "tv"}]}  # a partner: real warnings go to it, drills not
    return s


async def targets(db, scope, settings=None):
    settings = settings or settings_with()
    async with db.reader() as s:
        return [t async for b in Targeter(settings).batches(s, scope) for t in b]


@pytest.fixture
async def town(db, settings):
    world = await seed(db, settings)
    await population(db)
    async with db.session() as s:
        # External ids for everyone; drill consent for the elderly person and the urban resident.
        for pid, name in (await s.execute(select(Person.id, Person.name))).all():
            await s.execute(update(Person).where(Person.id == pid).values(external_id=f"P{pid}"))
        await s.execute(
            update(Person).where(Person.name.in_(["独居老人", "城镇居民"])).values(drill_consent=True)
        )
    return world


def test_parse_values():
    assert parse("area") == DrillAudience("area")
    assert parse(" consent ") == DrillAudience("consent")
    assert parse("list:A1, B2,A1") == DrillAudience("list", ("A1", "B2"))
    for bad in ("", "village", "list:", "list:A1,,B2", "list", "consent:x"):
        with pytest.raises(ValueError, match=PARAMETER):
            parse(bad)


async def test_area_drill_reaches_the_area_but_no_partner(db, town):
    real = await targets(db, Scope((TOWN,), "red"))
    drill = await targets(db, Scope((TOWN,), "red", DrillAudience("area")))
    assert [t for t in real if t.kind != "partner"] == drill
    assert any(t.kind == "partner" for t in real)
    assert {t.area_code for t in drill} <= {SHEZHU_VILLAGE, XIAXI_VILLAGE, HEKOU_COMMUNITY}


async def test_drill_without_parameter_takes_the_configured_default(db, town):
    settings = settings_with()
    settings.drills.audience = "consent"
    got = await targets(db, Scope((TOWN,), "red", DrillAudience()), settings)
    assert len([t for t in got if t.kind == "person"]) == 2


async def test_consent_drill_reaches_consenting_people_and_the_devices(db, town):
    got = await targets(db, Scope((TOWN,), "red", DrillAudience("consent")))
    async with db.reader() as s:
        consenting = set(
            (await s.execute(select(Person.id).where(Person.drill_consent.is_(True)))).scalars()
        )
    assert {t.id for t in got if t.kind == "person"} == consenting
    assert len([t for t in got if t.kind == "device"]) == 2  # 社渚村 speaker, 下西村 board
    assert [t.tier_name for t in got if t.kind == "person"] == ["special_needs", "urban_residents"]


async def test_list_drill_reaches_only_the_listed_people(db, town):
    async with db.reader() as s:
        ids = dict((await s.execute(select(Person.name, Person.id))).all())
    listed = DrillAudience("list", (f"P{ids['无手机']}", f"P{ids['农村居民']}"))
    got = await targets(db, Scope((TOWN,), "red", listed))
    assert {t.id for t in got} == {ids["无手机"], ids["农村居民"]}
    assert all(t.kind == "person" for t in got)
    # No devices are played for a listed drill, so a route must not count on them.
    no_phone = next(t for t in got if t.id == ids["无手机"])
    assert no_phone.route == (("relay",),)
    assert await targets(db, Scope((TOWN,), "red", DrillAudience("list", ()))) == []


async def test_fifo_gives_every_target_one_priority_in_read_order(db, town):
    tiers = await targets(db, Scope((TOWN,), "red"))
    fifo = await targets(db, Scope((TOWN,), "red"), settings_with(priority_order="fifo"))
    people = [t for t in fifo if t.kind == "person"]
    assert {t.id for t in tiers} == {t.id for t in fifo}
    assert len({t.priority for t in fifo}) == 1
    # Read in area order, not tier by tier; each still labelled with its tier for reports.
    assert [t.area_code for t in people] == sorted(t.area_code for t in people)
    assert [t.tier_name for t in people] != sorted(
        (t.tier_name for t in people), key=settings_with().audiences.tiers.index
    )
    by_id = {t.id: t.tier_name for t in tiers if t.kind == "person"}
    assert {t.id: t.tier_name for t in people} == by_id
    # With tiers, the special-needs people come before the residents and have a lower number.
    first_resident = min(t.priority for t in tiers if t.tier_name.endswith("residents"))
    assert max(t.priority for t in tiers if t.tier_name == "special_needs") < first_resident


def drill_doc(value: str | None, *, status: str = "Exercise", code: str = TOWN):
    params = [] if value is None else [{"value_name": PARAMETER, "value": value}]
    return alert_json(status=status, code=code, parameters=params)


async def stored(db) -> int:
    async with db.reader() as s:
        return int((await s.execute(select(func.count()).select_from(WarningRecord))).scalar_one())


@pytest.mark.parametrize(
    "value,status,says",
    [
        ("everyone", "Exercise", "write area, consent or list:"),
        ("list:", "Exercise", "roster ids"),
        ("area", "Actual", "not Exercise, so remove the parameter"),
        ("consent", "Test", "not Exercise"),
        ("list:NOBODY", "Exercise", "no person on the roster has the id NOBODY"),
        ("list:P{daibei}", "Exercise", "outside the warning's areas"),
    ],
)
async def test_bad_parameter_is_a_422_and_nothing_is_stored(client, db, town, value, status, says):
    async with db.reader() as s:
        daibei = (
            await s.execute(select(Person.id).where(Person.area_code == DAIBEI_VILLAGE))
        ).scalar_one()
    r = await client.post(
        "/api/v1/warnings",
        json=drill_doc(value.replace("{daibei}", str(daibei)), status=status),
        headers=town.agency("QX"),
    )
    body = await r.json()
    assert r.status == 422, body
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert any(says in e["message"] for e in body["errors"]), body
    assert any("parameters" in e["field"] for e in body["errors"]), body
    assert await stored(db) == 0


async def test_good_list_is_stored_and_the_plan_shows_only_those_people(client, db, town):
    async with db.reader() as s:
        pid = (await s.execute(select(Person.id).where(Person.name == "独居老人"))).scalar_one()
    world = town
    r = await client.post(
        "/api/v1/warnings", json=drill_doc(f"list:P{pid}"), headers=world.agency("QX")
    )
    body = await r.json()
    assert r.status == 202, body
    r = await client.get(f"/api/v1/warnings/{body['id']}/plan", headers=world.operator("duty1"))
    plan = await r.json()
    assert r.status == 200, plan
    assert plan["people"] == 1 and plan["devices"] == 0
