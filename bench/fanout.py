"""Benchmark: plan and outbox — an approved city-wide warning becomes its delivery rows.

    python bench/fanout.py --targets 1000000

Generates a population with `warnpub demo-data` in a separate process (so its memory does not
count), large enough for at least ``--targets`` first-step delivery rows, then in this process
submits a red rainstorm warning for the whole city over the real API (agency QX, released at
once by the green channel) and times :func:`warnpub.dispatch.planner.plan`: targeting, routes
and every first-step row committed, chunk by chunk. Every channel kind is configured, so each
target's first step is written ``queued`` (nothing fails over to a later step).

As baselines, side by side in the same run: a bare ``sqlite3`` ``executemany`` of the very same
rows (copied from the plan) into a table with the same columns, constraints and indexes, one
transaction per chunk of the same size and the same PRAGMAs (WAL, synchronous=FULL) — the plain
way to write rows, one bound row at a time — and the targeting alone (``Targeter.batches`` over
the same scope), which no plan can beat. ``vs_insert`` and ``vs_targeting`` divide ``seconds``
by them.

Also reported: ``plan_cpu_s`` (CPU seconds of this process, all threads, during the plan: near
``seconds`` when the other core is busy with other work), ``gc_full_s`` (of that, full garbage
collections), ``load_avg_1m`` when the run began, and ``first_chunk_ms`` (the first rows
committed). No worker runs here, so the planner's head start (it waits up to 0.25 s for a
worker to claim the first rows) is spent in full.

Prints the figures as one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import re
import resource
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from common import CITY, add_weather_bureau, city_alert, generate
from sqlalchemy import func, select

from warnpub.api.app import create_app
from warnpub.audiences.targeting import Scope, Targeter
from warnpub.config import Settings, load_settings
from warnpub.dispatch.planner import plan
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery

# With every channel configured, demo-data gives about 1.05 first-step rows per person (a
# visually impaired person gets speaker+voice, an elderly one sms+relay; devices add a few
# hundred), so one person per requested target is enough for at least --targets rows.
ROWS_PER_PERSON = 1.0
CHANNELS = ("sms", "email", "voice", "relay", "speaker", "board")


PLAN_CHUNK: int | None = None  # --plan-chunk: [dispatch] plan_chunk for this run


def bench_settings(db_path: Path) -> Settings:
    settings = load_settings(environ={"WARNPUB_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}"})
    if PLAN_CHUNK is not None:
        settings.dispatch.plan_chunk = PLAN_CHUNK
    # Only the kinds matter to the planner (a kind with no instance fails over at once).
    settings.channels = {kind: [] for kind in CHANNELS}
    return settings


def alert(code: str) -> dict[str, Any]:
    assert code == CITY
    return city_alert(
        f"bench-fanout-{time.time_ns()}",
        severity="Extreme",
        headline="暴雨红色预警",
        description="基准测试",
        instruction="注意防范",
        hours=24 * 365,
    )


async def released_warning(db: Database, settings: Settings) -> str:
    """A red warning for the whole city, submitted by QX and released by the green channel."""
    async with db.session() as s:
        qx_key = await add_weather_bureau(s, settings)
    client = TestClient(TestServer(create_app(settings, db, run_timers=False), host="127.0.0.1"))
    await client.start_server()
    try:
        r = await client.post(
            "/api/v1/warnings",
            json=alert(CITY),
            headers={"Authorization": f"Bearer {qx_key}"},
        )
        body = await r.json()
        assert r.status == 202 and body["state"] == "approved", body
        return str(body["id"])
    finally:
        await client.close()


async def run_plan(db_path: Path) -> dict[str, Any]:
    settings = bench_settings(db_path)
    db = Database(settings.database.url)
    try:
        warning_id = await released_warning(db, settings)
        chunks: list[int] = []
        first_commit: list[float] = []
        collector = FullCollections()

        def wake(kinds: set[str]) -> None:
            if not first_commit:
                first_commit.append(time.perf_counter() - started)
            chunks.append(1)

        cpu = resource.getrusage(resource.RUSAGE_SELF)
        gc.callbacks.append(collector)
        started = time.perf_counter()
        written = await plan(db, settings, warning_id, wake)
        seconds = time.perf_counter() - started
        gc.callbacks.remove(collector)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu_s = after.ru_utime - cpu.ru_utime + after.ru_stime - cpu.ru_stime
        async with db.reader() as s:
            rows = (
                await s.execute(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.warning_id == warning_id)
                )
            ).scalar_one()
            distinct = (
                select(Delivery.target_kind, Delivery.target_id)
                .where(Delivery.warning_id == warning_id)
                .distinct()
                .subquery()
            )
            targets = (await s.execute(select(func.count()).select_from(distinct))).scalar_one()
    finally:
        await db.dispose()
    return {
        "warning_id": warning_id,
        "rows": written,
        "rows_in_table": rows,
        "distinct_targets": targets,
        "seconds": seconds,
        "first_chunk_ms": (first_commit[0] * 1000) if first_commit else None,
        "chunks": len(chunks),
        "cpu_s": cpu_s,
        "gc_full_s": collector.seconds,
        "gc_full": collector.count,
    }


class FullCollections:
    """Time the garbage collector spends in full (generation 2) collections."""

    def __init__(self) -> None:
        self.seconds, self.count, self._started = 0.0, 0, 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.count += 1


async def run_targeting(db_path: Path) -> tuple[float, int]:
    settings = bench_settings(db_path)
    db = Database(settings.database.url)
    try:
        started = time.perf_counter()
        count = 0
        async with db.reader() as session:
            async for batch in Targeter(settings).batches(session, Scope((CITY,), "red")):
                count += len(batch)
        return time.perf_counter() - started, count
    finally:
        await db.dispose()


def bare_insert(db_path: Path, warning_id: str, chunk: int) -> float:
    """The same rows, copied with plain sqlite3 into a twin of the deliveries table."""
    src = sqlite3.connect(db_path, isolation_level=None)
    dst = sqlite3.connect(db_path, isolation_level=None)
    for conn in (src, dst):
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=FULL")
    ddl = [
        sql
        for (sql,) in src.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'deliveries' AND sql IS NOT NULL "
            "ORDER BY type DESC"  # the table before its indexes
        )
    ]
    dst.execute("DROP TABLE IF EXISTS bench_deliveries")
    for sql in ddl:
        sql = re.sub(r"\bdeliveries\b", "bench_deliveries", sql)
        sql = re.sub(r"\b(ix|uq)_deliveries_", r"\1_bench_deliveries_", sql)
        dst.execute(sql)
    columns = [r[1] for r in src.execute("PRAGMA table_info(deliveries)") if r[1] != "id"]
    insert = (
        f"INSERT OR IGNORE INTO bench_deliveries ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    cur = src.execute(
        f"SELECT {', '.join(columns)} FROM deliveries WHERE warning_id = ? ORDER BY id",
        (warning_id,),
    )
    took = 0.0
    while rows := cur.fetchmany(chunk):
        started = time.perf_counter()
        dst.execute("BEGIN IMMEDIATE")
        dst.executemany(insert, rows)
        dst.execute("COMMIT")
        took += time.perf_counter() - started
    dst.execute("DROP TABLE bench_deliveries")
    src.close()
    dst.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=1_000_000, help="rows to plan, at least")
    parser.add_argument("--people", type=int, help="people to generate (default: from --targets)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--db",
        type=Path,
        help="a generated SQLite file to copy (kept; made if missing) instead of generating anew",
    )
    parser.add_argument(
        "--plan-chunk", type=int, help="rows per plan transaction ([dispatch] plan_chunk)"
    )
    args = parser.parse_args()
    global PLAN_CHUNK
    PLAN_CHUNK = args.plan_chunk
    people = args.people or math.ceil(args.targets / ROWS_PER_PERSON)
    load = round(os.getloadavg()[0], 2)  # other work on this machine when the run began
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "fanout.db"
        gen_s = 0.0
        if args.db is not None:
            if not args.db.exists():
                gen_s = generate(args.db, people, args.seed)
            shutil.copy(args.db, work)
        else:
            gen_s = generate(work, people, args.seed)
        settings = bench_settings(work)
        figures = asyncio.run(run_plan(work))
        targeting_s, targeting_n = asyncio.run(run_targeting(work))
        insert_s = bare_insert(work, figures["warning_id"], settings.dispatch.plan_chunk)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = figures["seconds"]
    out = {
        "targets": figures["rows"],
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak, 1),
        "people": people,
        "targets_resolved": targeting_n,
        "rows_per_s": round(figures["rows"] / seconds) if seconds else None,
        "first_chunk_ms": round(figures["first_chunk_ms"] or 0.0, 1),
        "chunks": figures["chunks"],
        "plan_cpu_s": round(figures["cpu_s"], 2),
        "gc_full_s": round(figures["gc_full_s"], 2),
        "gc_full": figures["gc_full"],
        "load_avg_1m": load,
        "plan_chunk": settings.dispatch.plan_chunk,
        "baseline_insert_s": round(insert_s, 3),
        "baseline_targeting_s": round(targeting_s, 3),
        "vs_insert": round(seconds / insert_s, 2) if insert_s else None,
        "vs_targeting": round(seconds / targeting_s, 2) if targeting_s else None,
        "generate_s": round(gen_s, 1),
        "distinct_targets": figures["distinct_targets"],
        "ok": figures["rows"] >= args.targets and seconds <= 10 and peak <= 1000,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
