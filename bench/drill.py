"""Benchmark: a city-wide drill, special needs first versus first come, first served.

    python bench/drill.py --people 100000 --sms-rate 1000

Generates a population with `warnpub demo-data` in a separate process, then runs the same drill
twice, each time on a fresh copy of that database: the application with its Dispatcher
(planner, SMS, voice and visit workers, sweeper) on SQLite in this process, and its peers in
another (bench/drill_peers.py): the real gateway simulator (``create_sim_app``: SMS with
delivery receipts, voice calls answered with "press 1") on 127.0.0.1 and the simulated
village contacts — other systems and other people, whose work is not charged to the engine.
Every message, receipt and reply goes over HTTP. The drill is an Exercise warning for the
whole city (audience ``area``), submitted as agency QX and approved by one operator, through
:mod:`warnpub.drills.run` — the path of ``warnpub drill run``. Once with ``[dispatch]
priority_order = "tiers"`` (the priority policy: special needs first, visit lists ahead of
the warning), once with ``"fifo"`` (first come, first served: every target the same
priority, in the order people are read, and a visit list behind what was queued before it).

The village contacts (:mod:`warnpub.lastkm.contact_sim`, polling the gateway simulator's
accepted messages and replying through its inbound callback) acknowledge by reply code
``--ack-delay-s`` after the message, and visit the people on their visit lists (the
``relay`` channel) — ``--visit-delay-s`` to the first person, ``--visit-per-person-s`` to
each further one — then report the list in one reply ("4821 1 2 …"; ``--report each``:
each person as told, "4821 2"). The gateway simulator takes replies as a carrier does
(``inbound_mode = "queue"``): stamped when sent, answered at once, forwarded to the app over a
few connections with retries — so a visit counts from when the contact's report reached the
gateway, however long the engine then takes to record it (``replies_lost_at_gateway`` counts
any it never took). The defaults are prompt contacts (1 s, 2 s, 0.2 s): walking
takes the same minutes under both policies, so it is left out of the comparison by default;
``--visit-delay-s 20 --visit-per-person-s 5`` puts it back. Both runs use the same
simulators and the same delays.

Each figure is the time from approval (the warning's ``decided_at``) until 99 % of a group of
people were reached — delivered (the gateway's receipt, or the voice call answered),
acknowledged, or told in person (their visit reported by the simulated contact: the relay
delivery is then delivered and acknowledged) — nearest rank over the group. The groups are
everyone targeted and the special-needs people among them, with or without a phone; the
special-needs people with a phone (the figures before visits were counted) and those without
one are also given apart.
Prints the figures as one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from common import CITY, add_weather_bureau, generate
from sqlalchemy import func, select

from warnpub.api.app import create_app
from warnpub.audiences.tables import Person
from warnpub.auth import operators
from warnpub.channels.registry import build_channels
from warnpub.config import Settings, load_settings
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.drills.audience import DrillAudience
from warnpub.drills.run import approve_drill, submit_drill, wait_for_end
from warnpub.lastkm.tables import Notice, VisitTask
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery, InboundMessage, WarningRecord

SECRET = "bench-callback-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nearest_rank(values: list[float], p: float, of: int) -> float | None:
    """The ⌈p·of⌉-th smallest of ``values`` (the reached ones of ``of`` people); None when
    fewer than that were reached."""
    need = max(1, math.ceil(p / 100 * of))
    if len(values) < need:
        return None
    return sorted(values)[need - 1]


async def one_drill(
    db_path: Path, order: str, sms_rate: float, voice_rate: float, walk: argparse.Namespace
) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{db_path}"
    settings: Settings = load_settings(
        environ={"WARNPUB_DATABASE_URL": url, "WARNPUB_LOGGING_LEVEL": "WARNING"}
    )
    settings.dispatch.priority_order = order  # type: ignore[assignment]
    db = Database(url)
    async with db.session() as s:
        await add_weather_bureau(s, settings)
        await operators.add_operator(
            s, username="duty1", display_name="duty1", role="operator", password="x" * 12, actor="bench"
        )
    peers = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("drill_peers.py")),
        "--secret",
        SECRET,
        "--receipt-delay-ms",
        "200",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert peers.stdin is not None and peers.stdout is not None
    sim_url = json.loads(await peers.stdout.readline())["sim_url"]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings.channels = {
        "sms": [
            {
                "name": "sim",
                "adapter": "http_json",
                "url": f"{sim_url}/sms",
                "batch_url": f"{sim_url}/sms/batch",
                "rate_per_s": sms_rate,
                "concurrency": 8,
                "callback_secret": SECRET,
                "timeout_s": 10,
            }
        ],
        "voice": [
            {
                "name": "voice",
                "adapter": "http_voice",
                "url": f"{sim_url}/voice/calls",
                "callback_url": f"{base}/api/v1/callbacks/voice/voice/outcomes",
                "callback_secret": SECRET,
                "rate_per_s": voice_rate,
                "retry_interval_s": 5,
            }
        ],
        "relay": [{"name": "visits", "adapter": "visit", "receipt_timeout_s": 3600}],
    }
    dispatcher = Dispatcher(db, settings, build_channels(settings))
    server = TestServer(
        create_app(settings, db, run_timers=False, dispatcher=dispatcher), host="127.0.0.1", port=port
    )
    await server.start_server()
    callbacks = f"{base}/api/v1/callbacks/sms/sim"
    contact_options = {
        # Replies are stamped when the gateway takes them and forwarded with retries, as a
        # carrier does: a slow app never holds a contact's phone up.
        "control": {
            "callback_url": f"{callbacks}/receipts",
            "inbound_url": f"{callbacks}/inbound",
            "inbound_mode": "queue",
        },
        "phones": sorted(await _asked_phones(db, settings)),
        "delay_s": walk.ack_delay_s,
        "visit_delay_s": walk.visit_delay_s,
        "visit_per_person_s": walk.visit_per_person_s,
        "report_each": walk.report == "each",
        "concurrency": walk.contact_concurrency,
        "poll_s": 0.5,
    }
    peers.stdin.write((json.dumps(contact_options) + "\n").encode())
    await peers.stdin.drain()
    assert json.loads(await peers.stdout.readline()) == {"contacts": "started"}
    try:
        drill = await submit_drill(db, settings, area=CITY, audience=DrillAudience("area"))
        started = time.monotonic()
        await approve_drill(db, settings, drill, ["duty1"], base=base)
        people = await _count(db)
        state = await wait_for_end(db, drill, wait_s=people / sms_rate * 2 + 600, poll_s=1)
        wall = time.monotonic() - started
        figures = await _figures(db, drill.warning_id)
    finally:
        peers.stdin.close()
        c = json.loads(await peers.stdout.readline())["stats"]
        await peers.wait()
        await server.close()  # stops the dispatcher with the app
        await db.dispose()
    simulated = {
        "contact_acks": c["acks_sent"],
        "visit_lists": c["visit_lists"],
        "visits_reported": c["visits_reported"],
        "replies_failed": c["replies_failed"],
        "replies_lost_at_gateway": c["inbound_lost"],
    }
    return {**figures, **simulated, "state": state, "wall_s": round(wall, 1)}


async def _asked_phones(db: Database, settings: Settings) -> set[str]:
    """The numbers of the people asked to acknowledge (village contacts, duty officers)."""
    roles = settings.audiences.ack_required.roles
    async with db.reader() as s:
        rows = await s.execute(
            select(Person.phone).where(Person.role.in_(roles), Person.phone.is_not(None))
        )
        return {str(p) for p in rows.scalars()}


async def _count(db: Database) -> int:
    async with db.reader() as s:
        return int((await s.execute(select(func.count()).select_from(Person))).scalar_one())


async def _figures(db: Database, warning_id: str) -> dict[str, Any]:
    async with db.reader() as s:
        approved = (
            await s.execute(select(WarningRecord.decided_at).where(WarningRecord.id == warning_id))
        ).scalar_one()
        reached: dict[int, float] = {}
        targeted: set[int] = set()
        rows = await s.execute(
            select(Delivery.target_id, Delivery.state, Delivery.final_at, Delivery.acknowledged_at)
            .where(Delivery.warning_id == warning_id, Delivery.target_kind == "person")
        )
        for pid, state, final_at, ack_at in rows.all():
            targeted.add(pid)
            times = [t for t in ((final_at if state == "delivered" else None), ack_at) if t]
            if times:
                at = (min(times) - approved).total_seconds()
                reached[pid] = min(at, reached.get(pid, at))
        people = await s.execute(select(Person.id, Person.needs, Person.phone.is_not(None)))
        special: list[int] = []
        special_phone: list[int] = []
        special_no_phone: list[int] = []
        for pid, needs, phone in people.all():
            if pid not in targeted or not needs:
                continue
            special.append(pid)
            (special_phone if phone else special_no_phone).append(pid)
        # When the last reply reached the gateway, and when the engine had recorded the last
        # visit report (its answer is written in the same transaction).
        last_reply = (await s.execute(select(func.max(InboundMessage.received_at)))).scalar()
        last_recorded = (
            await s.execute(
                select(func.max(Notice.created_at)).where(
                    Notice.warning_id == warning_id, Notice.kind == "report_answer"
                )
            )
        ).scalar()
        tasks = dict(
            (
                await s.execute(
                    select(VisitTask.state, func.count())
                    .where(VisitTask.warning_id == warning_id)
                    .group_by(VisitTask.state)
                )
            ).all()
        )

    def times(group: list[int]) -> list[float]:
        return [reached[p] for p in group if p in reached]

    sn, sn_phone, sn_none = times(special), times(special_phone), times(special_no_phone)
    everyone = list(reached.values())
    return {
        "targeted_people": len(targeted),
        "reached_people": len(everyone),
        "special_needs_targeted": len(special),
        "special_needs_reached": len(sn),
        "special_needs_with_phone": len(special_phone),
        "special_needs_without_phone": len(special_no_phone),
        "special_needs_without_phone_reached": len(sn_none),
        "visit_tasks": sum(tasks.values()),
        "visits_done": int(tasks.get("done", 0)),
        "special_needs_p50_s": _round(nearest_rank(sn, 50, len(special))),
        "special_needs_p99_s": _round(nearest_rank(sn, 99, len(special))),
        "special_needs_with_phone_p99_s": _round(nearest_rank(sn_phone, 99, len(special_phone))),
        "special_needs_without_phone_p99_s": _round(
            nearest_rank(sn_none, 99, len(special_no_phone))
        ),
        "general_p99_s": _round(nearest_rank(everyone, 99, len(targeted))),
        "last_reply_s": _round((last_reply - approved).total_seconds()) if last_reply else None,
        "last_report_recorded_s": (
            _round((last_recorded - approved).total_seconds()) if last_recorded else None
        ),
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--sms-rate", type=float, default=1000, help="the SMS gateway's messages/s")
    parser.add_argument("--voice-rate", type=float, default=100, help="voice calls started per s")
    # Prompt contacts by default: the walk is the village's, not the engine's, and the same
    # minutes under both policies (docs/performance.md gives figures with realistic walks).
    parser.add_argument(
        "--ack-delay-s", type=float, default=1, help="simulated contacts acknowledge after this"
    )
    parser.add_argument(
        "--visit-delay-s", type=float, default=2, help="the walk to the first person on a visit list"
    )
    parser.add_argument(
        "--visit-per-person-s", type=float, default=0.2, help="the walk to each further person"
    )
    parser.add_argument(
        "--report",
        choices=("list", "each"),
        default="list",
        help="contacts report a whole visit list in one reply (default), or each person as told",
    )
    parser.add_argument(
        "--report-per-list",
        dest="report",
        action="store_const",
        const="list",
        help="the same as --report list (kept for the commands in docs/performance.md)",
    )
    parser.add_argument(
        "--contact-concurrency",
        type=int,
        default=64,
        help="replies the simulated contacts have in flight at once (each contact is a person)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--db", type=Path, help="a generated SQLite file to copy (kept; made if missing)"
    )
    parser.add_argument(
        "--only",
        choices=("tiers", "fifo"),
        help="run one policy only (to look at it closer; prints no ratio)",
    )
    parser.add_argument(
        "--keep", type=Path, help="copy each run's database into this folder (for a closer look)"
    )
    args = parser.parse_args()
    load = round(os.getloadavg()[0], 2)
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = args.db if args.db is not None else Path(tmp) / "population.db"
        gen_s = 0.0
        if not source.exists():
            gen_s = generate(source, args.people, args.seed)
        for order in (args.only,) if args.only else ("tiers", "fifo"):
            work = Path(tmp) / f"drill-{order}.db"
            shutil.copyfile(source, work)
            runs[order] = asyncio.run(
                one_drill(work, order, args.sms_rate, args.voice_rate, args)
            )
            print(json.dumps({"priority_order": order, **runs[order]}), flush=True)
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(work, args.keep / work.name)
    if args.only:
        return
    tiers, fifo = runs["tiers"], runs["fifo"]

    def ratio(key: str) -> float | None:
        ours, theirs = tiers[key], fifo[key]
        return round(theirs / ours, 2) if ours and theirs else None

    r = ratio("special_needs_p99_s")
    print(
        json.dumps(
            {
                "people": args.people,
                "special_needs_p99_s": tiers["special_needs_p99_s"],
                "general_p99_s": tiers["general_p99_s"],
                "fifo_special_needs_p99_s": fifo["special_needs_p99_s"],
                "fifo_general_p99_s": fifo["general_p99_s"],
                "ratio": r,
                # From the unrounded times: 4.96 is not 5.
                "ok": bool(tiers["special_needs_p99_s"])
                and fifo["special_needs_p99_s"] >= 5 * tiers["special_needs_p99_s"],
                "special_needs_with_phone_p99_s": tiers["special_needs_with_phone_p99_s"],
                "fifo_special_needs_with_phone_p99_s": fifo["special_needs_with_phone_p99_s"],
                "ratio_with_phone": ratio("special_needs_with_phone_p99_s"),
                "special_needs_without_phone_p99_s": tiers["special_needs_without_phone_p99_s"],
                "fifo_special_needs_without_phone_p99_s": fifo["special_needs_without_phone_p99_s"],
                "sms_rate": args.sms_rate,
                "ack_delay_s": args.ack_delay_s,
                "visit_delay_s": args.visit_delay_s,
                "visit_per_person_s": args.visit_per_person_s,
                "report_each": args.report == "each",
                "contact_concurrency": args.contact_concurrency,
                "special_needs_targeted": tiers["special_needs_targeted"],
                "special_needs_reached": [tiers["special_needs_reached"], fifo["special_needs_reached"]],
                "special_needs_with_phone": tiers["special_needs_with_phone"],
                "special_needs_without_phone": tiers["special_needs_without_phone"],
                "targeted_people": tiers["targeted_people"],
                "reached_people": [tiers["reached_people"], fifo["reached_people"]],
                "last_reply_s": [tiers["last_reply_s"], fifo["last_reply_s"]],
                "last_report_recorded_s": [
                    tiers["last_report_recorded_s"],
                    fifo["last_report_recorded_s"],
                ],
                "replies_lost_at_gateway": [
                    tiers["replies_lost_at_gateway"],
                    fifo["replies_lost_at_gateway"],
                ],
                "visits_done": [tiers["visits_done"], fifo["visits_done"]],
                "visit_tasks": [tiers["visit_tasks"], fifo["visit_tasks"]],
                "contact_acks": [tiers["contact_acks"], fifo["contact_acks"]],
                "special_needs_p50_s": tiers["special_needs_p50_s"],
                "fifo_special_needs_p50_s": fifo["special_needs_p50_s"],
                "states": [tiers["state"], fifo["state"]],
                "wall_s": [tiers["wall_s"], fifo["wall_s"]],
                "load_avg_1m": load,
                "generate_s": round(gen_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
