"""Targeting: route rules, tier order, opt-outs, area scope and the plan preview."""

from __future__ import annotations

import pytest

from tests.factories import alert_json, seed
from warnpub.audiences.needs import Need
from warnpub.audiences.routes import Reach, RoutePolicy
from warnpub.audiences.tables import Device, Person
from warnpub.audiences.targeting import Scope, Targeter
from warnpub.config import load_settings

SETTINGS = load_settings(environ={})
POLICY = RoutePolicy(SETTINGS.audiences.routes)
EVERYTHING = Reach(phone=True, email=True, relay=True, speaker=True, board=True)
NOTHING = Reach(phone=False, email=False, relay=False, speaker=False, board=False)
V, H, NP, EA = Need.VISUALLY_IMPAIRED, Need.HEARING_IMPAIRED, Need.NO_PHONE, Need.ELDERLY_ALONE

ROUTE_RULES = [
    # (who, needs, role, reach, expected route, works)
    ("hearing-impaired: sms, then board, then visit", H, "resident", EVERYTHING, ["sms", "board", "relay"], True),
    ("hearing-impaired never loudspeaker alone", H, "resident", Reach(False, False, False, True, False), [], False),
    ("visually impaired: speaker and voice, then visit", V, "resident", EVERYTHING, ["speaker+voice", "relay"], True),
    ("deaf-blind with a phone: a call they cannot hear is no route", V | H, "resident", Reach(True, True, False, False, True), ["voice"], False),
    ("visually impaired never text alone", V, "resident", Reach(True, True, False, False, True), ["voice"], True),
    ("visually impaired without phone: speaker, then visit", V, "resident", Reach(False, False, True, True, False), ["speaker", "relay"], True),
    ("no phone: visit plus speaker and board", NP, "resident", EVERYTHING, ["relay+speaker+board"], True),
    ("no phone and nothing in the village: no route", NP, "resident", NOTHING, [], False),
    ("elderly living alone: sms and a visit", EA, "resident", EVERYTHING, ["sms+relay"], True),
    ("elderly alone without relay contact: sms", EA, "resident", Reach(True, False, False, False, False), ["sms"], True),
    ("village contact: sms", 0, "village_contact", EVERYTHING, ["sms"], True),
    ("everyone else: sms, then email", 0, "resident", EVERYTHING, ["sms", "email"], True),
    ("everyone else, email only", 0, "resident", Reach(False, True, False, True, True), ["email"], True),
    ("visually impaired rule wins over hearing", V | H, "resident", EVERYTHING, ["speaker+voice", "relay"], True),
]


@pytest.mark.parametrize("who,needs,role,reach,route,works", ROUTE_RULES, ids=[r[0] for r in ROUTE_RULES])
def test_route_rules(who, needs, role, reach, route, works):
    choice = POLICY.choose(int(needs), role, reach)
    assert ["+".join(stage) for stage in choice.route] == route
    assert choice.works is works


pytestmark_db = pytest.mark.postgres

SHEZHU_VILLAGE = "320481116200"  # 社渚村 (no urban-rural class in the shared data)
XIAXI_VILLAGE = "320481116201"  # 下西村
HEKOU_COMMUNITY = "320481116002"  # 河口社区
DAIBEI_VILLAGE = "320481103206"  # 戴北村, another town


async def population(db):
    """A small town: rural 社渚村 and 下西村, urban 河口社区, plus a village in another town."""
    from sqlalchemy import update

    from warnpub.audiences.tables import Area

    async with db.session() as s:
        await s.execute(update(Area).where(Area.code.in_([SHEZHU_VILLAGE, XIAXI_VILLAGE, DAIBEI_VILLAGE])).values(urban_rural="220"))
        await s.execute(update(Area).where(Area.code == HEKOU_COMMUNITY).values(urban_rural="111"))
        contact = Person(name="联络员", area_code=SHEZHU_VILLAGE, role="village_contact", phone="+8613800000001")
        s.add(contact)
        await s.flush()
        people = [
            Person(name="城镇居民", area_code=HEKOU_COMMUNITY, phone="+8613800000002"),
            Person(name="农村居民", area_code=SHEZHU_VILLAGE, phone="+8613800000003"),
            Person(name="独居老人", area_code=SHEZHU_VILLAGE, needs=int(EA), phone="+8613800000004", relay_contact_id=contact.id),
            Person(name="无手机", area_code=XIAXI_VILLAGE, needs=int(NP), relay_contact_id=contact.id),
            Person(name="无手机无联络员", area_code=HEKOU_COMMUNITY, needs=int(NP)),
            Person(name="退订者", area_code=XIAXI_VILLAGE, phone="+8613800000005", opt_out=True),
            Person(name="外镇居民", area_code=DAIBEI_VILLAGE, phone="+8613800000006"),
        ]
        s.add_all(people)
        s.add_all([
            Device(kind="speaker_group", name="社渚村广播", area_code=SHEZHU_VILLAGE, address="warnpub/speakers/320481116200"),
            Device(kind="board_paper", name="下西村公告栏", area_code=XIAXI_VILLAGE, address="board-320481116201"),
            Device(kind="speaker_group", name="戴北村广播", area_code=DAIBEI_VILLAGE, address="warnpub/speakers/320481103206"),
        ])


async def targets(db, codes, level):
    async with db.reader() as s:
        return [t async for b in Targeter(SETTINGS).batches(s, Scope(tuple(codes), level)) for t in b]


@pytest.fixture
async def town(db, settings):
    await seed(db, settings)
    await population(db)


@pytestmark_db
async def test_tiers_come_in_priority_order(db, town):
    got = await targets(db, ["320481116000"], "red")
    order = [t.tier_name for t in got]
    assert order == sorted(order, key=SETTINGS.audiences.tiers.index)
    assert [t.tier_name for t in got] == (
        ["devices"] * 2 + ["special_needs"] * 3 + ["village_contacts"] + ["rural_residents"] * 2 + ["urban_residents"]
    )
    assert [t.priority for t in got] == sorted(t.priority for t in got)
    assert {t.area_code for t in got} <= {SHEZHU_VILLAGE, XIAXI_VILLAGE, HEKOU_COMMUNITY}


@pytestmark_db
async def test_opt_outs_are_honoured_for_blue_and_yellow_only(db, town):
    def names(ts):
        return len([t for t in ts if t.kind == "person"])

    assert names(await targets(db, ["320481116000"], "yellow")) == names(await targets(db, ["320481116000"], "red")) - 1
    assert names(await targets(db, ["320481116000"], "blue")) == names(await targets(db, ["320481116000"], "orange")) - 1


@pytestmark_db
async def test_village_code_targets_only_that_village(db, town):
    got = await targets(db, [XIAXI_VILLAGE], "red")
    assert {t.area_code for t in got} == {XIAXI_VILLAGE}
    no_phone = next(t for t in got if t.kind == "person" and t.needs)
    # Relay visit plus the village's board; 下西村 has no loudspeaker.
    assert no_phone.route == (("relay", "board"),) and no_phone.works


@pytestmark_db
async def test_city_code_covers_every_town(db, town):
    got = await targets(db, ["320481000000"], "red")
    assert DAIBEI_VILLAGE in {t.area_code for t in got}


@pytestmark_db
async def test_contacts_need_acknowledgement(db, town):
    got = await targets(db, ["320481116000"], "red")
    assert [t.role for t in got if t.ack_required] == ["village_contact"]


@pytestmark_db
async def test_plan_preview_shows_counts_and_the_gap(client, db, settings):
    world = await seed(db, settings)
    await population(db)
    w = await (await client.post("/api/v1/warnings", json=alert_json(severity="Severe"), headers=world.agency("QX"))).json()
    r = await client.get(f"/api/v1/warnings/{w['id']}/plan", headers=world.operator("duty1"))
    plan = await r.json()
    assert r.status == 200, plan
    assert plan["targets"] == 9 and plan["devices"] == 2 and plan["people"] == 7
    assert [t["count"] for t in plan["by_tier"]] == [2, 3, 1, 2, 1]
    assert plan["by_need"] == {"elderly_alone": 1, "no_phone": 2}
    assert [row["name"] for row in plan["by_town"]] == ["社渚镇"]
    assert plan["no_route_total"] == 1 and plan["no_route"][0]["name"] == "无手机无联络员"
    assert plan["no_route"][0]["area"] == "河口社区" and plan["no_route"][0]["needs"] == ["no_phone"]
    assert plan["sms"]["zh-CN"]["encoding"] == "UCS-2" and 1 <= plan["sms"]["zh-CN"]["parts"] <= 3
    assert "暴雨橙色预警" in plan["sms"]["zh-CN"]["text"]  # the level in words, not only colour
    assert plan["first_channel"]["sms"] == 5  # elderly, contact, two rural (one opted out: orange reaches all), urban
    agency = await client.get(f"/api/v1/warnings/{w['id']}/plan", headers=world.agency("QX"))
    assert agency.status == 403
