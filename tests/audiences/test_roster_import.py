"""Roster import: every row error (as a table), encodings, XLSX, dry runs, refusals,
--skip-invalid, re-import, relay contacts, the API endpoint and the CLI."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from tests.factories import TOWN_SHEZHU, VILLAGE_SHEZHU, seed
from warnpub.audiences.areas import liyang_csv, load_areas
from warnpub.audiences.importer import import_roster
from warnpub.audiences.needs import Need
from warnpub.audiences.roster import XLSX_TYPE, ImportReport
from warnpub.audiences.tables import Person
from warnpub.cli.main import main
from warnpub.problems import Problem
from warnpub.storage.tables import AuditEntry

pytestmark = pytest.mark.postgres

VILLAGE_XIAXI = "320481116201"  # 下西村
COMMUNITY_HEKOU = "320481116002"  # 河口社区
# Two synthetic villages of the same name in 社渚镇, for the ambiguity case.
TWIN_VILLAGES = (
    "code,name,level,parent_code,urban_rural,synthetic\n"
    "320481116290,新村,village,320481116,220,1\n"
    "320481116291,新村,village,320481116,220,1\n"
)
HEADER = "编号,姓名,手机号码,所属镇/街道,所属村/社区,身份,特殊人群类别,联络员,纬度,经度,退订,同意演练,电子邮箱"
BASE = [
    "C1,王联络,13900000001,社渚镇,社渚村,联络员",  # row 2
    "R1,张三,13800000001,社渚镇,社渚村,居民,独居老人,王联络",  # row 3
]
XLSX_HEADERS = {"Content-Type": XLSX_TYPE}
CSV_HEADERS = {"Content-Type": "text/csv"}


def roster(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def load(db, extra: str = TWIN_VILLAGES) -> None:
    async with db.session() as s:
        await load_areas(s, liyang_csv())
        await load_areas(s, extra)


@pytest.fixture
async def areas(db):
    await load(db)


@pytest.fixture
async def world(db, settings):
    w = await seed(db, settings)
    async with db.session() as s:
        await load_areas(s, TWIN_VILLAGES)
    return w


async def run(db, settings, data: bytes, filename: str = "roster.csv", **kw: Any) -> ImportReport:
    kw.setdefault("actor", "test")
    return await import_roster(db, settings, data, filename, **kw)


async def people(db) -> dict[str, Person]:
    async with db.session() as s:
        rows = (await s.execute(select(Person))).scalars().all()
    return {p.name: p for p in rows}


async def count(db, table) -> int:
    async with db.session() as s:
        return (await s.execute(select(func.count()).select_from(table))).scalar_one()


async def imports(db) -> list[AuditEntry]:
    async with db.session() as s:
        stmt = select(AuditEntry).where(AuditEntry.action == "audience.import")
        return list((await s.execute(stmt.order_by(AuditEntry.seq))).scalars())


# (description, the bad row (row 4, after BASE), column named in the error, message fragment)
ROW_ERRORS = [
    (
        "invalid phone number",
        "X1,李四,12345678,社渚镇,社渚村",
        "手机号码",
        "invalid phone number ****5678",
    ),
    (
        "unknown village code",
        "X1,李四,13800000002,,320481116999",
        "所属村/社区",
        "unknown village 320481116999",
    ),
    (
        "a town code given as village",
        "X1,李四,13800000002,,320481116000",
        "所属村/社区",
        "that is 社渚镇, not a village",
    ),
    (
        "unknown village name in its town",
        "X1,李四,13800000002,社渚镇,东风村",
        "所属村/社区",
        "unknown village '东风村' in 社渚镇 (320481116000)",
    ),
    (
        "village name without a town",
        "X1,李四,13800000002,,下西村",
        "所属村/社区",
        "unknown village '下西村': give its 12-digit code, or name its town",
    ),
    (
        "ambiguous village name",
        "X1,李四,13800000002,社渚镇,新村",
        "所属村/社区",
        "unknown village '新村': 2 villages in 社渚镇 (320481116000) have that name",
    ),
    (
        "village code outside the town given",
        "X1,李四,13800000002,戴埠镇,320481116200",
        "所属村/社区",
        "社渚村 is in 社渚镇 (320481116000), not in 戴埠镇",
    ),
    ("unknown town", "X1,李四,13800000002,西天镇,社渚村", "所属镇/街道", "unknown town '西天镇'"),
    ("empty village", "X1,李四,13800000002,社渚镇,", "所属村/社区", "village is empty"),
    ("empty name", "X1,,13800000002,社渚镇,社渚村", "姓名", "name is empty"),
    (
        "unknown need label",
        "X1,李四,13800000002,社渚镇,社渚村,居民,独居老人、盲",
        "特殊人群类别",
        "unknown need label '盲'; use 独居老人",
    ),
    (
        "unknown role",
        "X1,李四,13800000002,社渚镇,社渚村,村长",
        "身份",
        "unknown role '村长'",
    ),
    (
        "duplicate external id",
        "C1,李四,13800000002,社渚镇,社渚村",
        "编号",
        "duplicate of row 2",
    ),
    (
        "duplicate name and phone in one village",
        "X1,张三,13800000001,社渚镇,社渚村",
        "姓名",
        "duplicate of row 3",
    ),
    (
        "a phone number in the relay column stays masked",
        "X1,李四,13800000002,社渚镇,社渚村,居民,,13900000009",
        "联络员",
        "unknown relay contact '*******0009'",
    ),
    (
        "unknown relay contact",
        "X1,李四,13800000002,社渚镇,社渚村,居民,,赵六",
        "联络员",
        "unknown relay contact '赵六'",
    ),
    (
        "relay contact of another village",
        "X1,李四,13800000002,社渚镇,下西村,居民,,王联络",
        "联络员",
        "unknown relay contact '王联络'",
    ),
    (
        "relay contact who is not a village contact",
        "X1,李四,13800000002,社渚镇,社渚村,居民,,R1",
        "联络员",
        "(row 3) is a resident, not a village contact",
    ),
    (
        "own relay contact",
        "X1,李联络,13800000002,社渚镇,社渚村,联络员,,X1",
        "联络员",
        "cannot be their own relay contact",
    ),
    (
        "latitude out of range",
        "X1,李四,13800000002,社渚镇,社渚村,居民,,,95,119.4",
        "纬度",
        "latitude 95 is out of range",
    ),
    (
        "longitude out of range",
        "X1,李四,13800000002,社渚镇,社渚村,居民,,,31.4,181",
        "经度",
        "longitude 181 is out of range",
    ),
    (
        "latitude not a number",
        "X1,李四,13800000002,社渚镇,社渚村,居民,,,北纬31,119.4",
        "纬度",
        "latitude '北纬31' is not a number",
    ),
    (
        "latitude without longitude",
        "X1,李四,13800000002,社渚镇,社渚村,居民,,,31.4,",
        "经度",
        "give both 纬度 and 经度",
    ),
    (
        "yes/no not understood",
        "X1,李四,13800000002,社渚镇,社渚村,居民,,,,,也许",
        "退订",
        "'也许' is not yes or no",
    ),
    (
        "bad e-mail address",
        "X1,李四,13800000002,社渚镇,社渚村,居民,,,,,,,li@",
        "电子邮箱",
        "invalid e-mail address 'li@'",
    ),
]


@pytest.mark.parametrize(
    ("description", "row", "column", "message"), ROW_ERRORS, ids=[c[0] for c in ROW_ERRORS]
)
async def test_each_row_error_is_reported_and_nothing_is_written(
    db, settings, areas, description, row, column, message
):
    report = await run(db, settings, roster(*BASE, row))
    assert [(e.row, e.column) for e in report.errors] == [(4, column)], report.errors
    assert message in report.errors[0].message, report.errors[0].message
    assert report.blocked and report.outcome == "rejected" and not report.written
    assert report.rows_read == 3 and report.valid == 2
    assert "13800000002" not in report.errors[0].message  # phone numbers never unmasked
    assert await count(db, Person) == 0 and await imports(db) == []


async def test_valid_roster_stores_every_field(db, settings, areas):
    rows = [
        *BASE,
        "R2,李四,138 0000 0002,社渚镇,下西村,村民,听障，视障/行动不便,,31.43,119.48,是,否,li@example.cn",
        f"R3,赵五,+86 139-0000-0003,,{COMMUNITY_HEKOU},,无,,,,no,1,",
        "R4,孙六,,社渚镇,社渚村,居民,无手机,C1",
    ]
    report = await run(db, settings, roster(*rows), actor="operator:duty1")
    assert report.errors == [] and report.outcome == "imported" and report.written
    assert (report.rows_read, report.valid, report.to_create) == (5, 5, 5)
    got = await people(db)
    li, zhao, sun, zhang, wang = (got[n] for n in ("李四", "赵五", "孙六", "张三", "王联络"))
    assert li.phone == "+8613800000002" and li.area_code == VILLAGE_XIAXI
    assert li.needs == Need.HEARING_IMPAIRED | Need.VISUALLY_IMPAIRED | Need.LIMITED_MOBILITY
    assert (li.lat, li.lon, li.opt_out, li.drill_consent) == (31.43, 119.48, True, False)
    assert li.email == "li@example.cn" and li.role == "resident" and li.relay_contact_id is None
    assert zhao.area_code == COMMUNITY_HEKOU and zhao.needs == 0 and zhao.drill_consent
    assert sun.phone is None and sun.needs == Need.NO_PHONE
    assert wang.role == "village_contact" and wang.external_id == "C1"
    assert zhang.needs == Need.ELDERLY_ALONE
    assert zhang.relay_contact_id == wang.id and sun.relay_contact_id == wang.id  # name, id
    (entry,) = await imports(db)
    assert entry.actor == "operator:duty1" and entry.subject == "roster.csv"
    assert entry.details["created"] == 5 and entry.details["rows_read"] == 5
    assert "138" not in str(entry.details)


async def test_chinese_headers_in_other_spellings_and_unknown_columns(db, settings, areas):
    header = "姓名,手机,村（社区）,镇(街道),身份证号,家庭住址"
    report = await run(
        db, settings, roster("李四,13800000002,社渚村,社渚镇,320481...,某路1号", header=header)
    )
    assert report.errors == [] and report.to_create == 1
    assert report.ignored_columns == ["身份证号", "家庭住址"]


async def test_missing_required_columns_is_one_clear_error(db, settings, areas):
    with pytest.raises(Problem) as refused:
        await run(db, settings, roster("李四,13800000002", header="姓名,手机号码"))
    assert refused.value.status == 422
    assert "no column for village" in refused.value.detail and "所属村/社区" in refused.value.detail
    assert await count(db, Person) == 0


@pytest.mark.parametrize("encoding", ["gb18030", "utf-8-sig", "utf-8"])
async def test_csv_encodings(db, settings, areas, encoding):
    text = "\n".join([HEADER, *BASE]) + "\n"
    report = await run(db, settings, text.encode(encoding))
    assert report.errors == [] and report.to_create == 2
    assert set(await people(db)) == {"王联络", "张三"}


async def test_unreadable_files_are_refused(db, settings, areas):
    with pytest.raises(Problem) as xls:
        await run(db, settings, b"\xd0\xcf\x11\xe0" + b"\0" * 100, "old.xls")
    assert "save it as .xlsx" in xls.value.detail
    with pytest.raises(Problem) as binary:
        await run(db, settings, b"\x81\x30\xff\xfe\x00\x80" * 10)
    assert "neither UTF-8 nor GB18030" in binary.value.detail


async def test_xlsx_with_title_row_and_numeric_cells(db, settings, areas):
    data = xlsx(
        [
            ["社渚镇特殊人群花名册"],  # a title row above the header
            ["编号", "姓名", "手机号码", "所属村/社区", "特殊人群类别", "联络员", "身份"],
            ["C1", "王联络", 13900000001, int(VILLAGE_SHEZHU), None, None, "网格员"],
            [1002, "张三", 13800000001, int(VILLAGE_SHEZHU), "独居老人", "王联络"],
            [],
            [1003, "李四", 12345, int(VILLAGE_SHEZHU)],  # row 6, as Excel shows it
        ]
    )
    report = await run(db, settings, data, "花名册.xlsx")
    assert [(e.row, e.column) for e in report.errors] == [(6, "手机号码")]
    assert "invalid phone number *2345" in report.errors[0].message
    report = await run(db, settings, data, "花名册.xlsx", skip_invalid=True)
    assert report.written and report.to_create == 2 and report.filename == "花名册.xlsx"
    got = await people(db)
    assert got["张三"].external_id == "1002" and got["张三"].phone == "+8613800000001"
    assert got["张三"].relay_contact_id == got["王联络"].id


async def test_dry_run_writes_nothing(db, settings, areas):
    report = await run(db, settings, roster(*BASE), dry_run=True)
    assert report.outcome == "dry_run" and report.to_create == 2 and not report.written
    assert await count(db, Person) == 0 and await imports(db) == []


async def test_skip_invalid_imports_the_valid_rows(db, settings, areas):
    rows = [*BASE, "X1,李四,123,社渚镇,社渚村", "X2,赵五,13800000005,社渚镇,东风村"]
    report = await run(db, settings, roster(*rows), skip_invalid=True)
    assert report.outcome == "imported" and report.bad_rows == [4, 5]
    assert report.as_dict()["skipped_rows"] == [4, 5] and report.to_create == 2
    assert set(await people(db)) == {"王联络", "张三"}
    (entry,) = await imports(db)
    assert entry.details["skipped_rows"] == 2


async def test_relay_contact_on_a_bad_row_is_named(db, settings, areas):
    rows = ["C1,王联络,139,社渚镇,社渚村,联络员", "R1,张三,13800000001,社渚镇,社渚村,居民,,王联络"]
    report = await run(db, settings, roster(*rows), skip_invalid=True)
    assert [(e.row, e.column) for e in report.errors] == [(2, "手机号码"), (3, "联络员")]
    assert "is on row 2, which has errors" in report.errors[1].message
    assert await count(db, Person) == 0


async def test_every_error_of_a_row_is_reported_at_once(db, settings, areas):
    report = await run(db, settings, roster(*BASE, "X1,李四,123,社渚镇,社渚村,居民,盲,赵六"))
    assert [(e.row, e.column) for e in report.errors] == [
        (4, "手机号码"),
        (4, "特殊人群类别"),
        (4, "联络员"),
    ]


async def test_reimport_updates_instead_of_duplicating(db, settings, areas):
    rows = [*BASE, "R2,李四,13800000002,社渚镇,下西村", ",赵五,13800000005,社渚镇,下西村"]
    first = await run(db, settings, roster(*rows))
    assert first.to_create == 4
    before = await people(db)
    changed = [
        *BASE,
        "R2,李四,13800000022,社渚镇,下西村",  # new phone, matched by external id
        ",赵五,13800000005,社渚镇,下西村,,听障",  # no external id: name + phone + village
    ]
    report = await run(db, settings, roster(*changed))
    assert (report.to_create, report.to_update, report.unchanged) == (0, 2, 2)
    after = await people(db)
    assert len(after) == 4 and await count(db, Person) == 4
    assert after["李四"].id == before["李四"].id and after["李四"].phone == "+8613800000022"
    assert after["赵五"].id == before["赵五"].id and after["赵五"].needs == Need.HEARING_IMPAIRED
    again = await run(db, settings, roster(*changed))
    assert (again.to_create, again.to_update, again.unchanged) == (0, 0, 4)
    assert [e.details["updated"] for e in await imports(db)] == [0, 2, 0]


async def test_reimport_gives_an_external_id_and_keeps_columns_not_in_the_file(db, settings, areas):
    await run(db, settings, roster(",李四,13800000002,社渚镇,下西村,居民,听障"))
    header = "编号,姓名,手机号码,所属镇/街道,所属村/社区"
    report = await run(db, settings, roster("R2,李四,13800000002,社渚镇,下西村", header=header))
    assert report.to_update == 1 and report.to_create == 0
    li = (await people(db))["李四"]
    assert li.external_id == "R2" and li.needs == Need.HEARING_IMPAIRED  # needs not in the file


async def test_relay_contacts_already_stored_by_name_and_by_external_id(db, settings, areas):
    await run(db, settings, roster(BASE[0]))
    rows = [
        "R1,张三,13800000001,社渚镇,社渚村,居民,,王联络",
        "R2,李四,13800000002,社渚镇,社渚村,居民,,C1",
        "R3,赵五,13800000003,社渚镇,下西村,居民,,C1",  # by id, also across villages
    ]
    report = await run(db, settings, roster(*rows))
    assert report.errors == [] and report.to_create == 3
    got = await people(db)
    contact = got["王联络"].id
    assert {got[n].relay_contact_id for n in ("张三", "李四", "赵五")} == {contact}


async def test_default_town_for_village_names(db, settings, areas):
    header = "姓名,手机号码,所属村/社区"
    report = await run(
        db, settings, roster("李四,13800000002,下西村", header=header), default_town="社渚镇"
    )
    assert report.errors == [] and (await people(db))["李四"].area_code == VILLAGE_XIAXI
    with pytest.raises(Problem) as refused:
        await run(db, settings, roster("李四,,下西村", header=header), default_town="320481999")
    assert refused.value.status == 422 and "unknown town 320481999" in refused.value.detail


async def test_twenty_thousand_rows(db, settings, areas):
    villages = [VILLAGE_SHEZHU, VILLAGE_XIAXI, COMMUNITY_HEKOU]
    rows = [f"C{v},联络员{v[-3:]},1390000{i:04d},,{v},联络员" for i, v in enumerate(villages)]
    rows += [
        f"P{i},居民{i},138{i:08d},,{villages[i % 3]},居民,"
        f"{'独居老人' if i % 20 == 0 else ''},{'联络员' + villages[i % 3][-3:] if i % 2 else ''}"
        for i in range(20_000 - len(rows))
    ]
    seen: list[tuple[int, int]] = []
    report = await run(db, settings, roster(*rows), progress=lambda d, t: seen.append((d, t)))
    assert report.errors == [] and report.to_create == 20_000 and report.written
    assert seen[-1] == (40_000, 40_000) and seen == sorted(seen)
    assert await count(db, Person) == 20_000
    async with db.session() as s:
        relayed = await s.execute(
            select(func.count()).select_from(Person).where(Person.relay_contact_id.is_not(None))
        )
        elderly = await s.execute(
            select(func.count()).select_from(Person).where(Person.needs == Need.ELDERLY_ALONE)
        )
    assert relayed.scalar_one() == 9_998 and elderly.scalar_one() == 1_000
    again = await run(db, settings, roster(*rows), dry_run=True)
    assert again.unchanged == 20_000 and again.to_create == again.to_update == 0


# ---------------------------------------------------------------------------- API


async def test_api_dry_run_answers_the_report(client, db, world):
    r = await client.post(
        "/api/v1/audience/import?dry_run=1",
        data=roster(*BASE, header=HEADER + ",家庭住址"),
        headers={**world.operator("duty1"), **CSV_HEADERS, "X-Filename": "%E8%8A%B1.csv"},
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["outcome"] == "dry_run" and body["to_create"] == 2 and body["written"] is False
    assert body["filename"] == "花.csv" and body["ignored_columns"] == ["家庭住址"]
    assert await count(db, Person) == 0


async def test_api_imports_xlsx(client, db, world):
    data = xlsx([["姓名", "手机号码", "所属村/社区"], ["李四", 13800000002, VILLAGE_SHEZHU]])
    r = await client.post(
        "/api/v1/audience/import",
        data=data,
        headers={**world.operator("chief"), **XLSX_HEADERS},
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["outcome"] == "imported"
    (entry,) = await imports(db)
    assert entry.actor == "operator:chief" and entry.subject == "roster.xlsx"


async def test_api_rows_with_errors_are_a_422_naming_row_and_column(client, db, world):
    r = await client.post(
        "/api/v1/audience/import",
        data=roster(*BASE, "X1,李四,12345678,社渚镇,社渚村"),
        headers={**world.operator("duty1"), **CSV_HEADERS},
    )
    assert r.status == 422 and r.headers["Content-Type"].startswith("application/problem+json")
    body = await r.json()
    assert body["errors"][0]["field"] == "row 4: 手机号码"
    assert "invalid phone number ****5678" in body["errors"][0]["message"]
    assert body["report"]["outcome"] == "rejected" and body["report"]["valid"] == 2
    assert "skip_invalid=1" in body["detail"] and await count(db, Person) == 0
    skipped = await client.post(
        "/api/v1/audience/import?skip_invalid=1",
        data=roster(*BASE, "X1,李四,12345678,社渚镇,社渚村"),
        headers={**world.operator("duty1"), **CSV_HEADERS},
    )
    assert skipped.status == 200 and (await skipped.json())["skipped_rows"] == [4]
    assert await count(db, Person) == 2


async def test_api_refusals(client, db, world):
    url = "/api/v1/audience/import"
    agency = await client.post(
        url, data=roster(*BASE), headers={**world.agency("QX"), **CSV_HEADERS}
    )
    assert agency.status == 403
    nobody = await client.post(url, data=roster(*BASE), headers=CSV_HEADERS)
    assert nobody.status == 401
    as_json = await client.post(url, json={"rows": []}, headers=world.operator("duty1"))
    assert as_json.status == 415 and "text/csv" in (await as_json.json())["detail"]
    bad_flag = await client.post(
        url + "?dry_run=maybe",
        data=roster(*BASE),
        headers={**world.operator("duty1"), **CSV_HEADERS},
    )
    assert bad_flag.status == 422
    bad_town = await client.post(
        url + "?town=西天镇", data=roster(*BASE), headers={**world.operator("duty1"), **CSV_HEADERS}
    )
    assert bad_town.status == 422 and (await bad_town.json())["errors"][0]["field"] == "town"
    assert await count(db, Person) == 0


async def test_api_route_is_described(client):
    spec = await (await client.get("/api/v1/openapi.json")).json()
    op = spec["paths"]["/api/v1/audience/import"]["post"]
    assert set(op["requestBody"]["content"]) == {"text/csv", XLSX_TYPE}
    assert {"401", "403", "422"} <= set(op["responses"])


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_env(monkeypatch, settings):
    monkeypatch.delenv("WARNPUB_CONFIG", raising=False)
    monkeypatch.setenv("WARNPUB_DATABASE_URL", settings.database.url)
    monkeypatch.setenv("WARNPUB_DATABASE_SCHEMA_NAME", settings.database.schema_name)


async def cli(*args: str) -> int:
    # main() runs its own event loop, so it runs in a thread of its own here.
    return await asyncio.to_thread(main, ["audience", "import", *args])


async def test_cli_refuses_a_file_with_errors_with_exit_2(db, areas, cli_env, tmp_path, capsys):
    path = tmp_path / "社渚村.csv"
    path.write_bytes(roster(*BASE, "X1,李四,12345678,社渚镇,社渚村").decode().encode("gb18030"))
    assert await cli(str(path)) == 2
    out = capsys.readouterr().out
    assert (
        "row  column" in out and "4    手机号码" in out and "invalid phone number ****5678" in out
    )
    assert "3 rows read, 2 valid, 1 with errors" in out and "NOT IMPORTED" in out
    assert "--skip-invalid" in out and "12345678" not in out
    assert await count(db, Person) == 0


async def test_cli_dry_run_then_import_then_skip_invalid(db, areas, cli_env, tmp_path, capsys):
    path = tmp_path / "roster.csv"
    path.write_bytes(roster(*BASE))
    assert await cli(str(path), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would create 2" in out and "dry run: nothing was written" in out
    assert await count(db, Person) == 0
    assert await cli(str(path)) == 0
    out = capsys.readouterr().out
    assert "create 2, update 0, unchanged 0" in out and out.rstrip().endswith("imported")
    path.write_bytes(roster(*BASE, "X1,李四,123,社渚镇,社渚村"))
    assert await cli(str(path), "--skip-invalid") == 0
    out = capsys.readouterr().out
    assert "unchanged 2" in out and "imported; skipped rows: 4" in out
    assert await count(db, Person) == 2


async def test_cli_town_option_and_bad_town(db, areas, cli_env, tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_bytes(roster("李四,13800000002,下西村", header="姓名,手机号码,所属村/社区"))
    assert await cli(str(path), "--town", TOWN_SHEZHU) == 0
    assert (await people(db))["李四"].area_code == VILLAGE_XIAXI
    assert await cli(str(path), "--town", "320481999000") == 2
    assert "unknown town 320481999000" in capsys.readouterr().err
    assert await cli(str(tmp_path / "missing.csv")) == 2
    assert "cannot read" in capsys.readouterr().err


async def test_cli_progress_bar_on_stderr_for_large_files(db, areas, cli_env, tmp_path, capsys):
    rows = [f"P{i},居民{i},138{i:08d},,{VILLAGE_SHEZHU}" for i in range(2_500)]
    path = tmp_path / "big.csv"
    path.write_bytes(roster(*rows, header="编号,姓名,手机号码,所属镇/街道,所属村/社区"))
    assert await cli(str(path)) == 0
    captured = capsys.readouterr()
    assert "big.csv (2500 rows)" in captured.err and "%|" in captured.err
    assert "%|" not in captured.out and "create 2500" in captured.out


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["audience", "import", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "--skip-invalid" in out and "--town" in out
