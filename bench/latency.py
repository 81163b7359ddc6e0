"""Benchmark: approval to the first special-needs SMS at the gateway, for a 100,000-target warning.

    python bench/latency.py

Generates a population with `warnpub demo-data` in a separate process, then runs the real path
in this process: the application with its Dispatcher (planner, SMS worker, sweeper) on SQLite,
the real gateway simulator (``create_sim_app``) on 127.0.0.1, every request over HTTP. Each run
submits a fresh city-wide yellow warning as agency QX, then times from just before the operator's
``POST …/approve`` until the simulator accepted (its own timestamp) the first SMS to a person
with special needs. Then the warning is cancelled over HTTP, the bench waits until nothing of it
is left sending or waiting to be sent and the planner has stopped (so the next approval does
not wait behind this cancel's stop), and the simulator is reset. One warm-up
run is made first and reported apart. ``cancel_http_*`` time the cancel request, ``stopped_*``
the cancel until every row of the warning is final.

Side by side, in every run: ``first_any`` (the first SMS of any kind; it should be the same
message, special needs go first) and, as a baseline, a bare aiohttp POST of one message to the
same simulator (the floor for any message at all). Percentiles are nearest-rank: with 20 runs,
p99 is the slowest run. Prints the figures as one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from common import CITY, add_weather_bureau, city_alert, generate
from sqlalchemy import func, select

from warnpub.api.app import create_app
from warnpub.audiences.tables import Person
from warnpub.audiences.targeting import Scope, Targeter
from warnpub.auth import operators
from warnpub.channels.registry import build_channels
from warnpub.config import Settings, load_settings
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.gatewaysim.app import GATEWAY, create_sim_app
from warnpub.gatewaysim.state import SimGateway
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery

SECRET = "bench-callback-secret"
PASSWORD = "correct horse battery"


def alert(n: int) -> dict[str, Any]:
    return city_alert(
        f"bench-latency-{time.time_ns()}-{n}",
        severity="Moderate",
        headline="暴雨黄色预警",
        description="基准测试：过去3小时降雨量已达50毫米以上",
        instruction="注意防范，远离低洼地带",
        hours=6,
    )


class County:
    """The app with its dispatcher, the simulator, and the two callers the bench needs."""

    def __init__(
        self, db_path: Path, rate_per_s: float, concurrency: int, during_stop: bool = False
    ) -> None:
        self.db_path, self.rate_per_s, self.concurrency = db_path, rate_per_s, concurrency
        self.during_stop = during_stop

    async def start(self) -> None:
        url = f"sqlite+aiosqlite:///{self.db_path}"
        self.settings: Settings = load_settings(environ={"WARNPUB_DATABASE_URL": url})
        self.db = Database(url)
        async with self.db.session() as s:
            qx_key = await add_weather_bureau(s, self.settings)
            op = await operators.add_operator(
                s,
                username="duty1",
                display_name="duty1",
                role="operator",
                password=PASSWORD,
                actor="bench",
            )
            token = await operators.issue_operator_token(s, op, 600, "bench")
        self.agency = {"Authorization": f"Bearer {qx_key}"}
        self.operator = {"Authorization": f"Bearer {token}"}

        self.sim_app = create_sim_app({"secret": SECRET})
        self.sim_runner = web.AppRunner(self.sim_app, access_log=None)
        await self.sim_runner.setup()
        site = web.TCPSite(self.sim_runner, "127.0.0.1", 0)
        await site.start()
        self.sim_url = f"http://127.0.0.1:{self.sim_runner.addresses[0][1]}"

        self.settings.channels = {
            "sms": [
                {
                    "name": "sim",
                    "adapter": "http_json",
                    "url": f"{self.sim_url}/sms",
                    "batch_url": f"{self.sim_url}/sms/batch",
                    "rate_per_s": self.rate_per_s,
                    "concurrency": self.concurrency,
                    "callback_secret": SECRET,
                    "timeout_s": 10,
                }
            ]
        }
        self.dispatcher = Dispatcher(self.db, self.settings, build_channels(self.settings))
        app = create_app(self.settings, self.db, run_timers=False, dispatcher=self.dispatcher)
        self.client = TestClient(TestServer(app, host="127.0.0.1"))
        await self.client.start_server()
        self.callback_url = (
            f"http://127.0.0.1:{self.client.server.port}/api/v1/callbacks/sms/sim/receipts"
        )
        await self.sim_control(callback_url=self.callback_url)
        self.http = aiohttp.ClientSession()

    async def stop(self) -> None:
        await self.http.close()
        await self.client.close()  # stops the dispatcher with the app
        await self.sim_runner.cleanup()
        await self.db.dispose()

    @property
    def gateway(self) -> SimGateway:
        return self.sim_app[GATEWAY]

    async def sim_control(self, **knobs: Any) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.sim_url}/control", json=knobs) as r,
        ):
            assert r.status == 200, await r.text()

    async def sim_reset(self) -> None:
        async with aiohttp.ClientSession() as http, http.post(f"{self.sim_url}/reset") as r:
            assert r.status == 200, await r.text()
        await self.sim_control(callback_url=self.callback_url)

    async def submit(self, n: int) -> str:
        r = await self.client.post("/api/v1/warnings", json=alert(n), headers=self.agency)
        body = await r.json()
        assert r.status == 202 and body["state"] == "pending", body
        return str(body["id"])

    async def approve(self, warning_id: str) -> None:
        r = await self.client.post(f"/api/v1/warnings/{warning_id}/approve", headers=self.operator)
        assert r.status == 200, await r.text()

    async def cancel(self, warning_id: str) -> None:
        r = await self.client.post(
            f"/api/v1/warnings/{warning_id}/cancel",
            json={"reason": "benchmark run over"},
            headers=self.operator,
        )
        assert r.status == 200, await r.text()

    async def settle(self, warning_id: str, within_s: float = 120) -> None:
        """Wait until the planner has stopped and no row of the warning is being sent or waits
        to be (with ``during_stop``, as soon as nothing is being sent: the bench's ending
        before 2026-11-29, when the next approval could meet this cancel's stop)."""
        waiting = ("sending",) if self.during_stop else ("planned", "queued", "sending")
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            async with self.db.reader() as s:
                left = (
                    await s.execute(
                        select(func.count())
                        .select_from(Delivery)
                        .where(
                            Delivery.warning_id == warning_id,
                            Delivery.state.in_(waiting),
                        )
                    )
                ).scalar_one()
            if not left and warning_id not in self.dispatcher._planning:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError(f"warning {warning_id} did not settle in {within_s} s")

    async def bare_post(self, n: int) -> float:
        """One message POSTed by a bare client: the floor for any message at all."""
        item = {"to": "+8617000000000", "text": "基准", "reference": f"bare-{n}-{time.time_ns()}"}
        started = time.perf_counter()
        async with self.http.post(f"{self.sim_url}/sms", json=item) as r:
            await r.read()
            assert r.status == 200, r.status
        return (time.perf_counter() - started) * 1000

    async def special_needs(self, delivery_ids: list[int]) -> dict[int, bool]:
        async with self.db.reader() as s:
            rows = await s.execute(
                select(Delivery.id, Person.needs)
                .join(Person, Person.id == Delivery.target_id)
                .where(Delivery.id.in_(delivery_ids), Delivery.target_kind == "person")
            )
            return {i: needs != 0 for i, needs in rows.all()}


def delivery_id(reference: str) -> int | None:
    prefix, _, number = reference.rpartition("-")
    return int(number) if prefix and number.isdigit() else None


async def one_run(county: County, n: int, within_s: float = 30) -> dict[str, Any]:
    warning_id = await county.submit(n)
    gateway = county.gateway
    started = time.time()
    await county.approve(warning_id)
    approved_ms = (time.time() - started) * 1000
    # Wait for the first special-needs message. The simulator stamps each message when it
    # accepts it, so this polling only decides when we look, not the figure.
    seen, first_any, first_special = 0, None, None
    deadline = time.monotonic() + within_s
    while first_special is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {n}: no special-needs message within {within_s} s")
        accepted = gateway.accepted[seen:]
        if accepted:
            ids = {m.seq: delivery_id(m.reference) for m in accepted}
            needs = await county.special_needs([i for i in ids.values() if i is not None])
            for m in accepted:
                if first_any is None:
                    first_any = m
                if needs.get(ids[m.seq] or -1):
                    first_special = m
                    break
            seen += len(accepted)
        else:
            await asyncio.sleep(0.002)
    cancel_started = time.perf_counter()
    await county.cancel(warning_id)
    cancel_ms = (time.perf_counter() - cancel_started) * 1000
    await county.settle(warning_id)
    stopped_ms = (time.perf_counter() - cancel_started) * 1000
    bare_ms = await county.bare_post(n)
    await county.sim_reset()
    assert first_any is not None
    return {
        "ms": (first_special.ts - started) * 1000,
        "first_any_ms": (first_any.ts - started) * 1000,
        "same_message": first_any.seq == first_special.seq,
        "approve_http_ms": approved_ms,
        "bare_post_ms": bare_ms,
        "cancel_http_ms": cancel_ms,
        "stopped_ms": stopped_ms,
    }


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


async def measure(
    db_path: Path, runs: int, rate_per_s: float, concurrency: int, during_stop: bool = False
) -> dict[str, Any]:
    county = County(db_path, rate_per_s, concurrency, during_stop)
    await county.start()
    try:
        async with county.db.reader() as s:
            people = (await s.execute(select(func.count()).select_from(Person))).scalar_one()
            targets = 0
            async for batch in Targeter(county.settings).batches(s, Scope((CITY,), "yellow")):
                targets += len(batch)
        warmup = await one_run(county, 0)
        results = [await one_run(county, n) for n in range(1, runs + 1)]
    finally:
        await county.stop()
    ms = [r["ms"] for r in results]
    any_ms = [r["first_any_ms"] for r in results]
    bare = [r["bare_post_ms"] for r in results]
    return {
        "p50_ms": round(nearest_rank(ms, 50), 1),
        "p99_ms": round(nearest_rank(ms, 99), 1),
        "runs": runs,
        "targets": targets,
        "people": people,
        "mean_ms": round(statistics.fmean(ms), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
        "first_any_p50_ms": round(nearest_rank(any_ms, 50), 1),
        "first_any_p99_ms": round(nearest_rank(any_ms, 99), 1),
        "first_is_special_needs": all(r["same_message"] for r in results),
        "approve_http_p50_ms": round(nearest_rank([r["approve_http_ms"] for r in results], 50), 1),
        "baseline_bare_post_p50_ms": round(nearest_rank(bare, 50), 2),
        "baseline_bare_post_p99_ms": round(nearest_rank(bare, 99), 2),
        "cancel_http_p50_ms": round(nearest_rank([r["cancel_http_ms"] for r in results], 50), 1),
        "cancel_http_max_ms": round(max(r["cancel_http_ms"] for r in results), 1),
        "stopped_p50_ms": round(nearest_rank([r["stopped_ms"] for r in results], 50), 1),
        "stopped_max_ms": round(max(r["stopped_ms"] for r in results), 1),
        "warmup_ms": round(warmup["ms"], 1),
        "all_ms": [round(v, 1) for v in ms],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # 102,000 people: a yellow warning reaches 100,000 targets (2 % opted out; devices added).
    parser.add_argument("--people", type=int, default=102_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=2000, help="the SMS gateway's messages/s")
    parser.add_argument("--concurrency", type=int, default=8, help="SMS requests in flight")
    parser.add_argument(
        "--db", type=Path, help="a generated SQLite file to copy (kept; made if missing)"
    )
    parser.add_argument(
        "--during-stop",
        action="store_true",
        help="start each run once nothing of the previous warning is being sent, while the "
        "rest of its rows may still be being stopped (the bench's ending before 2026-11-29)",
    )
    args = parser.parse_args()
    load = round(os.getloadavg()[0], 2)  # other work on this machine when the run began
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "latency.db"
        gen_s = 0.0
        if args.db is not None:
            if not args.db.exists():
                gen_s = generate(args.db, args.people, args.seed)
            work.write_bytes(args.db.read_bytes())
        else:
            gen_s = generate(work, args.people, args.seed)
        figures = asyncio.run(
            measure(work, args.runs, args.rate, args.concurrency, args.during_stop)
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {
        **figures,
        "during_stop": args.during_stop,
        "load_avg_1m": load,
        "peak_rss_mb": round(peak, 1),
        "generate_s": round(gen_s, 1),
        "ok": figures["p99_ms"] <= 250,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
