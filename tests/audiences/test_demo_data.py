"""Demo data: determinism, realistic shares, valid phones, geometry, contacts, devices, --replace."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter, defaultdict

import phonenumbers
import pytest
from shapely.geometry import Point, shape
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from warnpub.audiences.areas import liyang_csv, load_areas
from warnpub.audiences.demo_data import (
    PEOPLE_PER_CONTACT,
    SHARES,
    DemoOptions,
    Households,
    Town,
    generate,
    households,
    liyang_towns,
    plan_units,
    populations,
    resident_rows,
    staff_rows,
)
from warnpub.audiences.geometry import codes_for_shapes
from warnpub.audiences.needs import Need
from warnpub.audiences.tables import Area, Device, Person
from warnpub.cap.model import Circle
from warnpub.cli.main import main
from warnpub.problems import Problem

N = 3000


def _liyang_towns() -> list[Town]:
    rows = csv.DictReader(io.StringIO(liyang_csv()))
    return [
        Town(r["code"].ljust(12, "0"), r["name"], r["level"])
        for r in rows
        if r["parent_code"] == "320481" and r["level"] in ("town", "subdistrict")
    ]


TOWNS = _liyang_towns()
REAL_CODES = {row["code"].ljust(12, "0") for row in csv.DictReader(io.StringIO(liyang_csv()))}


async def make(db, people: int = N, **options) -> object:
    async with db.session() as s:
        return await generate(s, DemoOptions(people=people, **options))


async def snapshot(db) -> list[tuple]:
    """Every demo person as content (ids replaced by the relay contact's external id)."""
    contact = aliased(Person)
    async with db.session() as s:
        rows = await s.execute(
            select(
                Person.external_id, Person.name, Person.area_code, Person.role, Person.phone,
                Person.email, Person.language, Person.needs, Person.lat, Person.lon,
                Person.opt_out, Person.drill_consent, contact.external_id,
            )
            .outerjoin(contact, contact.id == Person.relay_contact_id)
            .order_by(Person.external_id)
        )  # fmt: skip
        return [tuple(r) for r in rows]


async def demo_people(db) -> list[Person]:
    async with db.session() as s:
        return list((await s.execute(select(Person).order_by(Person.id))).scalars())


async def synthetic_areas(db) -> dict[str, Area]:
    async with db.session() as s:
        rows = await s.execute(select(Area).where(Area.synthetic.is_(True)))
        return {a.code: a for a in rows.scalars()}


def within(observed: int, n: int, share: float, sigmas: float = 4.0) -> bool:
    """``observed`` out of ``n`` is within ``sigmas`` binomial standard deviations of ``share``."""
    sd = math.sqrt(n * share * (1 - share))
    return abs(observed - n * share) <= sigmas * sd + 1


pg = pytest.mark.postgres  # these tests run on PostgreSQL as well


@pg
async def test_the_same_seed_gives_the_same_people_and_another_seed_does_not(db):
    await make(db, seed=7)
    first = await snapshot(db)
    await make(db, seed=7, replace=True)
    assert await snapshot(db) == first
    await make(db, seed=8, replace=True)
    other = await snapshot(db)
    assert len(other) == len(first) == N
    assert other != first


@pg
async def test_shares_are_realistic(db):
    summary = await make(db)
    people = await demo_people(db)
    assert len(people) == summary.people == N
    areas = await synthetic_areas(db)
    residents = [p for p in people if p.role == "resident"]
    n = len(residents)

    def count(need: Need) -> int:
        return sum(1 for p in residents if p.needs & need)

    assert within(count(Need.ELDERLY_ALONE), n, SHARES.elderly_alone)
    assert within(count(Need.HEARING_IMPAIRED), n, SHARES.hearing_impaired)
    assert within(count(Need.VISUALLY_IMPAIRED), n, SHARES.visually_impaired)
    assert within(count(Need.NO_PHONE), n, SHARES.no_phone)
    assert within(count(Need.LIMITED_MOBILITY), n, SHARES.limited_mobility)
    assert within(count(Need.NON_CHINESE_SPEAKER), n, SHARES.non_chinese_speaker)
    assert within(sum(p.opt_out for p in residents), n, SHARES.opt_out)
    assert within(sum(p.drill_consent for p in residents), n, SHARES.drill_consent)
    with_phone = [p for p in residents if p.phone]
    assert within(sum(1 for p in with_phone if p.email), len(with_phone), SHARES.email)
    rural = sum(1 for p in people if areas[p.area_code].urban_rural in ("210", "220"))
    assert rural == round(N * SHARES.rural)  # allocated exactly: mostly rural
    # Needs come without a phone number exactly when the person has none.
    assert all((p.phone is None) == bool(p.needs & Need.NO_PHONE) for p in people)
    assert all(p.language == ("en" if p.needs & Need.NON_CHINESE_SPEAKER else "zh-CN") for p in people)  # fmt: skip
    # The summary counts what was written.
    assert summary.needs["no_phone"] == count(Need.NO_PHONE)
    assert summary.special_needs == sum(1 for p in people if p.needs)
    assert summary.village_contacts == sum(1 for p in people if p.role == "village_contact")
    assert (
        summary.special_needs + summary.village_contacts + summary.duty_officers
        + summary.rural_residents + summary.urban_residents
    ) == N  # fmt: skip


def test_shares_converge_on_a_large_population():
    """100,000 people generated in memory (no database): every share within 4 standard deviations."""
    units = plan_units(TOWNS, set(REAL_CODES), 16, seed=3)
    plans = households(units, populations(units, 100_000, seed=3))
    rows = [
        row for h in plans for row in resident_rows(h, list(range(h.contacts)), seed=3, now=None)
    ]
    n = len(rows)
    needs = Counter()
    for row in rows:
        for need in Need:
            if row[7] & need:
                needs[need] += 1
    assert 0.06 <= needs[Need.ELDERLY_ALONE] / n <= 0.08
    for need, share in (
        (Need.HEARING_IMPAIRED, SHARES.hearing_impaired),
        (Need.VISUALLY_IMPAIRED, SHARES.visually_impaired),
        (Need.NO_PHONE, SHARES.no_phone),
        (Need.LIMITED_MOBILITY, SHARES.limited_mobility),
        (Need.NON_CHINESE_SPEAKER, SHARES.non_chinese_speaker),
    ):
        assert within(needs[need], n, share), need
    combined = sum(1 for row in rows if bin(row[7]).count("1") > 1)
    assert combined > 0  # needs combine


@pg
async def test_every_phone_is_a_valid_unique_cn_mobile_in_e164(db):
    await make(db)
    phones = [p.phone for p in await demo_people(db) if p.phone]
    assert len(phones) == len(set(phones)) > 0.95 * N
    for phone in phones:
        number = phonenumbers.parse(phone, None)
        assert phonenumbers.is_valid_number(number), phone
        assert phonenumbers.region_code_for_number(number) == "CN"
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == phone
        assert phone.startswith("+861700")


@pg
async def test_everyone_lives_inside_the_polygon_of_a_synthetic_village(db):
    await make(db)
    areas = await synthetic_areas(db)
    polygons = {code: shape(area.geometry) for code, area in areas.items()}
    for person in await demo_people(db):
        assert person.area_code in areas
        assert polygons[person.area_code].contains(Point(person.lon, person.lat)), person
    async with db.session() as s:
        real = (await s.execute(select(Area).where(Area.synthetic.is_(False)))).scalars().all()
    assert {a.code for a in real} == REAL_CODES  # loaded from liyang_csv into the empty table
    assert all(a.geometry is None for a in real)


@pg
async def test_synthetic_areas_are_marked_coded_and_classed(db):
    await make(db, villages_per_town=10)
    areas = await synthetic_areas(db)
    towns = {a.code: a for a in await _towns(db)}
    assert len(areas) == 10 * len(towns) == 120
    assert not set(areas) & REAL_CODES
    for code, area in areas.items():
        assert area.parent_code in towns and code.startswith(area.parent_code[:9])
        segment = int(code[9:])
        town = towns[area.parent_code]
        assert "合成" in area.name
        if area.level == "community":
            assert 101 <= segment <= 199
            expected = {"111", "112"} if town.level == "subdistrict" else {"121", "122"}
            assert area.urban_rural in expected, (town.name, area.name, area.urban_rural)
        else:
            assert area.level == "village" and 301 <= segment <= 399
            assert area.urban_rural in ("210", "220")
    rural = sum(1 for a in areas.values() if a.urban_rural in ("210", "220"))
    assert rural > len(areas) / 2  # mostly rural


async def _towns(db) -> list[Area]:
    async with db.session() as s:
        return [await s.get(Area, t.code) for t in await liyang_towns(s)]


@pg
async def test_one_contact_per_about_150_people_relaying_in_their_own_village(db):
    await make(db, villages_per_town=2)  # 24 units of about 125 people
    people = await demo_people(db)
    by_id = {p.id: p for p in people}
    per_village = defaultdict(list)
    for p in people:
        per_village[p.area_code].append(p)
    for code, villagers in per_village.items():
        contacts = [p for p in villagers if p.role == "village_contact"]
        others = sum(1 for p in villagers if p.role != "town_duty_officer")
        assert len(contacts) == max(1, round(others / PEOPLE_PER_CONTACT)), code
        assert all(p.phone and not p.needs and not p.opt_out for p in contacts)
        for p in villagers:
            if p.role == "resident":
                relay = by_id[p.relay_contact_id]
                assert relay.role == "village_contact" and relay.area_code == code
            else:
                assert p.relay_contact_id is None
    contacts = sum(1 for p in people if p.role == "village_contact")
    assert 100 <= N / contacts <= 160
    officers = [p for p in people if p.role == "town_duty_officer"]
    assert len(officers) == 12 and len({p.area_code[:9] for p in officers}) == 12
    assert all(p.phone and p.email for p in officers)


@pg
async def test_each_village_has_a_loudspeaker_and_a_board_inside_it(db):
    summary = await make(db)
    areas = await synthetic_areas(db)
    async with db.session() as s:
        devices = (await s.execute(select(Device))).scalars().all()
    kinds = defaultdict(list)
    for d in devices:
        kinds[d.area_code].append(d)
        assert shape(areas[d.area_code].geometry).contains(Point(d.lon, d.lat))
    assert set(kinds) == set(areas)
    for code, installed in kinds.items():
        by_kind = {d.kind: d for d in installed}
        assert len(installed) == 2 and "speaker_group" in by_kind, code
        assert by_kind["speaker_group"].address == f"warnpub/speakers/{code}"
        (board,) = [d for d in installed if d.kind != "speaker_group"]
        assert board.kind in ("board_digital", "board_paper") and board.address == f"board-{code}"
    digital = sum(1 for d in devices if d.kind == "board_digital")
    assert within(digital, len(areas), SHARES.digital_board)
    assert (summary.speakers, summary.digital_boards) == (len(areas), digital)


@pg
async def test_a_second_run_is_refused_without_replace_and_changes_nothing(db):
    await make(db)
    before = await snapshot(db)
    with pytest.raises(Problem) as refused:
        await make(db, people=10)
    assert refused.value.status == 409 and "--replace" in refused.value.detail
    assert await snapshot(db) == before


@pg
async def test_replace_deletes_only_demo_data(db):
    await make(db)
    async with db.session() as s:
        contact = await s.scalar(select(Person.id).where(Person.role == "village_contact").limit(1))
        s.add(Person(name="真实村民", area_code="320481116200", relay_contact_id=contact,
                     external_id="roster-1"))  # fmt: skip
    summary = await make(db, people=500, replace=True, villages_per_town=4)
    assert summary.replaced and summary.people == 500
    async with db.session() as s:
        kept = await s.scalar(select(Person).where(Person.external_id == "roster-1"))
        assert kept is not None and kept.relay_contact_id is None
        assert await s.scalar(select(func.count()).select_from(Person)) == 501
        assert await s.scalar(select(func.count()).select_from(Device)) == 4 * 12 * 2
        synthetic = await s.scalar(
            select(func.count()).select_from(Area).where(Area.synthetic.is_(True))
        )
        assert synthetic == 4 * 12
        real = await s.scalar(
            select(func.count()).select_from(Area).where(Area.synthetic.is_(False))
        )
        assert real == len(REAL_CODES)


@pg
async def test_a_tree_without_liyang_is_refused(db):
    async with db.session() as s:
        await load_areas(s, "code,name,level,parent_code\n32,江苏省,province,\n")
    with pytest.raises(Problem, match="no towns under 320481000000"):
        await make(db)


@pg
async def test_bad_options_are_refused(db):
    for options in ({"people": 0}, {"people": 10, "villages_per_town": 1},
                    {"people": 10, "villages_per_town": 100}):  # fmt: skip
        with pytest.raises(Problem) as refused:
            async with db.session() as s:
                await generate(s, DemoOptions(**options))
        assert refused.value.status == 422


@pg
async def test_circles_over_the_demo_reach_its_villages(db):
    await make(db)
    areas = await synthetic_areas(db)
    code, area = sorted(areas.items())[0]
    centre = shape(area.geometry).centroid
    async with db.session() as s:
        hit = await codes_for_shapes(s, [], [Circle(lat=centre.y, lon=centre.x, radius_km=0.5)])
        everything = await codes_for_shapes(s, [], [Circle(lat=31.45, lon=119.35, radius_km=60)])
    assert hit == [code]
    assert everything == sorted(areas)


def test_staff_come_first_in_a_household():
    (town, *_) = [t for t in TOWNS if t.level == "town"]
    (seat, *_) = plan_units([town], set(), 4, seed=1)
    h = Households(seat, start=100, size=400, officer=True, contacts=3)
    staff = staff_rows(h, seed=1, now=None)
    assert [row[3] for row in staff] == ["town_duty_officer"] + ["village_contact"] * 3
    assert [row[0] for row in staff] == [f"demo-{i:07d}" for i in range(100, 104)]
    residents = list(resident_rows(h, [1, 2, 3], seed=1, now=None))
    assert len(residents) == 396 and residents[0][0] == "demo-0000104"


# --- the command ----------------------------------------------------------------------------


def test_demo_data_command(settings, monkeypatch, capsys):
    monkeypatch.setenv("WARNPUB_DATABASE_URL", settings.database.url)
    assert main(["demo-data", "--people", "800", "--seed", "5", "--villages-per-town", "3"]) == 0
    out = capsys.readouterr().out
    assert "36 synthetic units under 12 towns" in out and "people: 800" in out
    assert "loudspeaker groups" in out and "took" in out
    assert main(["demo-data", "--people", "800"]) == 2
    assert "--replace" in capsys.readouterr().err
    assert main(["demo-data", "--people", "900", "--replace"]) == 0
    assert "replaced earlier demo data" in capsys.readouterr().out
    assert main(["demo-data", "--people", "0", "--replace"]) == 2
    assert "--people must be between 1" in capsys.readouterr().err
