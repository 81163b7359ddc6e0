"""Benchmark: warnpub as a cluster on PostgreSQL — SMS throughput of 1, 2 and 4 worker
processes, and the fan-out of a million targets.

    python bench/cluster.py [--targets 50000] [--rate 100000] [--fanout-targets 1000000]

Everything runs as it is deployed, each part in its own process on 127.0.0.1, against this
machine's PostgreSQL (``--pg-url``; database ``test`` by default) in a schema of its own that
the bench creates, migrates (``warnpub db upgrade``) and drops at the end — also when it is
interrupted (Ctrl-C, SIGTERM) or fails; no other schema is touched:

- the SMS gateway simulator (``warnpub gateway-sim``), one SMS gateway instance ``sim``
  configured with ``rate_per_s = --rate`` (high enough that the workers, not the limit, are
  the bottleneck), batches of 100, 8 requests in flight per worker;
- ``warnpub serve --no-dispatch``: the API only. A city-wide yellow rainstorm warning is
  submitted by agency QX and approved by operator duty1 over HTTP, as in production;
- ``warnpub worker`` × 1, 2, 4 (``--workers``): planning, claiming, sending, recording.

Throughput: a population of ``--targets`` people (``warnpub demo-data``); for each worker count
a new warning, the simulator reset, and the time from the first to the last SMS it accepted
(``workers``: messages/s; ``workers_from_approval``: from the approval's answer to the last
message, planning included). Only SMS is configured, so each person's first SMS step is one
message (people without a phone go to steps that fail at once: not configured here).

Fan-out: the population is regenerated with ``--fanout-targets`` people and one worker runs
with the gateway's rate at 1 message/s, so that it plans and hardly sends; ``fanout_1m_s`` is
the warning's ``planned_at − decided_at`` (both written by the database's clients on this
machine): from the approval until every delivery row of the plan is committed.

Baselines, side by side: ``bare_client_per_s`` — a bare aiohttp client POSTing the same number
of messages in batches of 100, 8 in flight, to the same simulator (no database);
``baseline_bare_copy_s`` — a bare binary COPY of the very rows the plan wrote into a plain
table without indexes, and ``baseline_indexed_copy_s`` the same into a twin of ``deliveries``
with its indexes (no foreign key, no triggers). Compare the ratios (``*_vs_*``): the machine is
shared. ``load_avg_1m`` is sampled at each phase.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from common import add_duty_operator, add_weather_bureau, yellow_rainstorm
from processes import Processes, free_port, sim_config, wait_http

from warnpub.config import load_settings
from warnpub.dispatch.outbox import INSERT_COLUMNS
from warnpub.storage.engine import Database

PG_URL = os.environ.get("WARNPUB_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
BATCH = 100
CONCURRENCY = 8  # requests in flight per worker (and for the bare client)


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> float:
    return round(os.getloadavg()[0], 2)


def raw_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def printed(path: Path, text: str) -> bool:
    return text in path.read_text(errors="replace")


async def wait_for_line(path: Path, text: str, procs: Processes, name: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        procs.check(name)
        if printed(path, text):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{name} did not print {text!r} within {limit_s} s")


def warnpub(env: dict[str, str], *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "warnpub", *args], env=env, check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def config_file(path: Path, sim_url: str, rate: float) -> Path:
    return sim_config(
        path, sim_url, rate, max_batch=BATCH, concurrency=CONCURRENCY, timeout_s=30
    )


# -- the county ---------------------------------------------------------------------------------


class County:
    """Agency QX and operator duty1 in the bench schema; warnings through the API process."""

    def __init__(self, db: Database, api: str) -> None:
        self.db, self.api = db, api
        self.qx_key = self.token = ""

    async def setup(self, env: dict[str, str]) -> None:
        settings = load_settings(environ=env)
        async with self.db.session() as s:
            self.qx_key = await add_weather_bureau(s, settings)
            self.token = await add_duty_operator(s, 24 * 60)

    async def release(self, name: str) -> tuple[str, float]:
        """Submit a city-wide yellow warning and approve it; (its id, monotonic time of the
        approval's answer)."""
        alert = yellow_rainstorm(f"bench-cluster-{name}-{time.time_ns()}")
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{self.api}/api/v1/warnings",
                json=alert,
                headers={"Authorization": f"Bearer {self.qx_key}"},
            ) as r:
                body = await r.json()
                assert r.status == 202, body
            warning_id = str(body["id"])
            async with http.post(
                f"{self.api}/api/v1/warnings/{warning_id}/approve",
                headers={"Authorization": f"Bearer {self.token}"},
            ) as r:
                answer = await r.json()
                assert r.status == 200, answer
        return warning_id, time.monotonic()


async def wait_planned(pg: asyncpg.Connection, warning_id: str, limit_s: float) -> float:
    """Seconds from the warning's approval (decided_at) until its plan was finished."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        row = await pg.fetchrow(
            "SELECT decided_at, planned_at FROM warnings WHERE id = $1", warning_id
        )
        if row is not None and row["planned_at"] is not None:
            return (row["planned_at"] - row["decided_at"]).total_seconds()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"warning {warning_id} was not planned within {limit_s} s")


async def sim_accepted(http: aiohttp.ClientSession, sim_url: str) -> int:
    async with http.get(f"{sim_url}/stats", params={"numbers": "0"}) as r:
        stats = await r.json()
    return int(stats["unique_references"])


# -- throughput ---------------------------------------------------------------------------------


async def throughput_run(
    procs: Processes,
    county: County,
    pg: asyncpg.Connection,
    sim_url: str,
    workers: int,
    settle_s: float,
    limit_s: float,
) -> dict[str, Any]:
    names = [f"worker-{workers}-{i}" for i in range(workers)]
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sim_url}/reset") as r:
            assert r.status == 200, await r.text()
        try:
            for name in names:
                out = procs.start(name, "worker")
                await wait_for_line(out, "running", procs, name, 60)
            await asyncio.sleep(settle_s)  # membership and rate shares settle
            started_load = load()
            warning_id, approved = await county.release(f"w{workers}")
            await wait_planned(pg, warning_id, limit_s)
            expected = await pg.fetchval(
                "SELECT count(*) FROM deliveries WHERE warning_id = $1 AND channel = 'sms' "
                "AND state <> 'failed'",
                warning_id,
            )
            first_at: float | None = None
            first_count = 0
            deadline = time.monotonic() + limit_s
            while True:
                for name in names:
                    procs.check(name)
                accepted = await sim_accepted(http, sim_url)
                now = time.monotonic()
                if accepted and first_at is None:
                    first_at, first_count = now, accepted
                if accepted >= expected:
                    break
                if now > deadline:
                    raise RuntimeError(f"{accepted} of {expected} messages after {limit_s} s")
                await asyncio.sleep(0.02)
            done_at = time.monotonic()
        finally:
            procs.stop(*names)
    assert first_at is not None
    window = done_at - first_at
    per_s = (expected - first_count) / window if window > 0 else float("nan")
    return {
        "workers": workers,
        "messages": int(expected),
        "per_s": round(per_s, 1),
        "from_approval_per_s": round(expected / (done_at - approved), 1),
        "first_message_s": round(first_at - approved, 3),
        "load_avg_1m": started_load,
    }


async def bare_client(sim_url: str, n: int) -> float:
    """Messages/s of a bare aiohttp client: n messages, batches of 100, 8 in flight."""
    bodies = [
        {
            "messages": [
                {"to": f"+8617{j:09d}", "text": "暴雨黄色预警 bench", "reference": f"bare-{j}"}
                for j in range(i, min(i + BATCH, n))
            ]
        }
        for i in range(0, n, BATCH)
    ]
    headers = {"Content-Type": "application/json; charset=utf-8"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:
        async with http.post(f"{sim_url}/reset") as r:
            assert r.status == 200
        queue = iter(bodies)

        async def client() -> None:
            for body in queue:
                data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
                async with http.post(f"{sim_url}/sms/batch", data=data, headers=headers) as r:
                    await r.read()
                    assert r.status == 200, r.status

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        accepted = await sim_accepted(http, sim_url)
    assert accepted == n, (accepted, n)
    return n / elapsed


# -- fan-out ------------------------------------------------------------------------------------


async def fanout_run(
    procs: Processes, county: County, pg: asyncpg.Connection, env: dict[str, str], limit_s: float
) -> dict[str, Any]:
    out = procs.start("worker-fanout", "worker", env=env)
    try:
        await wait_for_line(out, "running", procs, "worker-fanout", 60)
        await asyncio.sleep(1.0)
        started_load = load()
        warning_id, approved = await county.release("fanout")
        seconds = await wait_planned(pg, warning_id, limit_s)
        observed = time.monotonic() - approved
    finally:
        procs.stop("worker-fanout")
    rows = await pg.fetchval("SELECT count(*) FROM deliveries WHERE warning_id = $1", warning_id)
    targets = await pg.fetchval(
        "SELECT count(*) FROM (SELECT DISTINCT target_kind, target_id FROM deliveries "
        "WHERE warning_id = $1) t",
        warning_id,
    )
    first = await pg.fetchval(
        "SELECT min(d.created_at) - w.decided_at FROM deliveries d JOIN warnings w "
        "ON w.id = d.warning_id WHERE d.warning_id = $1 GROUP BY w.decided_at",
        warning_id,
    )
    return {
        "warning_id": warning_id,
        "fanout_s": round(seconds, 3),
        "fanout_observed_s": round(observed, 3),
        "fanout_rows": int(rows),
        "fanout_distinct_targets": int(targets),
        "fanout_first_rows_s": round(first.total_seconds(), 3) if first is not None else None,
        "load_avg_1m": started_load,
    }


async def copy_baselines(pg: asyncpg.Connection, warning_id: str, work: Path) -> dict[str, float]:
    """Bare binary COPY of the plan's own rows: into a plain table, and into an indexed twin."""
    columns = list(INSERT_COLUMNS)
    listed = ", ".join(columns)
    dump = work / "rows.copy"
    await pg.copy_from_query(
        f"SELECT {listed} FROM deliveries WHERE warning_id = $1 ORDER BY id",
        warning_id,
        output=str(dump),
        format="binary",
    )
    await pg.execute(f"CREATE TABLE bench_plain AS SELECT {listed} FROM deliveries WITH NO DATA")
    await pg.execute("CREATE TABLE bench_indexed (LIKE deliveries INCLUDING ALL)")
    out: dict[str, float] = {}
    for table, key in (("bench_plain", "bare_copy_s"), ("bench_indexed", "indexed_copy_s")):
        started = time.perf_counter()
        await pg.copy_to_table(table, source=str(dump), columns=columns, format="binary")
        out[key] = round(time.perf_counter() - started, 3)
        await pg.execute(f"DROP TABLE {table}")
    dump.unlink()
    return out


# -- the run ------------------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, schema: str, procs: Processes, work: Path
) -> dict[str, Any]:
    env = procs.env
    figures: dict[str, Any] = {"schema": schema, "load_avg_1m_start": load()}
    log(f"schema {schema}: migrating, {args.targets:,} people")
    warnpub(env, "db", "upgrade")
    generate_s = warnpub(env, "demo-data", "--people", str(args.targets), "--seed", str(args.seed))
    sim_port, api_port = free_port(), free_port()
    sim_url, api = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{api_port}"
    procs.env = env = {
        **env,
        "WARNPUB_CONFIG": str(config_file(work / "bench.toml", sim_url, args.rate)),
    }
    procs.start("gateway-sim", "gateway-sim", "--port", str(sim_port))
    procs.start("api", "serve", "--no-dispatch", "--host", "127.0.0.1", "--port", str(api_port))
    await wait_http(f"{sim_url}/health", procs, "gateway-sim")
    await wait_http(f"{api}/api/v1/openapi.json", procs, "api")
    db = Database(args.pg_url, schema=schema)
    pg = await asyncpg.connect(raw_dsn(args.pg_url), server_settings={"search_path": schema})
    try:
        county = County(db, api)
        await county.setup(env)
        runs = []
        for count in args.workers:
            log(f"throughput: {count} worker(s), {args.targets:,} targets, rate {args.rate:g}/s")
            result = await throughput_run(
                procs, county, pg, sim_url, count, args.settle_s, args.timeout
            )
            log(f"  {json.dumps(result)}")
            runs.append(result)
        messages = runs[0]["messages"]
        bare = await bare_client(sim_url, messages)
        log(f"bare client: {bare:.0f} messages/s")
        figures.update(
            {
                "targets": args.targets,
                "messages": messages,
                "rate": args.rate,
                "workers": {str(r["workers"]): r["per_s"] for r in runs},
                "workers_from_approval": {
                    str(r["workers"]): r["from_approval_per_s"] for r in runs
                },
                "first_message_s": {str(r["workers"]): r["first_message_s"] for r in runs},
                "per_s": max(r["per_s"] for r in runs),
                "bare_client_per_s": round(bare, 1),
                "workers_vs_bare_client": {
                    str(r["workers"]): round(r["per_s"] / bare, 3) for r in runs
                },
                "load_avg_1m_throughput": [r["load_avg_1m"] for r in runs],
                "generate_s": round(generate_s, 1),
            }
        )
        if args.fanout_targets > 0:
            log(f"fan-out: regenerating {args.fanout_targets:,} people")
            gen = warnpub(
                env,
                "demo-data",
                "--people",
                str(args.fanout_targets),
                "--seed",
                str(args.seed),
                "--replace",
            )
            slow = {**env, "WARNPUB_CONFIG": str(config_file(work / "fanout.toml", sim_url, 1))}
            log("fan-out: one worker plans (its gateway at 1 message/s)")
            fan = await fanout_run(procs, county, pg, slow, args.timeout)
            log(f"  {json.dumps(fan)}")
            base = await copy_baselines(pg, fan["warning_id"], work)
            log(f"  baselines {json.dumps(base)}")
            figures.update(
                {
                    "fanout_1m_s": fan["fanout_s"],
                    "fanout_observed_s": fan["fanout_observed_s"],
                    "fanout_targets": args.fanout_targets,
                    "fanout_rows": fan["fanout_rows"],
                    "fanout_distinct_targets": fan["fanout_distinct_targets"],
                    "fanout_first_rows_s": fan["fanout_first_rows_s"],
                    "fanout_rows_per_s": round(fan["fanout_rows"] / fan["fanout_s"]),
                    "baseline_bare_copy_s": base["bare_copy_s"],
                    "baseline_indexed_copy_s": base["indexed_copy_s"],
                    "fanout_vs_bare_copy": round(fan["fanout_s"] / base["bare_copy_s"], 2),
                    "fanout_vs_indexed_copy": round(fan["fanout_s"] / base["indexed_copy_s"], 2),
                    "load_avg_1m_fanout": fan["load_avg_1m"],
                    "generate_fanout_s": round(gen, 1),
                }
            )
    finally:
        await pg.close()
        await db.dispose()
    figures["load_avg_1m_end"] = load()
    return figures


async def create_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(raw_dsn(url))
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()


async def drop_schema(url: str, schema: str) -> None:
    conn = await asyncpg.connect(raw_dsn(url))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def _interrupted(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=50_000, help="people for the throughput")
    parser.add_argument(
        "--rate", type=float, default=100_000, help="the SMS gateway instance's rate_per_s"
    )
    parser.add_argument(
        "--fanout-targets", type=int, default=1_000_000, help="people for the fan-out (0: skip)"
    )
    parser.add_argument(
        "--workers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 2, 4],
        help="worker counts, comma-separated (default 1,2,4)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle-s", type=float, default=3.0, help="after the workers start")
    parser.add_argument("--timeout", type=float, default=600, help="per phase, seconds")
    parser.add_argument("--pg-url", default=PG_URL, help="postgresql+asyncpg://… (database)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupted)
    schema = f"wp_bench_cluster_{os.getpid()}_{secrets.token_hex(3)}"
    figures: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="warnpub-cluster-") as tmp:
        work = Path(tmp)
        env = {
            **os.environ,
            "WARNPUB_DATABASE_URL": args.pg_url,
            "WARNPUB_DATABASE_SCHEMA_NAME": schema,
            "WARNPUB_LOGGING_LEVEL": "WARNING",
        }
        env.pop("WARNPUB_CONFIG", None)
        procs = Processes(work, env)
        asyncio.run(create_schema(args.pg_url, schema))
        try:
            figures = asyncio.run(run(args, schema, procs, work))
        finally:
            # Children first (they hold connections to the schema), then the schema.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            procs.stop_all()
            asyncio.run(drop_schema(args.pg_url, schema))
            log(f"schema {schema} dropped")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
