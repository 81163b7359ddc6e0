"""Benchmark: SQLite writers taking turns in the process (warnpub.storage.turns) against
SQLite's busy handler alone.

    python bench/write_turns.py [--writers 12] [--seconds 5] [--rounds 2]

``--writers`` tasks each commit small write transactions (one INSERT) on one SQLite file
through :class:`warnpub.storage.engine.Database`, for ``--seconds``; once with the process's
write turns (the default) and once with ``turns=False``, alternating for ``--rounds``, side by
side on the same machine. Prints per run: transactions per second and the p50 / p99 / slowest
time a transaction took (waiting included); the last line is one JSON object with the medians
and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from warnpub.storage.engine import Database


async def one_run(folder: Path, turns: bool, writers: int, seconds: float) -> dict[str, float]:
    path = folder / f"turns-{turns}-{time.monotonic_ns()}.db"
    db = Database(f"sqlite+aiosqlite:///{path}", turns=turns, pool_size=writers + 2)
    try:
        async with db.session() as s:
            await s.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        took: list[float] = []
        stop = time.monotonic() + seconds

        async def writer() -> None:
            while time.monotonic() < stop:
                started = time.monotonic()
                async with db.session() as s:
                    await s.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": "x" * 100})
                took.append(time.monotonic() - started)

        await asyncio.gather(*(writer() for _ in range(writers)))
    finally:
        await db.dispose()
    took.sort()
    return {
        "tx_per_s": round(len(took) / seconds, 1),
        "p50_ms": round(took[len(took) // 2] * 1000, 1),
        "p99_ms": round(took[int(len(took) * 0.99)] * 1000, 1),
        "max_ms": round(took[-1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for turns in (False, True):
                figures = asyncio.run(one_run(Path(tmp), turns, args.writers, args.seconds))
                runs[turns].append(figures)
                print(json.dumps({"turns": turns, **figures}), flush=True)

    def median(turns: bool, key: str) -> float:
        return round(statistics.median(r[key] for r in runs[turns]), 1)

    print(
        json.dumps(
            {
                "writers": args.writers,
                "tx_per_s": median(True, "tx_per_s"),
                "busy_handler_tx_per_s": median(False, "tx_per_s"),
                "tx_ratio": round(median(True, "tx_per_s") / median(False, "tx_per_s"), 2),
                "p99_ms": median(True, "p99_ms"),
                "busy_handler_p99_ms": median(False, "p99_ms"),
                "max_ms": median(True, "max_ms"),
                "busy_handler_max_ms": median(False, "max_ms"),
                "load_avg_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
