"""The planner's bulk path on PostgreSQL: plain inserts with a fallback to ON CONFLICT DO NOTHING,
chunks of one rank written at once — the same rows as the SQLite path, resumable, in order."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from tests.dispatch.test_planner import counts
from tests.factories import alert_json, seed
from warnpub.api.app import create_app
from warnpub.audiences.demo_data import DemoOptions, generate
from warnpub.audiences.targeting import Targeter
from warnpub.config import Settings, load_settings
from warnpub.dispatch import planner
from warnpub.dispatch.outbox import PlannedRows, plan_rows
from warnpub.storage.engine import Database
from warnpub.storage.tables import WarningRecord

pytestmark = pytest.mark.postgres
CITY = "320481000000"
# Everything a planned row says, but its id, its warning and its times.
COMPARED = (
    "target_kind, target_id, channel, stage, route, tier, priority, area_code, language, "
    "ack_required, state, attempts, last_error, final_at IS NULL"
)


def configure(settings: Settings, chunk: int = 400) -> None:
    # Some channels configured (their rows are queued), others not (failed at once, and the
    # route's next step planned): groups of every kind.
    settings.channels = {"sms": [], "speaker": [], "board": []}
    settings.dispatch.plan_chunk = chunk


async def released(db: Database, settings: Settings) -> str:
    """The same county and the same city-wide warning, approved, on either database."""
    world = await seed(db, settings)
    async with db.session() as s:
        await generate(s, DemoOptions(people=1500, seed=5, villages_per_town=2))
    app = create_app(settings, db, run_timers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        r = await client.post(
            "/api/v1/warnings",
            json=alert_json(severity="Moderate", code=CITY),
            headers=world.agency("QX"),
        )
        assert r.status == 202, await r.text()
        warning_id = str((await r.json())["id"])
        r = await client.post(
            f"/api/v1/warnings/{warning_id}/approve", headers=world.operator("duty1")
        )
        assert r.status == 200, await r.text()
    return warning_id


async def rows_of(db: Database, warning_id: str) -> list[tuple[Any, ...]]:
    async with db.reader() as s:
        result = await s.execute(
            text(f"SELECT {COMPARED} FROM deliveries WHERE warning_id = :w ORDER BY id"),
            {"w": warning_id},
        )
        return [tuple(r) for r in result.all()]


def count_bulk_inserts(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the chunks inserted plainly and those that fell back to ON CONFLICT DO NOTHING."""
    seen = {"plain": 0, "fallback": 0, "first_chunk_rows": 0}
    real = planner.insert_new_planned

    async def counting(session: Any, rows: PlannedRows) -> bool:
        if not seen["first_chunk_rows"]:
            seen["first_chunk_rows"] = len(rows)
        fresh = await real(session, rows)
        seen["plain" if fresh else "fallback"] += 1
        return fresh

    monkeypatch.setattr(planner, "insert_new_planned", counting)
    return seen


def in_rank_order(rows: list[tuple[Any, ...]]) -> bool:
    ranks = [(r[5], r[6]) for r in rows]  # tier, priority; rows in id order
    return ranks == sorted(ranks)


async def test_the_pg_bulk_path_plans_the_rows_of_the_sqlite_path(
    settings, db, backend, sqlite_template, tmp_path: Path, monkeypatch
):
    if backend != "postgres":
        pytest.skip("compares PostgreSQL's bulk path with SQLite's")
    monkeypatch.setattr(planner, "HEAD_START_S", 0.0)  # no worker claims anything here
    inserts = count_bulk_inserts(monkeypatch)
    configure(settings)
    warning_pg = await released(db, settings)
    written = await planner.plan(db, settings, warning_pg, lambda kinds: None)

    path = tmp_path / "twin.db"
    shutil.copy(sqlite_template, path)
    twin_settings = load_settings(
        environ={
            "WARNPUB_DATABASE_URL": f"sqlite+aiosqlite:///{path}",
            "WARNPUB_SERVER_PUBLIC_URL": "http://127.0.0.1:8080",
        }
    )
    configure(twin_settings)
    twin = Database(twin_settings.database.url)
    try:
        warning_sqlite = await released(twin, twin_settings)
        twin_written = await planner.plan(twin, twin_settings, warning_sqlite, lambda kinds: None)
        expected = await rows_of(twin, warning_sqlite)
    finally:
        await twin.dispose()

    got = await rows_of(db, warning_pg)
    assert written == twin_written == len(got) == len(expected) > 1500
    assert sorted(got) == sorted(expected)
    assert {r[10] for r in got} == {"queued", "failed"}
    # Highest tier first, the first chunk small; every chunk of a fresh plan went in plainly.
    assert in_rank_order(got) and in_rank_order(expected)
    assert 0 < inserts["first_chunk_rows"] <= planner.FIRST_CHUNK
    assert inserts["plain"] > 3 and inserts["fallback"] == 0


async def test_a_resumed_pg_plan_inserts_nothing_twice(settings, db, backend, monkeypatch):
    if backend != "postgres":
        pytest.skip("the PostgreSQL bulk path")
    monkeypatch.setattr(planner, "HEAD_START_S", 0.0)
    configure(settings, chunk=400)
    warning_id = await released(db, settings)

    # A crash half-way: the process dies after a few chunks are committed.
    real_chunk = planner._write_chunk
    calls = 0

    async def crashing(db_: Database, warning: str, rows: PlannedRows) -> bool:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise RuntimeError("the process died")
        return await real_chunk(db_, warning, rows)

    monkeypatch.setattr(planner, "_write_chunk", crashing)
    with pytest.raises(RuntimeError, match="the process died"):
        await planner.plan(db, settings, warning_id, lambda kinds: None)
    monkeypatch.setattr(planner, "_write_chunk", real_chunk)
    partial = await rows_of(db, warning_id)
    async with db.reader() as s:
        assert (await s.get(WarningRecord, warning_id)).planned_at is None

    # Run again with other chunk boundaries: a chunk now holds rows that exist and rows that
    # do not, and falls back to ON CONFLICT DO NOTHING; the chunks past the crash go in plainly.
    inserts = count_bulk_inserts(monkeypatch)
    settings.dispatch.plan_chunk = 700
    await planner.plan(db, settings, warning_id, lambda kinds: None)
    got = await rows_of(db, warning_id)
    assert 0 < len(partial) < len(got)
    assert inserts["fallback"] >= 1 and inserts["plain"] >= 1

    # Every row once: the rows the targets' first steps call for, no more, no fewer.
    async with db.reader() as s:
        planned = PlannedRows()
        warning = await s.get(WarningRecord, warning_id)
        scope = await planner.scope_for(s, warning)
        async for batch in Targeter(settings).batches(s, scope):
            plan_rows(warning_id, batch, warning.decided_at, frozenset(settings.channels), planned)
        assert (await s.get(WarningRecord, warning_id)).planned_at is not None
    _, distinct = await counts(db, warning_id)
    expected = sorted((r["target_kind"], r["target_id"], r["channel"]) for r in planned.dicts())
    assert sorted((r[0], r[1], r[2]) for r in got) == expected
    assert distinct == len(got) == len(planned)
    # The rows written before the crash are the ones kept (not deleted and written again).
    assert got[: len(partial)] == partial
    assert in_rank_order(got)
