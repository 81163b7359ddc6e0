"""Property tests of roster import (warnpub.audiences.roster / importer).

- Arbitrary bytes as a roster file, and rosters of generated rows (cells from a mix of good
  values, near misses, junk, formula-like text, huge cells, control characters), never raise
  anything but the importer's own 422 Problem (a file that cannot be read at all).
- Every data row is accounted for: it is a person, or it has at least one error naming its row
  number, a column of the file and a reason; a row with an error never becomes a person.
- Over the database: a roster with any bad row imports nothing (no person, no audit entry);
  with ``skip_invalid`` exactly the valid rows are written; a dry run writes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.security.hypothesis_setup import examples
from warnpub.audiences.areas import liyang_csv, load_areas, parse_areas_csv
from warnpub.audiences.importer import import_roster
from warnpub.audiences.roster import AreaIndex, parse_roster
from warnpub.audiences.tables import Person
from warnpub.config import Settings, load_settings
from warnpub.problems import Problem
from warnpub.storage.engine import Database
from warnpub.storage.tables import AuditEntry

# Hypothesis warns when it prints an example holding a 20 000-character cell: expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
HEADER = [
    "编号",
    "姓名",
    "手机号码",
    "所属镇/街道",
    "所属村/社区",
    "身份",
    "特殊人群类别",
    "纬度",
    "经度",
]
CONFIG = load_settings(environ={}).audiences
AREAS = AreaIndex((a.code, a.name, a.parent_code) for a in parse_areas_csv(liyang_csv()))

GOOD = {
    "编号": st.from_regex(r"R[0-9]{1,6}", fullmatch=True),
    "姓名": st.sampled_from(["张三", "李四", "王五", "Zhao Liu", "赵 六"]),
    "手机号码": st.sampled_from(["13800000001", "+8613900000002", "", "0519-87654321"]),
    "所属镇/街道": st.sampled_from(["社渚镇", "320481116000", "", "戴埠镇"]),
    "所属村/社区": st.sampled_from(["社渚村", "320481116200", "下西村", "河口社区"]),
    "身份": st.sampled_from(["居民", "联络员", "", "resident"]),
    "特殊人群类别": st.sampled_from(["", "独居老人", "独居老人、听障", "无"]),
    "纬度": st.sampled_from(["", "31.4", "-91", "x"]),
    "经度": st.sampled_from(["", "119.4", "181", "1e3"]),
}
JUNK = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30),
    st.sampled_from(['=HYPERLINK("http://x")', "+1+1", "@SUM(A1)", "\x00", "\u202e", "NaN"]),
    st.sampled_from(["'", '"', ",", "\r\n", "\t"]),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True).map(str),
    st.just("x" * 20_000),  # a huge cell: its error message must stay short and quick
    st.just("1" * 5_000),
)


@st.composite
def rows(draw: st.DrawFn) -> list[list[str]]:
    out = []
    for _ in range(draw(st.integers(0, 12))):
        row = [draw(st.one_of(GOOD[column], GOOD[column], JUNK)) for column in HEADER]
        if draw(st.integers(0, 9)) == 0:
            row = row[: draw(st.integers(0, len(row)))]  # a short row
        out.append(row)
    return out


def as_csv(body: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(body)
    return out.getvalue().encode("utf-8")


def checked(data: bytes) -> Any:
    try:
        return parse_roster(data, "roster.csv", CONFIG, AREAS)
    except Problem as problem:
        assert problem.status == 422 and problem.detail.strip(), problem
        return None


@examples(300)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_are_read_or_refused(data: bytes) -> None:
    checked(data)


@examples(150)
@given(rows())
def test_every_row_is_a_person_or_has_clear_errors(body: list[list[str]]) -> None:
    started = time.perf_counter()
    parsed = checked(as_csv(body))
    assert time.perf_counter() - started < 5  # huge cells are not a quadratic trap
    if parsed is None:
        return
    row_numbers = {p.row for p in parsed.people} | {p.row for p in parsed.rejected}
    assert len(parsed.people) + len(parsed.rejected) == parsed.rows_read
    assert len(row_numbers) == parsed.rows_read
    bad_rows = {e.row for e in parsed.errors}
    assert bad_rows == {p.row for p in parsed.rejected}
    assert not bad_rows & {p.row for p in parsed.people}
    for error in parsed.errors:
        assert error.row in row_numbers
        assert error.column in HEADER, error
        assert error.message.strip() and len(error.message) <= 1000, error
    for person in parsed.people:
        assert person.name.strip() and len(person.area_code) == 12


@examples(100)
@given(
    st.lists(st.sampled_from([*HEADER, "备注", "", "姓名"]), min_size=1, max_size=8),
    rows(),
)
def test_any_header_is_read_or_refused(header: list[str], body: list[list[str]]) -> None:
    checked(as_csv(body, header))


# --- over the database --------------------------------------------------------------------------


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _counts(db: Database) -> tuple[int, int]:
    async with db.session() as s:
        people = (await s.execute(select(func.count()).select_from(Person))).scalar_one()
        audit = (await s.execute(select(func.count()).select_from(AuditEntry))).scalar_one()
    return people, audit


async def _import(settings: Settings, data: bytes, **kw: Any) -> tuple[Any, tuple, tuple]:
    db = Database(settings.database.url)
    try:
        before = await _counts(db)
        try:
            report = await import_roster(db, settings, data, "roster.csv", actor="test", **kw)
        except Problem as problem:
            assert problem.status in (409, 422), problem
            report = None
        return report, before, await _counts(db)
    finally:
        await db.dispose()


@pytest.fixture
def loaded(settings: Settings) -> Settings:
    async def load() -> None:
        db = Database(settings.database.url)
        async with db.session() as s:
            await load_areas(s, liyang_csv())
        await db.dispose()

    _run(load())
    return settings


@pytest.mark.hang_after(120)
def test_bad_rows_import_nothing_and_skip_invalid_only_the_valid(loaded: Settings) -> None:
    @examples(25)
    @given(rows(), st.sampled_from(["plain", "skip_invalid", "dry_run"]))
    def one(body: list[list[str]], how: str) -> None:
        data = as_csv(body)
        kw = {"skip_invalid": how == "skip_invalid", "dry_run": how == "dry_run"}
        report, (people, audit), (people_after, audit_after) = _run(_import(loaded, data, **kw))
        if report is None or how == "dry_run" or (report.errors and how == "plain"):
            assert (people_after, audit_after) == (people, audit)
            assert report is None or not report.written
            return
        assert report.written
        assert people_after == people + report.to_create
        assert audit_after == audit + 1
        if how == "skip_invalid":
            assert report.valid == report.rows_read - len(report.bad_rows)

    one()
