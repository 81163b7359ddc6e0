"""Issue 8, "done when": the cluster on this machine's PostgreSQL, end to end, every part in its
own process as deployed — two API processes (`warnpub serve --no-dispatch`), three workers
(`warnpub worker`) and the SMS gateway simulator (`warnpub gateway-sim`).

A yellow warning to 50,000 people (one SMS each) is submitted through one API process and
approved through the other. While it is being sent, one worker is killed with SIGKILL (after
about 20 % was accepted at the simulator) and another is stopped with SIGTERM (about 40 %); a
fresh worker joins after that. Timers fire meanwhile: the ladder ticks of the warning, and the
review deadlines of a few pending "probe" warnings (with no one in their area) that fall due
before, between and after the kills.

At the end: every target has exactly one accepted message at the simulator; the simulator
never accepted more than the instance's ``rate_per_s`` in any one-second window (it measures
that over its accept times: ``max_per_1s``); every delivery is final (delivered) and the
warning completed; every timer that fell due fired exactly once (state ``done`` with
``fired_at``; one review-deadline escalation and one ``escalation.raised`` audit entry per
probe warning; no timer left pending past its due time); the SIGTERMed worker exited 0.

It runs on a schema of its own, created, migrated and dropped here. Without PostgreSQL it is
skipped, and with CI=true it fails.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.cluster.processes import Processes, free_port, wait_http, wait_line, wait_until
from tests.conftest import PG_URL, require_pg
from tests.factories import TOWN_DAIBU, TOWN_SHEZHU, World, alert_json, seed
from warnpub.config import load_settings
from warnpub.storage.engine import Database
from warnpub.storage.migrate import upgrade

PEOPLE = 50_000
RATE = 2000  # the SMS instance's rate_per_s, shared by the workers
BATCH = 50  # messages per request to the simulator
SECRET = "e2e-callback-secret"
KILL_AT = PEOPLE // 5  # SIGKILL one worker after ~20 % accepted
TERM_AT = 2 * PEOPLE // 5  # SIGTERM another after ~40 %
LATENCY_MS = 20  # the gateway's answer takes this long: rows are in flight most of the time
TIMEOUT_S = 2.0  # a call to the gateway (below dead_after_s / 2 minus one window)
# Our own villages under 社渚镇 (synthetic-style codes x391…); everyone lives there.
VILLAGES = [f"320481116{391 + i:03d}" for i in range(5)]
PROBE_DEADLINE_MIN = 0.2  # blue review deadline: 12 s


def raw(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
def schema() -> Iterator[str]:
    """A fresh, migrated schema for this test only (dropped afterwards)."""
    require_pg()
    name = f"wp_e2e_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def ddl(statement: str) -> None:
        conn = await asyncpg.connect(raw(PG_URL), timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(ddl(f'CREATE SCHEMA "{name}"'))
    try:
        upgrade(PG_URL, schema=name)
        yield name
    finally:
        asyncio.run(ddl(f'DROP SCHEMA "{name}" CASCADE'))


@pytest.fixture
async def pg(schema: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(raw(PG_URL), timeout=10, server_settings={"search_path": schema})
    yield conn
    await conn.close()


def config_file(path: Path, sim_url: str) -> Path:
    path.write_text(
        f"""
[dispatch]
lease_seconds = 10
receipt_timeout_s = 300
retry_base_s = 0.2
retry_max_s = 2.0

[cluster]
heartbeat_s = 0.5
dead_after_s = 6
poll_s = 2

[timers]
tick_seconds = 0.5
lease_seconds = 5

[review]
deadline_minutes = {{ red = 10, orange = 15, yellow = 30, blue = {PROBE_DEADLINE_MIN} }}

[logging]
level = "WARNING"

[[channels.sms]]
name = "sim"
adapter = "http_json"
url = "{sim_url}/sms"
batch_url = "{sim_url}/sms/batch"
max_batch = {BATCH}
rate_per_s = {RATE}
concurrency = 4
callback_secret = "{SECRET}"
timeout_s = {TIMEOUT_S}
""",
        encoding="utf-8",
    )
    return path


async def add_people(pg: asyncpg.Connection) -> list[str]:
    """Our villages and 50,000 residents with a mobile number each (COPY); their numbers."""
    now = datetime.now(UTC)
    taken = await pg.fetch("SELECT code FROM areas WHERE code = ANY($1::text[])", VILLAGES)
    assert not taken, f"village codes already used by the area tree: {taken}"
    await pg.executemany(
        "INSERT INTO areas (code, name, level, parent_code, urban_rural, synthetic) "
        "VALUES ($1, $2, 'village', $3, '220', true)",
        [(code, f"集群测试村{i + 1}", TOWN_SHEZHU) for i, code in enumerate(VILLAGES)],
    )
    phones = [f"+86139{i:08d}" for i in range(PEOPLE)]
    records = [
        (
            f"e2e-{i:06d}",
            f"居民{i}",
            VILLAGES[i % len(VILLAGES)],
            "resident",
            phone,
            "zh-CN",
            0,
            "",
            False,
            False,
            now,
            now,
        )
        for i, phone in enumerate(phones)
    ]
    await pg.copy_records_to_table(
        "people",
        records=records,
        columns=[
            "external_id",
            "name",
            "area_code",
            "role",
            "phone",
            "language",
            "needs",
            "needs_note",
            "opt_out",
            "drill_consent",
            "created_at",
            "updated_at",
        ],
    )
    await pg.execute("ANALYZE people")
    return phones


class Api:
    def __init__(self, http: aiohttp.ClientSession, world: World) -> None:
        self.http, self.world = http, world

    async def submit(self, base: str, **alert: Any) -> str:
        async with self.http.post(
            f"{base}/api/v1/warnings", json=alert_json(**alert), headers=self.world.agency("QX")
        ) as r:
            body = await r.json()
            assert r.status == 202, body
            return str(body["id"])

    async def approve(self, base: str, warning_id: str) -> None:
        async with self.http.post(
            f"{base}/api/v1/warnings/{warning_id}/approve", headers=self.world.operator("duty1")
        ) as r:
            assert r.status == 200, await r.text()

    async def state(self, base: str, warning_id: str) -> str:
        async with self.http.get(
            f"{base}/api/v1/warnings/{warning_id}", headers=self.world.operator("duty1")
        ) as r:
            assert r.status == 200, await r.text()
            return str((await r.json())["state"])


async def sim_stats(http: aiohttp.ClientSession, sim: str, numbers: bool = False) -> dict[str, Any]:
    async with http.get(f"{sim}/stats", params={"numbers": "1" if numbers else "0"}) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def diagnose(pg: asyncpg.Connection, sim: str) -> str:
    """What the database and the simulator hold, for a failure's report (before the schema
    is dropped)."""
    out: list[str] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            out.append(f"simulator: {await sim_stats(http, sim)}")
    except Exception as exc:
        out.append(f"simulator: {type(exc).__name__}: {exc}")
    queries = {
        "warnings": "SELECT id, state, level, planned_at, decided_at FROM warnings",
        "deliveries": "SELECT state, lease_owner IS NOT NULL AS leased, "
        "min(next_attempt_at) AS next_at, max(attempts) AS max_attempts, count(*) "
        "FROM deliveries GROUP BY 1, 2",
        "errors": "SELECT last_error, count(*) FROM deliveries WHERE last_error <> '' "
        "GROUP BY 1 LIMIT 10",
        "workers": "SELECT id, heartbeat_at, sized_for, view_at FROM workers",
        "timers": "SELECT kind, state, due_at, attempts, lease_owner, last_error FROM timers",
    }
    for name, sql in queries.items():
        try:
            out.append(f"{name}: {[dict(r) for r in await pg.fetch(sql)]}")
        except Exception as exc:
            out.append(f"{name}: {type(exc).__name__}: {exc}")
    return "\n".join(out)


async def progress(
    http: aiohttp.ClientSession,
    sim: str,
    schema: str,
    warning: str,
    since: float,
    samples: list[str],
) -> None:
    """Every 2 s: accepted at the simulator, receipts posted, delivery states, workers (for a
    failure's report: where it stalled). On a connection of its own."""
    pg = await asyncpg.connect(raw(PG_URL), timeout=10, server_settings={"search_path": schema})
    try:
        await _sample(http, sim, pg, warning, since, samples)
    finally:
        await pg.close()


async def _sample(
    http: aiohttp.ClientSession,
    sim: str,
    pg: asyncpg.Connection,
    warning: str,
    since: float,
    samples: list[str],
) -> None:
    while True:
        try:
            s = await sim_stats(http, sim)
            rows = await pg.fetch(
                "SELECT state, count(*) FROM deliveries WHERE warning_id = $1 GROUP BY state",
                warning,
            )
            workers = await pg.fetch("SELECT id, sized_for FROM workers ORDER BY started_at")
            connections = await pg.fetchval("SELECT count(*) FROM pg_stat_activity")
            samples.append(
                f"{time.monotonic() - since:6.1f} s  accepted {s['accepted']:6d}  "
                f"receipts {s['receipts']['sent']:6d}  "
                f"{dict(sorted((r['state'], r['count']) for r in rows))}  "
                f"workers {[(w['id'][-6:], w['sized_for']) for w in workers]}  "
                f"pg connections {connections}  load {os.getloadavg()[0]:.1f}"
            )
        except Exception as exc:
            samples.append(f"progress: {type(exc).__name__}: {exc}")
        await asyncio.sleep(2.0)


# The whole test may take minutes on a loaded machine (about 70 s on a quiet one); its own
# waits end it with a clear message long before the watchdog would.
@pytest.mark.hang_after(600)
async def test_two_api_three_workers_50k_kill_and_term(schema, pg, tmp_path: Path):
    started = time.monotonic()
    sim_port, api_ports = free_port(), (free_port(), free_port())
    sim = f"http://127.0.0.1:{sim_port}"
    apis = [f"http://127.0.0.1:{p}" for p in api_ports]
    env = {
        **os.environ,
        "WARNPUB_DATABASE_URL": PG_URL,
        "WARNPUB_DATABASE_SCHEMA_NAME": schema,
        "WARNPUB_CONFIG": str(config_file(tmp_path / "cluster.toml", sim)),
        "WARNPUB_SERVER_PUBLIC_URL": apis[0],
        "WARNPUB_SECURITY_SECRET_KEY": "e2e-" + "0" * 60,
    }
    settings = load_settings(environ=env)
    db = Database(PG_URL, schema=schema)
    try:
        world = await seed(db, settings)
    finally:
        await db.dispose()
    phones = await add_people(pg)

    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(logs, env)
    timeline: dict[str, Any] = {}
    samples: list[str] = []
    sampler: asyncio.Task[None] | None = None
    try:
        # The gateway's receipts go to the first API process (either would do).
        procs.start(
            "gateway-sim",
            "gateway-sim",
            "--port",
            str(sim_port),
            "--secret",
            SECRET,
            "--callback-url",
            f"{apis[0]}/api/v1/callbacks/sms/sim/receipts",
            "--latency-ms",
            str(LATENCY_MS),
        )
        for i, port in enumerate(api_ports):
            procs.start(f"api-{i + 1}", "serve", "--no-dispatch", "--port", str(port))
        for i in (1, 2, 3):
            procs.start(f"worker-{i}", "worker")
        await wait_http(f"{sim}/health", procs, "gateway-sim", 60)
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{sim}/control", json={"callback_attempts": 1000}) as r,
        ):  # a slow API process on a loaded machine: keep trying, never drop receipts
            assert r.status == 200, await r.text()
        for i, base in enumerate(apis):
            await wait_http(f"{base}/healthz", procs, f"api-{i + 1}", 90)
        for i in (1, 2, 3):
            await wait_line(procs, f"worker-{i}", "running", 90)

        async def admitted() -> bool:  # every worker sized for the others (rate shares)
            rows = await pg.fetch("SELECT sized_for, view_at FROM workers")
            return len(rows) == 3 and all(r["sized_for"] == 3 and r["view_at"] for r in rows)

        await wait_until(admitted, "three workers registered and sized", 60, procs)
        timeline["up_s"] = round(time.monotonic() - started, 1)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            api = Api(http, world)
            probes: list[str] = []

            async def probe() -> None:  # a pending warning whose review deadline falls due
                probes.append(
                    await api.submit(apis[len(probes) % 2], severity="Minor", code=TOWN_DAIBU)
                )

            await probe()
            warning = await api.submit(apis[0], severity="Moderate", code=TOWN_SHEZHU, hours=6)
            await api.approve(apis[1], warning)
            approved = time.monotonic()
            await probe()
            sampler = asyncio.create_task(progress(http, sim, schema, warning, approved, samples))

            async def accepted_at_least(n: int) -> int | None:
                got = int((await sim_stats(http, sim))["accepted"])
                return got if got >= n else None

            await wait_until(
                lambda: accepted_at_least(KILL_AT), f"{KILL_AT} accepted", 120, procs, 0.05
            )
            # SIGKILL while worker-1 holds claimed rows (sending, or at the gateway).
            owner = procs.output("worker-1", 1 << 24).split("warnpub worker ", 1)[1].split()[0]

            async def held() -> int:
                return int(
                    await pg.fetchval(
                        "SELECT count(*) FROM deliveries WHERE state = 'sending' "
                        "AND lease_owner LIKE $1",
                        f"{owner}/%",
                    )
                )

            # The gateway answers slowly for a moment, so that rows seen held are still held
            # when the signal lands (at 20 ms a batch could be recorded in between). Requests
            # begun before the change are answered fast: they are recorded first.
            async with http.post(f"{sim}/control", json={"latency_ms": 1500}) as r:
                assert r.status == 200, await r.text()
            await asyncio.sleep(0.5)
            await wait_until(held, "worker-1 holds claimed rows", 30, procs, 0.01)
            procs.signal("worker-1", signal.SIGKILL)
            assert await procs.wait("worker-1", 10) == -signal.SIGKILL
            orphaned = await held()  # left to their lease: the sweeper of another worker
            async with http.post(f"{sim}/control", json={"latency_ms": LATENCY_MS}) as r:
                assert r.status == 200, await r.text()
            at_kill = int((await sim_stats(http, sim))["accepted"])
            timeline["sigkill"] = {"accepted": at_kill, "rows_it_held": orphaned}
            await probe()

            at_term = await wait_until(
                lambda: accepted_at_least(TERM_AT), f"{TERM_AT} accepted", 120, procs, 0.05
            )
            procs.signal("worker-2", signal.SIGTERM)
            term_code = await procs.wait("worker-2", TIMEOUT_S + 20)
            timeline["sigterm"] = {"accepted": at_term, "exit": term_code}
            assert term_code == 0, (
                f"SIGTERMed worker exited {term_code}:\n{procs.output('worker-2')}"
            )
            await probe()
            procs.start("worker-4", "worker")  # a fresh worker joins the survivor
            await wait_line(procs, "worker-4", "running", 90)
            await probe()

            async def completed() -> bool:
                return await api.state(apis[1], warning) == "completed"

            await wait_until(completed, f"warning {warning} completed", 300, procs, 0.25)
            timeline["completed_after_approval_s"] = round(time.monotonic() - approved, 1)

            async def probes_fired() -> bool:
                return not await pg.fetchval(
                    "SELECT count(*) FROM timers WHERE kind = 'review_deadline' "
                    "AND warning_id = ANY($1::text[]) AND state <> 'done'",
                    probes,
                )

            await wait_until(probes_fired, "every probe's review deadline fired", 90, procs)
            sampler.cancel()
            stats = await sim_stats(http, sim, numbers=True)
            # Nothing more arrives afterwards (no late duplicate from a released row).
            await asyncio.sleep(1.0)
            after = await sim_stats(http, sim)
            for name in ("api-1", "api-2", "worker-3", "worker-4", "gateway-sim"):
                procs.check(name)
    except BaseException:
        print(f"timeline: {timeline}\nprogress:\n" + "\n".join(samples))
        print(await diagnose(pg, sim))
        print(procs.report())
        raise
    finally:
        if sampler is not None:
            sampler.cancel()
        procs.stop_all()
    # Errors the processes logged and recovered from (shown, not failed on: e.g. a deadlock
    # between a receipt and a worker recording the same rows is retried by both).
    timeline["logged_errors"] = {
        name: procs.output(name, tail=1 << 24).count('"level": "ERROR"') for name in procs.procs
    }

    print("progress:\n" + "\n".join(samples))
    print(
        f"timeline: {timeline}; simulator: max_per_1s {stats['max_per_1s']} (limit {RATE}), "
        f"duplicates {stats['duplicates']}, receipts {stats['receipts']}"
    )
    # -- the simulator: exactly one accepted message per target, and the rate held ------------
    per_number: dict[str, int] = stats["per_number"]
    assert 0 < timeline["sigkill"]["accepted"] < PEOPLE, timeline
    assert timeline["sigkill"]["rows_it_held"] > 0, f"SIGKILL was not mid-send: {timeline}"
    assert timeline["sigkill"]["accepted"] < timeline["sigterm"]["accepted"] < PEOPLE, timeline
    assert stats["accepted"] == after["accepted"] == PEOPLE, (stats["accepted"], after["accepted"])
    assert stats["unique_references"] == PEOPLE
    assert stats["numbers_with_more_than_one"] == 0, "a target got two messages"
    assert set(per_number) == set(phones), "messages to numbers that are not targets, or missing"
    assert set(per_number.values()) == {1}
    assert 0 < stats["max_per_1s"] <= RATE, (
        f"the gateway saw {stats['max_per_1s']} messages in one second; the limit is {RATE}"
    )
    assert stats["throttled"] == 0 and stats["refused"] == 0, stats

    # -- the database: every delivery final, the warning complete ------------------------------
    states = dict(
        await pg.fetch(
            "SELECT state, count(*) FROM deliveries WHERE warning_id = $1 GROUP BY state", warning
        )
    )
    assert states == {"delivered": PEOPLE}, states
    assert (
        await pg.fetchval(
            "SELECT count(*) FROM deliveries WHERE lease_owner IS NOT NULL OR final_at IS NULL"
        )
        == 0
    ), "rows still leased or not final"

    # -- timers: each that fell due fired once ----------------------------------------------------
    timers = await pg.fetch(
        "SELECT id, kind, warning_id, state, fired_at, due_at, attempts FROM timers ORDER BY id"
    )
    now = await pg.fetchval("SELECT now()")
    for t in timers:
        assert t["state"] in ("done", "pending", "cancelled"), dict(t)
        assert (t["state"] == "done") == (t["fired_at"] is not None), dict(t)
        if t["state"] == "pending":
            assert t["due_at"] > now, f"a timer due at {t['due_at']} never fired: {dict(t)}"
    deadlines = [t for t in timers if t["kind"] == "review_deadline" and t["warning_id"] in probes]
    assert sorted(t["warning_id"] for t in deadlines) == sorted(probes)
    assert all(t["state"] == "done" for t in deadlines), deadlines
    escalations = dict(
        await pg.fetch(
            "SELECT warning_id, count(*) FROM escalations WHERE kind = 'review_deadline' "
            "GROUP BY warning_id"
        )
    )
    assert escalations == dict.fromkeys(probes, 1), f"review deadlines fired {escalations}"
    raised = dict(
        await pg.fetch(
            "SELECT subject, count(*) FROM audit_log WHERE action = 'escalation.raised' "
            "GROUP BY subject"
        )
    )
    assert raised == {f"warning:{p}": 1 for p in probes}, raised
    ticks = [t for t in timers if t["kind"] == "ladder.tick" and t["warning_id"] == warning]
    assert any(t["state"] == "done" for t in ticks), ticks
    # The main warning: its review deadline was cancelled by the approval, its expiry is ahead.
    main = {t["kind"]: t["state"] for t in timers if t["warning_id"] == warning}
    assert main.get("review_deadline") == "cancelled" and main.get("expire") == "pending", main
    kinds = sorted({(t["kind"], t["state"]) for t in timers})
    counts = {
        f"{k}/{s}": sum(1 for t in timers if (t["kind"], t["state"]) == (k, s)) for k, s in kinds
    }
    print(f"timers: {counts}; wall {time.monotonic() - started:.1f} s")
