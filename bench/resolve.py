"""Benchmark: resolve a warning on a whole town and on the whole city over a generated population.

    python bench/resolve.py --people 1000000

Generates the population with `warnpub demo-data` in a separate process (so its memory does not
count), then streams the targets of a town-wide and a city-wide warning in this process (after
a first resolve of the smallest town, whose first target is reported as ``cold_first_ms``: it
includes opening the connection and compiling the statements, which a running service has
long done). As a
baseline, side by side, it times a bare sqlite3 scan of the same people (the floor no targeting
can beat). Prints the figures as one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

from common import CITY, generate

from warnpub.audiences.targeting import Scope, Targeter
from warnpub.config import load_settings
from warnpub.storage.engine import Database


def biggest_town(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        row = conn.execute(
            "SELECT substr(area_code, 1, 9) AS town, count(*) AS n FROM people GROUP BY town ORDER BY n DESC LIMIT 1"
        ).fetchone()
    return str(row[0]).ljust(12, "0")


def smallest_town(db_path: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        row = conn.execute(
            "SELECT substr(area_code, 1, 9) AS town, count(*) AS n FROM people GROUP BY town ORDER BY n LIMIT 1"
        ).fetchone()
    return str(row[0]).ljust(12, "0")


def bare_scan(db_path: Path, code: str) -> float:
    prefix = code.rstrip("0") if code.endswith("000") else code
    lo, hi = prefix.ljust(12, "0"), prefix.ljust(12, "9")
    started = time.perf_counter()
    with sqlite3.connect(db_path) as conn:
        cur = conn.execute(
            "SELECT id, area_code, needs, role, language, phone, email, relay_contact_id FROM people "
            "WHERE area_code BETWEEN ? AND ?",
            (lo, hi),
        )
        while cur.fetchmany(5000):
            pass
    return time.perf_counter() - started


async def resolve(db: Database, code: str) -> tuple[float, float, int]:
    settings = load_settings(environ={"WARNPUB_DATABASE_URL": db.url})
    started = time.perf_counter()
    first, count = None, 0
    async with db.reader() as session:
        async for batch in Targeter(settings).batches(session, Scope((code,), "red")):
            if first is None:
                first = time.perf_counter() - started
            count += len(batch)
    return (first or 0.0) * 1000, time.perf_counter() - started, count


async def measure(db_path: Path) -> dict[str, float]:
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    try:
        town = biggest_town(db_path)
        # The process's first resolve also opens the connection and compiles the statements
        # (reported as cold_first_ms); a running service has done that long before a warning
        # comes, so the figures below are taken after it, on another town.
        cold_first, _, _ = await resolve(db, smallest_town(db_path))
        town_first, town_total, town_n = await resolve(db, town)
        city_first, city_total, city_n = await resolve(db, CITY)
    finally:
        await db.dispose()
    return {
        "cold_first_ms": round(cold_first, 1),
        "town_first_ms": round(town_first, 1),
        "town_total_s": round(town_total, 3),
        "town_targets": town_n,
        "city_first_ms": round(city_first, 1),
        "city_total_s": round(city_total, 3),
        "city_targets": city_n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--db", type=Path, help="reuse this generated SQLite file (made if missing)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = args.db or Path(tmp) / "resolve.db"
        gen_s = generate(db_path, args.people, args.seed) if not db_path.exists() else 0.0
        figures = asyncio.run(measure(db_path))
        baseline = bare_scan(db_path, CITY)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        "people": args.people,
        **figures,
        "peak_rss_mb": round(peak, 1),
        "baseline_city_scan_s": round(baseline, 3),
        "city_vs_baseline": round(figures["city_total_s"] / baseline, 2) if baseline else None,
        "generate_s": round(gen_s, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
