"""Benchmark: SMS messages per second through the real dispatch path, beside a bare client and Apprise.

    python bench/throughput.py

Side by side in one run, against one gateway simulator (``python -m warnpub gateway-sim``) in
its own process, so that its CPU is not counted against any client:

- ``single_per_s``: warnpub's real dispatch path, one message per request. Delivery rows are
  already planned in the outbox (a SQLite file, the default); a ChannelWorker claims them by
  priority, drops rows of cancelled or expired warnings, reads the addresses, renders, sends
  through HttpJsonSms (``url`` only, ``max_batch`` 1, ``--concurrency`` requests in flight)
  and records every result, committed.
- ``batch_per_s``: the same with ``batch_url`` and ``max_batch`` 100.
- ``bare_single_per_s`` / ``bare_batch_per_s``: a bare aiohttp client POSTing the very same
  messages (same number, text and reference) with the same concurrency, reading each answer
  and nothing more: no database, no rendering, no bookkeeping. The floor for any client.
- ``apprise_per_s``: Apprise's JSON-over-HTTP plugin (``json://``) sending the first
  ``--apprise`` of the single messages, used as Apprise is used: one ``notify`` per message,
  each with its own HTTP request (Apprise is synchronous).

Each run starts from an empty simulator (``POST /reset``) and, for warnpub, from a fresh copy of
the planned outbox; afterwards the bench checks that the simulator accepted every message once
and that every row is recorded ``sent``. With ``--repeat`` above 1 each figure is the median of
its runs, warnpub and bare alternating which goes first. The figures are printed as one JSON
object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from common import add_duty_operator, add_weather_bureau, yellow_rainstorm
from sqlalchemy import func, select

from warnpub.api.app import create_app
from warnpub.channels.registry import build_channels
from warnpub.config import Settings, load_settings
from warnpub.dispatch.addresses import addresses
from warnpub.dispatch.outbox import CLAIM_COLUMNS, Claimed
from warnpub.dispatch.planner import plan
from warnpub.dispatch.render import MessageRenderer
from warnpub.dispatch.worker import ChannelWorker
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery

BEIJING = timezone(timedelta(hours=8))
PHONE_SHARE = 0.9  # SMS rows per person: most people have a mobile number
BATCH = 100
PLANNING_URL = "http://127.0.0.1:9"  # planning only needs to know an SMS gateway exists


# -- the simulator, in its own process ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SimProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "WARNPUB_LOGGING_LEVEL": "WARNING"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "warnpub", "gateway-sim", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
        )

    async def wait_up(self) -> None:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"gateway-sim exited with {self.proc.returncode}")
                try:
                    async with http.get(f"{self.url}/health") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("gateway-sim did not come up")

    async def reset(self) -> None:
        async with aiohttp.ClientSession() as http, http.post(f"{self.url}/reset") as r:
            assert r.status == 200, await r.text()

    async def stats(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}/stats", params={"numbers": "0"}) as r,
        ):
            return await r.json()

    async def check(self, n: int, who: str) -> None:
        s = await self.stats()
        if not s["accepted"] == s["unique_references"] == n or s["duplicates"]:
            raise AssertionError(f"{who}: the simulator accepted {s}, expected {n} once each")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the county: a population, one approved warning, its plan -----------------------------------


def bench_settings(url: str, sim_url: str, *, batch: bool, concurrency: int) -> Settings:
    settings = load_settings(environ={"WARNPUB_DATABASE_URL": url})
    sms: dict[str, Any] = {
        "name": "sim",
        "adapter": "http_json",
        "url": f"{sim_url}/sms",
        "rate_per_s": 1_000_000,  # the gateway's own speed is what is measured
        "concurrency": concurrency,
        "timeout_s": 30,
        "max_batch": BATCH if batch else 1,
    }
    if batch:
        sms["batch_url"] = f"{sim_url}/sms/batch"
    settings.channels = {"sms": [sms]}
    settings.logging.level = "WARNING"
    if os.environ.get("CLAIM_BATCH"):
        settings.dispatch.claim_batch = int(os.environ["CLAIM_BATCH"])
    return settings


def alert(hours: int = 24 * 30) -> dict[str, Any]:
    return yellow_rainstorm(f"bench-throughput-{time.time_ns()}", hours=hours)


async def approved_warning(db: Database, settings: Settings) -> str:
    """An agency submits a city-wide yellow warning over the API; an operator approves it."""
    async with db.session() as s:
        qx_key = await add_weather_bureau(s, settings)
        token = await add_duty_operator(s, 60)
    client = TestClient(TestServer(create_app(settings, db, run_timers=False), host="127.0.0.1"))
    await client.start_server()
    try:
        r = await client.post(
            "/api/v1/warnings",
            json=alert(),
            headers={"Authorization": f"Bearer {qx_key}"},
        )
        assert r.status == 202, await r.text()
        warning_id = (await r.json())["id"]
        r = await client.post(
            f"/api/v1/warnings/{warning_id}/approve",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status == 200, await r.text()
    finally:
        await client.close()
    return str(warning_id)


def prepare(path: Path, messages: int, seed: int) -> None:
    """A planned outbox with exactly ``messages`` queued SMS rows, in a SQLite file."""
    final, path = path, path.with_suffix(".part")
    remove_db(path)  # a half-made file from an interrupted run
    url = f"sqlite+aiosqlite:///{path}"
    env = {**os.environ, "WARNPUB_DATABASE_URL": url, "WARNPUB_LOGGING_LEVEL": "WARNING"}
    people = math.ceil(messages / PHONE_SHARE) + 50
    for args in (["db", "upgrade"], ["demo-data", "--people", str(people), "--seed", str(seed)]):
        subprocess.run(
            [sys.executable, "-m", "warnpub", *args], env=env, check=True, stdout=subprocess.DEVNULL
        )

    async def body() -> None:
        settings = bench_settings(url, PLANNING_URL, batch=False, concurrency=1)
        db = Database(url)
        try:
            warning_id = await approved_warning(db, settings)
            await plan(db, settings, warning_id, lambda kinds: None)
        finally:
            await db.dispose()

    asyncio.run(body())
    with sqlite3.connect(path) as conn:
        queued = conn.execute(
            "SELECT count(*) FROM deliveries WHERE channel = 'sms' AND state = 'queued'"
        ).fetchone()[0]
        if queued < messages:
            raise RuntimeError(f"only {queued} SMS rows were planned; {messages} are needed")
        # Rows beyond the wanted number (lowest priority last) are ended before the run.
        conn.execute(
            "UPDATE deliveries SET state = 'cancelled', last_error = 'not in this benchmark' "
            "WHERE channel = 'sms' AND state = 'queued' AND id NOT IN ("
            " SELECT id FROM deliveries WHERE channel = 'sms' AND state = 'queued'"
            " ORDER BY priority, id LIMIT ?)",
            (messages,),
        )
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path.rename(final)
    remove_db(path)


async def message_items(path: Path) -> list[dict[str, str]]:
    """The JSON items HttpJsonSms sends for the queued rows, in claim order (for the baselines)."""
    url = f"sqlite+aiosqlite:///{path}"
    settings = bench_settings(url, PLANNING_URL, batch=False, concurrency=1)
    db = Database(url)
    renderer = MessageRenderer(settings)
    try:
        async with db.reader() as session:
            rows = [
                Claimed(*r)
                for r in (
                    await session.execute(
                        select(*CLAIM_COLUMNS)
                        .where(Delivery.channel == "sms", Delivery.state == "queued")
                        .order_by(Delivery.priority, Delivery.id)
                    )
                ).all()
            ]
            where = await addresses(session, rows)
            items = []
            for c in rows:
                address = where[c.id]
                assert address
                m = await renderer.message(session, c, address)
                items.append({"to": m.address, "text": m.text, "reference": m.idempotency_key})
    finally:
        await db.dispose()
    return items


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def copy_db(template: Path, target: Path) -> None:
    remove_db(target)
    shutil.copyfile(template, target)


# -- the three clients ---------------------------------------------------------------------------
# Each returns the seconds it took to have the simulator accept every message (and, for
# warnpub, to have every outcome committed).


async def run_warnpub(
    template: Path, work: Path, sim: SimProcess, n: int, *, batch: bool, concurrency: int
) -> float:
    """A ChannelWorker on a fresh copy of the planned outbox, from start to the last commit."""
    path = work / "run.db"
    copy_db(template, path)
    url = f"sqlite+aiosqlite:///{path}"
    settings = bench_settings(url, sim.url, batch=batch, concurrency=concurrency)
    db = Database(url)
    channel = build_channels(settings)["sms"][0]
    await channel.start()
    worker = ChannelWorker(db, settings, channel, MessageRenderer(settings), "bench")
    stopping = asyncio.Event()
    try:
        started = time.perf_counter()
        task = asyncio.create_task(worker.run(stopping))
        s = worker.stats
        while s.sent + s.delivered + s.failed + s.dropped < n and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        stopping.set()
        worker.wake.set()
        await task
    finally:
        await channel.close()
    async with db.reader() as session:
        states = dict(
            (
                await session.execute(
                    select(Delivery.state, func.count())
                    .where(Delivery.channel == "sms", Delivery.state != "cancelled")
                    .group_by(Delivery.state)
                )
            ).all()
        )
    await db.dispose()
    if states != {"sent": n}:
        raise AssertionError(f"warnpub {'batch' if batch else 'single'}: rows ended {states}")
    return elapsed


async def run_bare(
    items: Sequence[dict[str, str]], sim: SimProcess, *, batch: bool, concurrency: int
) -> float:
    """The same messages from a bare aiohttp client: POST, read the answer, nothing else."""
    if batch:
        url = f"{sim.url}/sms/batch"
        bodies: list[Any] = [
            {"messages": list(items[i : i + BATCH])} for i in range(0, len(items), BATCH)
        ]
    else:
        url = f"{sim.url}/sms"
        bodies = list(items)
    headers = {"Content-Type": "application/json; charset=utf-8"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    failures = 0
    async with aiohttp.ClientSession(connector=connector) as http:
        queue = iter(bodies)

        async def client() -> None:
            nonlocal failures
            for body in queue:
                data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
                async with http.post(url, data=data, headers=headers) as r:
                    answer = json.loads(await r.read())
                    if r.status != 200 or not answer:
                        failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if failures:
        raise AssertionError(f"bare client: {failures} requests failed")
    return elapsed


def apprise_url(sim_url: str, item: dict[str, str]) -> str:
    """json:// with the body renamed to the gateway's ``text`` and Apprise's own fields left out."""
    host = sim_url.removeprefix("http://")
    query = {
        ":message": "text",
        ":version": "",
        ":title": "",
        ":attachments": "",
        ":type": "",
        ":to": item["to"],
        ":reference": item["reference"],
    }
    return f"json://{host}/sms?{urllib.parse.urlencode(query)}"


def run_apprise(items: Sequence[dict[str, str]], sim_url: str) -> float:
    """One Apprise notify per message, as Apprise is used (each its own HTTP request)."""
    import apprise  # the bench extra: pip install -e '.[bench]'

    started = time.perf_counter()
    for item in items:
        notifier = apprise.Apprise()
        notifier.add(apprise_url(sim_url, item))
        if not notifier.notify(body=item["text"]):
            raise AssertionError(f"apprise: {item['reference']} was not sent")
    return time.perf_counter() - started


# -- the run -------------------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    per_s: float
    client_us: float  # CPU per message: this process (all threads), then the simulator
    server_us: float


async def timed(
    name: str, n: int, items: Sequence[dict[str, str]], batch: bool, body: Any, warm: bool
) -> Run:
    """``body(sim)`` against a freshly started simulator: no run profits from what an earlier
    run left in it (such as the numbers it has parsed already) unless ``warm`` asks for it."""
    sim = SimProcess()
    try:
        await sim.wait_up()
        if warm:
            await run_bare(items, sim, batch=batch, concurrency=8)
            await sim.reset()
        client0, server0 = time.process_time(), process_cpu_s(sim.proc.pid)
        elapsed = await body(sim)
        client1, server1 = time.process_time(), process_cpu_s(sim.proc.pid)
        await sim.check(n, name)
    finally:
        sim.stop()
    return Run(n / elapsed, (client1 - client0) / n * 1e6, (server1 - server0) / n * 1e6)


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    modes = {"single": (args.single, False, args.concurrency)}
    modes["batch"] = (args.batch, True, args.batch_concurrency)
    items: dict[str, list[dict[str, str]]] = {}
    templates: dict[str, Path] = {}
    for mode, (n, _, _) in modes.items():
        templates[mode] = work / f"{mode}-{n}-{args.seed}.db"
        if not templates[mode].exists():  # a --work directory keeps them for the next run
            await asyncio.to_thread(prepare, templates[mode], n, args.seed)
        items[mode] = await message_items(templates[mode])
    few = items["single"][: args.apprise]
    runs: dict[str, list[Run]] = {}
    for rep in range(args.repeat):
        plan: list[tuple[str, int, list[dict[str, str]], bool, Any]] = []
        for mode, (n, batch, conc) in modes.items():
            pair = [
                (
                    f"bare_{mode}",
                    n,
                    items[mode],
                    batch,
                    lambda sim, m=mode, b=batch, c=conc: run_bare(
                        items[m], sim, batch=b, concurrency=c
                    ),
                ),
                (
                    mode,
                    n,
                    items[mode],
                    batch,
                    lambda sim, m=mode, b=batch, c=conc, k=n: run_warnpub(
                        templates[m], work, sim, k, batch=b, concurrency=c
                    ),
                ),
            ]
            plan += reversed(pair) if rep % 2 else pair
        plan.append(
            (
                "apprise",
                len(few),
                few,
                False,
                lambda sim: asyncio.to_thread(run_apprise, few, sim.url),
            )
        )
        for name, n, its, batch, body in plan:
            runs.setdefault(name, []).append(await timed(name, n, its, batch, body, args.warm))
    median = {name: statistics.median(r.per_s for r in rs) for name, rs in runs.items()}
    return {
        "single_per_s": round(median["single"]),
        "batch_per_s": round(median["batch"]),
        "bare_single_per_s": round(median["bare_single"]),
        "bare_batch_per_s": round(median["bare_batch"]),
        "apprise_per_s": round(median["apprise"]),
        "single_vs_bare": round(median["single"] / median["bare_single"], 3),
        "batch_vs_bare": round(median["batch"] / median["bare_batch"], 3),
        "single_vs_apprise": round(median["single"] / median["apprise"], 1),
        "messages": {"single": args.single, "batch": args.batch, "apprise": len(few)},
        "concurrency": {"single": args.concurrency, "batch": args.batch_concurrency},
        "warm_simulator": args.warm,
        "repeat": args.repeat,
        "runs_per_s": {name: [round(r.per_s) for r in rs] for name, rs in runs.items()},
        # CPU microseconds per message (medians): this process, then the simulator.
        "cpu_us_per_msg": {
            name: [
                round(statistics.median(r.client_us for r in rs), 1),
                round(statistics.median(r.server_us for r in rs), 1),
            ]
            for name, rs in runs.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--single", type=int, default=20_000, help="messages, one per request")
    parser.add_argument("--batch", type=int, default=100_000, help="messages, 100 per request")
    parser.add_argument("--apprise", type=int, default=2_000, help="messages sent with Apprise")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight (single)")
    parser.add_argument("--batch-concurrency", type=int, default=8, help="batch requests in flight")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; medians reported")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated population")
    parser.add_argument(
        "--warm",
        action="store_true",
        help="send every message to each fresh simulator once before the measured run",
    )
    parser.add_argument("--work", type=Path, help="keep the planned databases here for reuse")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out = asyncio.run(measure(args, work))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
