"""Benchmark: many agencies submitting warnings at once while a large warning is being sent.

    python bench/load.py [--rate 200] [--seconds 60] [--agencies 20] [--people 100000]
                         [--sms-rate 1000]

Everything runs as it is deployed, each part in its own process on 127.0.0.1:

- ``warnpub gateway-sim``: the SMS gateway (receipts posted back to the engine, signed);
- ``warnpub serve``: the engine — API, timers and dispatcher — on SQLite (the embedded
  default), with one SMS gateway instance at ``--sms-rate`` messages/s;
- this process: the setup, the big warning, and the load generator.

A population of ``--people`` is generated (``warnpub demo-data``, in a process of its own).
``--agencies`` agencies are added, each with its own API key, hazard types and area scope (a
town or subdistrict, so it may warn its villages). Agency QX then submits a city-wide yellow
rainstorm warning and operator duty1 approves it over HTTP; once the gateway has accepted its
first SMS, the load starts, so the send runs during the whole window (the simulator's message
count is sampled every second: ``dispatch_sent_during``, and ``dispatch_idle_s`` — seconds of
the window in which no SMS left; with ``people / sms_rate`` shorter than the window, the send
ends inside it and ``dispatch_busy_whole_window`` is false).

The load is open-loop: each agency is an independent client (its own aiohttp session and
connections) that sends at fixed times, ``--rate / --agencies`` per second, the agencies'
schedules staggered so that the total is ``--rate`` evenly spaced; a request is started at its
time whether or not earlier ones have been answered, and its latency is counted from the time it
was scheduled, not from when it was sent, so a stalled server is not hidden by a stalled client
(coordinated omission). ``lag_p99_ms`` is how late the generator itself started requests. An
agency submits JSON or CAP 1.2 XML (``--xml-share`` of the agencies speak XML), new Alerts in its
own hazards and areas at levels blue to red (all pending review: no green channel for these
agencies), a share of them (``--update-share``) Updates of its own last warning, each with an
Idempotency-Key. An error is any answer other than 202 (or 200 for a replay) and any request
that failed or took longer than ``--timeout-s``. Afterwards every accepted id is looked up in the
database: ``stored`` must equal ``accepted``.

Percentiles are nearest-rank over every request scheduled in the window (errors included).
``engine_cpu_pct`` and ``loadgen_cpu_pct`` are the processes' CPU over the window (100 = one
core). Progress goes to stderr; the last line of stdout is one JSON object.

The load itself (:class:`AgencySpec`, :func:`make_agencies`, :func:`drive`, :func:`stored`)
is also what ``tests/test_load_smoke.py`` runs for a few seconds against the in-process app.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import aiohttp
from processes import Processes, free_port, sim_config, wait_http
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Area, Person
from warnpub.auth import agencies as agency_service
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.storage.engine import Database
from warnpub.storage.tables import WarningRecord

BEIJING = timezone(timedelta(hours=8))
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
GEOCODE = "CPEAS Geographic Code"
SECRET = "bench-load-callback-secret"
# Hazards the agencies are given, two each in turn (a water bureau: flood and mountain torrent …).
HAZARDS = (
    "flood",
    "mountain_torrent",
    "landslide",
    "forest_fire",
    "gale",
    "thunderstorm",
    "hail",
    "heat",
    "fog",
    "road_icing",
    "epidemic",
    "public_security",
)
SEVERITIES = ("Minor", "Moderate", "Severe", "Extreme")


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the agencies --------------------------------------------------------------------------------


@dataclass
class AgencySpec:
    """One submitting agency: its key, what it may warn about, where, and how it speaks."""

    code: str
    sender: str
    key: str
    hazards: list[tuple[str, str, str]]  # (code, Chinese name, CAP category)
    town: str
    places: list[str]  # the town and its villages: the areas its warnings name
    xml: bool


async def make_agencies(
    session: AsyncSession, settings: Settings, count: int, *, xml_share: float = 0.5
) -> list[AgencySpec]:
    """``count`` agencies through the real service (keys issued, audited), each scoped to one
    town or subdistrict of the area tree in turn and to two hazard types; the first
    ``round(count * xml_share)`` of every ten speak CAP XML, the others JSON."""
    towns = list(
        (
            await session.execute(
                select(Area.code).where(Area.level.in_(("town", "subdistrict"))).order_by(Area.code)
            )
        ).scalars()
    )
    if not towns:
        raise RuntimeError("the area tree has no towns; load the areas first")
    specs = []
    for i in range(count):
        town = towns[i % len(towns)]
        villages = list(
            (
                await session.execute(
                    select(Area.code).where(Area.parent_code == town).order_by(Area.code)
                )
            ).scalars()
        )
        chosen = [HAZARDS[(2 * i) % len(HAZARDS)], HAZARDS[(2 * i + 1) % len(HAZARDS)]]
        code = f"LOAD{i + 1:02d}"
        sender = f"load{i + 1:02d}@320481"
        added = await agency_service.add_agency(
            session,
            settings,
            code=code,
            name=f"负载测试单位{i + 1:02d}",
            sender=sender,
            hazards=chosen,
            areas=[town],
            actor="bench",
        )
        hazards = [
            (h, settings.cap.hazards[h].zh, settings.cap.hazards[h].category) for h in chosen
        ]
        specs.append(
            AgencySpec(
                code=code,
                sender=sender,
                key=added.key.key,
                hazards=hazards,
                town=town,
                places=[town, *villages],
                xml=(i % 10) < round(10 * xml_share),
            )
        )
    return specs


# -- what an agency sends ------------------------------------------------------------------------


@dataclass
class Message:
    identifier: str
    sent: datetime
    content_type: str
    body: bytes
    idempotency_key: str


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def compose(
    agency: AgencySpec, identifier: str, rng: random.Random, previous: tuple[str, datetime] | None
) -> Message:
    """A new Alert, or (``previous``: its identifier and sent) an Update of it."""
    sent = utcnow().astimezone(BEIJING).replace(microsecond=0)
    _, event, category = rng.choice(agency.hazards)
    severity = rng.choice(SEVERITIES)
    place = rng.choice(agency.places)
    expires = sent + timedelta(hours=6)
    headline = f"{event}预警（负载测试 {identifier}）"
    description = f"负载测试：{event}可能影响本区域，请关注后续信息。"
    instruction = "注意防范，服从当地指挥。"
    reference = (
        f"{agency.sender},{previous[0]},{_iso(previous[1])}" if previous is not None else None
    )
    msg_type = "Update" if reference else "Alert"
    if agency.xml:
        refs = f"<references>{escape(reference)}</references>" if reference else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<alert xmlns="{CAP_NS}">'
            f"<identifier>{escape(identifier)}</identifier>"
            f"<sender>{escape(agency.sender)}</sender>"
            f"<sent>{_iso(sent)}</sent>"
            "<status>Actual</status>"
            f"<msgType>{msg_type}</msgType>"
            "<scope>Public</scope>"
            f"{refs}"
            "<info>"
            "<language>zh-CN</language>"
            f"<category>{category}</category>"
            f"<event>{escape(event)}</event>"
            "<urgency>Expected</urgency>"
            f"<severity>{severity}</severity>"
            "<certainty>Likely</certainty>"
            f"<expires>{_iso(expires)}</expires>"
            f"<senderName>{escape(agency.code)}</senderName>"
            f"<headline>{escape(headline)}</headline>"
            f"<description>{escape(description)}</description>"
            f"<instruction>{escape(instruction)}</instruction>"
            "<area>"
            f"<areaDesc>{place}</areaDesc>"
            f"<geocode><valueName>{GEOCODE}</valueName><value>{place}</value></geocode>"
            "</area>"
            "</info>"
            "</alert>"
        ).encode()
        content_type = "application/cap+xml"
    else:
        doc: dict[str, Any] = {
            "identifier": identifier,
            "sender": agency.sender,
            "sent": _iso(sent),
            "status": "Actual",
            "msg_type": msg_type,
            "scope": "Public",
            "infos": [
                {
                    "language": "zh-CN",
                    "categories": [category],
                    "event": event,
                    "urgency": "Expected",
                    "severity": severity,
                    "certainty": "Likely",
                    "expires": _iso(expires),
                    "sender_name": agency.code,
                    "headline": headline,
                    "description": description,
                    "instruction": instruction,
                    "areas": [
                        {
                            "area_desc": place,
                            "geocodes": [{"value_name": GEOCODE, "value": place}],
                        }
                    ],
                }
            ],
        }
        if reference:
            doc["references"] = [reference]
        body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
        content_type = "application/json"
    return Message(identifier, sent, content_type, body, f"{identifier}-key")


# -- the open-loop driver ------------------------------------------------------------------------


@dataclass
class Request:
    agency: str
    scheduled: float  # loop time the request was due
    started: float = 0.0
    finished: float = 0.0
    status: int | None = None
    warning_id: str | None = None
    error: str | None = None

    @property
    def latency_ms(self) -> float:
        return (self.finished - self.scheduled) * 1000

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class LoadResult:
    rate_per_s: float
    seconds: float
    requests: list[Request] = field(default_factory=list)

    @property
    def accepted_ids(self) -> list[str]:
        return [r.warning_id for r in self.requests if r.ok and r.warning_id]

    def errors(self) -> list[Request]:
        return [r for r in self.requests if not r.ok]

    def figures(self) -> dict[str, Any]:
        latencies = [r.latency_ms for r in self.requests]
        lags = [(r.started - r.scheduled) * 1000 for r in self.requests]
        by_status: dict[str, int] = {}
        for r in self.requests:
            key = str(r.status) if r.status is not None else (r.error or "?").split(":")[0]
            by_status[key] = by_status.get(key, 0) + 1
        start = self.requests[0].scheduled if self.requests else 0.0
        by_10s: dict[int, list[float]] = {}
        for r in self.requests:
            by_10s.setdefault(int((r.scheduled - start) // 10), []).append(r.latency_ms)
        return {
            "rate_per_s": self.rate_per_s,
            "seconds": self.seconds,
            "p50_ms": _round(nearest_rank(latencies, 50)),
            "p99_ms": _round(nearest_rank(latencies, 99)),
            "errors": len(self.errors()),
            "submitted": len(self.requests),
            "accepted": len(self.accepted_ids),
            "p90_ms": _round(nearest_rank(latencies, 90)),
            "p999_ms": _round(nearest_rank(latencies, 99.9)),
            "max_ms": _round(max(latencies) if latencies else None),
            "lag_p99_ms": _round(nearest_rank(lags, 99)),
            "lag_max_ms": _round(max(lags) if lags else None),
            "answers": by_status,
            # p99 of the requests scheduled in each 10 s of the window, in order
            "p99_ms_by_10s": [_round(nearest_rank(by_10s[k], 99)) for k in sorted(by_10s)],
        }


def nearest_rank(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


class AgencyClient:
    """One agency's own client: its own session and connections, its own schedule."""

    def __init__(
        self, spec: AgencySpec, base_url: str, run: str, timeout_s: float, update_share: float
    ) -> None:
        self.spec, self.base_url, self.run = spec, base_url, run
        self.timeout_s, self.update_share = timeout_s, update_share
        self.rng = random.Random(f"{run}-{spec.code}")
        self.sent = 0
        self.last: tuple[str, datetime] | None = None  # its last accepted warning
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AgencyClient:
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            headers={"Authorization": f"Bearer {self.spec.key}"},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.close()

    async def schedule(
        self, start: float, interval: float, count: int, out: list[Request]
    ) -> list[asyncio.Task[None]]:
        """Start ``count`` requests at ``start + k·interval``, each as its own task."""
        loop = asyncio.get_running_loop()
        tasks = []
        for k in range(count):
            due = start + k * interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            req = Request(self.spec.code, due)
            out.append(req)
            tasks.append(asyncio.create_task(self.send(req)))
        return tasks

    async def send(self, req: Request) -> None:
        assert self.http is not None
        loop = asyncio.get_running_loop()
        self.sent += 1
        identifier = f"{self.run}-{self.spec.code}-{self.sent:06d}"
        previous = self.last if self.rng.random() < self.update_share else None
        msg = compose(self.spec, identifier, self.rng, previous)
        req.started = loop.time()
        try:
            async with self.http.post(
                f"{self.base_url}/api/v1/warnings",
                data=msg.body,
                headers={"Content-Type": msg.content_type, "Idempotency-Key": msg.idempotency_key},
            ) as answer:
                text = await answer.text()
                req.status = answer.status
            req.finished = loop.time()
            if answer.status not in (200, 202):
                req.error = f"HTTP {answer.status}: {text[:300]}"
                return
            body = json.loads(text)
            if body.get("state") != "pending" or not body.get("id"):
                req.error = f"unexpected answer: {text[:300]}"
                return
            req.warning_id = str(body["id"])
            self.last = (identifier, msg.sent)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            req.finished = loop.time()
            req.error = f"{type(exc).__name__}: {exc}"[:300]


async def drive(
    base_url: str,
    agencies: list[AgencySpec],
    *,
    rate: float,
    seconds: float,
    timeout_s: float = 30.0,
    update_share: float = 0.1,
    run: str | None = None,
) -> LoadResult:
    """Open-loop load: ``rate`` submissions/s in total for ``seconds``, spread evenly over the
    agencies, each on its own client; latency from each request's scheduled time."""
    run = run or f"load{int(time.time())}"
    n = len(agencies)
    per_agency = rate / n
    interval = 1 / per_agency
    count = round(per_agency * seconds)
    result = LoadResult(rate, seconds)
    clients = [AgencyClient(a, base_url, run, timeout_s, update_share) for a in agencies]
    for c in clients:
        await c.__aenter__()
    try:
        start = asyncio.get_running_loop().time() + 0.1
        # Agency i's k-th request is slot k·n + i of one evenly spaced schedule at ``rate``.
        scheduled = await asyncio.gather(
            *(
                c.schedule(start + i / rate, interval, count, result.requests)
                for i, c in enumerate(clients)
            )
        )
        await asyncio.gather(*(t for tasks in scheduled for t in tasks))
    finally:
        for c in clients:
            await c.__aexit__()
    result.requests.sort(key=lambda r: r.scheduled)
    return result


async def stored(db: Database, ids: list[str]) -> int:
    """How many of ``ids`` are warnings in the database."""
    found = 0
    async with db.reader() as s:
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            found += int(
                (
                    await s.execute(
                        select(func.count())
                        .select_from(WarningRecord)
                        .where(WarningRecord.id.in_(chunk))
                    )
                ).scalar_one()
            )
    return found


# -- processes -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SimCounter:
    """Samples the simulator's count of accepted messages once a second."""

    def __init__(self, sim_url: str) -> None:
        self.sim_url = sim_url
        self.samples: list[tuple[float, int]] = []
        self.http = aiohttp.ClientSession()

    async def count(self) -> int:
        async with self.http.get(f"{self.sim_url}/stats", params={"numbers": "0"}) as r:
            return int((await r.json())["unique_references"])

    async def sample_until(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            self.samples.append((loop.time(), await self.count()))
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass

    async def close(self) -> None:
        await self.http.close()


# -- the run -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from common import (  # bench/ is on sys.path
        add_duty_operator,
        add_weather_bureau,
        generate,
        yellow_rainstorm,
    )

    from warnpub.config import load_settings

    db_path = work / "load.db"
    url = f"sqlite+aiosqlite:///{db_path}"
    generate_s = 0.0
    source = args.db if args.db is not None else work / "population.db"
    if not source.exists():
        log(f"generating {args.people:,} people into {source}")
        generate_s = generate(source, args.people, args.seed)
    shutil.copyfile(source, db_path)
    sim_port, api_port = free_port(), free_port()
    sim_url, api = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{api_port}"
    env = {
        **os.environ,
        "WARNPUB_DATABASE_URL": url,
        "WARNPUB_LOGGING_LEVEL": "WARNING",
        "WARNPUB_SERVER_PUBLIC_URL": api,
        "WARNPUB_CONFIG": str(
            sim_config(work / "load.toml", sim_url, args.sms_rate, callback_secret=SECRET)
        ),
    }
    settings = load_settings(environ=env)
    db = Database(url)
    try:
        async with db.session() as s:
            qx_key = await add_weather_bureau(s, settings)
            token = await add_duty_operator(s, 24 * 60)
            specs = await make_agencies(s, settings, args.agencies, xml_share=args.xml_share)
            people = int((await s.execute(select(func.count()).select_from(Person))).scalar_one())
    finally:
        await db.dispose()
    procs = Processes(work, env)
    counter: SimCounter | None = None
    try:
        procs.start(
            "gateway-sim",
            "gateway-sim",
            "--port",
            str(sim_port),
            "--callback-url",
            f"{api}/api/v1/callbacks/sms/sim/receipts",
            "--secret",
            SECRET,
            "--receipt-delay-ms",
            "200",
        )
        procs.start("engine", "serve", "--host", "127.0.0.1", "--port", str(api_port))
        await wait_http(f"{sim_url}/health", procs, "gateway-sim")
        await wait_http(f"{api}/api/v1/openapi.json", procs, "engine")
        log(
            f"engine pid {procs.pid('engine')} at {api}; gateway-sim pid {procs.pid('gateway-sim')}"
        )
        counter = SimCounter(sim_url)
        alert = yellow_rainstorm(f"bench-load-{time.time_ns()}")
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{api}/api/v1/warnings", json=alert, headers={"Authorization": f"Bearer {qx_key}"}
            ) as r:
                body = await r.json()
                assert r.status == 202, body
            big = str(body["id"])
            async with http.post(
                f"{api}/api/v1/warnings/{big}/approve",
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                assert r.status == 200, await r.text()
        approved = time.monotonic()
        log(f"big warning {big} approved; waiting for its first SMS")
        while await counter.count() == 0:
            procs.check("engine")
            if time.monotonic() - approved > 120:
                raise RuntimeError("no SMS reached the gateway within 120 s of the approval")
            await asyncio.sleep(0.05)
        first_sms_s = time.monotonic() - approved
        if args.settle_s > 0:
            await asyncio.sleep(args.settle_s)
        log(
            f"first SMS after {first_sms_s:.2f} s; load: {args.rate:g}/s for {args.seconds:g} s "
            f"from {args.agencies} agencies"
        )
        stop = asyncio.Event()
        sampler = asyncio.create_task(counter.sample_until(stop))
        engine_cpu0, own0 = cpu_seconds(procs.pid("engine")), time.process_time()
        sim_cpu0 = cpu_seconds(procs.pid("gateway-sim"))
        load_start = os.getloadavg()[0]
        wall0 = time.monotonic()
        result = await drive(
            api,
            specs,
            rate=args.rate,
            seconds=args.seconds,
            timeout_s=args.timeout_s,
            update_share=args.update_share,
        )
        wall = time.monotonic() - wall0
        engine_cpu = cpu_seconds(procs.pid("engine")) - engine_cpu0
        sim_cpu = cpu_seconds(procs.pid("gateway-sim")) - sim_cpu0
        own_cpu = time.process_time() - own0
        stop.set()
        await sampler
        procs.check("engine")
        figures = result.figures()
        for r in result.errors()[:5]:
            log(f"error from {r.agency}: {r.error}")
        db = Database(url)
        try:
            stored_n = await stored(db, result.accepted_ids)
        finally:
            await db.dispose()
        # The send during the window: the simulator's samples (one a second) from the first
        # request's scheduled time to the last one's.
        first_due = result.requests[0].scheduled if result.requests else 0.0
        last_due = result.requests[-1].scheduled if result.requests else first_due
        window = [(t, n) for t, n in counter.samples if first_due - 1 <= t <= last_due + 1]
        sent_during = window[-1][1] - window[0][1] if len(window) > 1 else 0
        idle = sum(1 for a, b in itertools.pairwise(window) if b[1] == a[1])
        expected = await counter.count()
        figures.update(
            {
                "stored": stored_n,
                "dispatch_sent_during": sent_during,
                "dispatch_per_s_during": round(
                    sent_during / max(1e-9, window[-1][0] - window[0][0]), 1
                )
                if len(window) > 1
                else 0.0,
                "dispatch_idle_s": idle,
                "dispatch_busy_whole_window": idle == 0 and sent_during > 0,
                "dispatch_sent_total": expected,
                "first_sms_s": round(first_sms_s, 2),
                "agencies": args.agencies,
                "xml_agencies": sum(1 for a in specs if a.xml),
                "people": people,
                "sms_rate": args.sms_rate,
                "wall_s": round(wall, 1),
                "engine_cpu_pct": round(100 * engine_cpu / wall, 1),
                "gateway_sim_cpu_pct": round(100 * sim_cpu / wall, 1),
                "loadgen_cpu_pct": round(100 * own_cpu / wall, 1),
                "load_avg_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
                "generate_s": round(generate_s, 1),
            }
        )
        return figures
    finally:
        if counter is not None:
            await counter.close()
        procs.stop_all()
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for name in ("engine.log", "gateway-sim.log", "load.db"):
                if (work / name).exists():
                    shutil.copyfile(work / name, args.keep / name)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200, help="submissions per second, in all")
    parser.add_argument("--seconds", type=float, default=60, help="length of the load window")
    parser.add_argument("--agencies", type=int, default=20, help="agencies submitting at once")
    parser.add_argument(
        "--people", type=int, default=100_000, help="people the big warning targets"
    )
    parser.add_argument(
        "--sms-rate", type=float, default=1000, help="the SMS gateway instance's messages/s"
    )
    parser.add_argument("--xml-share", type=float, default=0.5, help="share of agencies on CAP XML")
    parser.add_argument(
        "--update-share", type=float, default=0.1, help="share of submissions that are Updates"
    )
    parser.add_argument("--timeout-s", type=float, default=30, help="a request slower is an error")
    parser.add_argument(
        "--settle-s", type=float, default=0, help="wait after the first SMS before the load"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--db",
        type=Path,
        help="a population SQLite file to copy (kept; generated with --people if missing)",
    )
    parser.add_argument(
        "--keep", type=Path, help="copy the engine's log and database into this folder"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="warnpub-load-") as tmp:
        figures = asyncio.run(run(args, Path(tmp)))
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
