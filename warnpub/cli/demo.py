"""``warnpub demo``: a demo county (Liyang) with agencies, operators and warnings, served locally.

Everything goes through the real paths: migrations, the area loader, the agency and operator
services, and the HTTP API for the sample warnings. The channels are simulated in this
process: the SMS and voice gateway simulator on loopback, loudspeaker groups on an embedded MQTT
broker, and village contacts (warnpub/lastkm/contact_sim.py) who answer the SMS they get with
reply codes and visit reports — all but one, whose silence shows the escalation ladder.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from warnpub.audiences.areas import liyang_csv, load_areas
from warnpub.audiences.demo_data import DemoOptions, generate
from warnpub.auth import agencies, operators
from warnpub.auth.secrets import generate_password
from warnpub.cli.common import run, transaction
from warnpub.cli.running import serve_until_stopped
from warnpub.clock import utcnow
from warnpub.config import LadderConfig, Settings
from warnpub.embedded_broker import embedded_broker
from warnpub.gatewaysim.app import create_sim_app
from warnpub.lastkm.contact_sim import ContactSim, ContactSimOptions
from warnpub.speakersim import SimOptions, SpeakerSim
from warnpub.storage.migrate import upgrade

BEIJING = timezone(timedelta(hours=8))
CITY = "320481000000"

AGENCIES = [
    (
        "QX",
        "溧阳市气象局",
        "qx@320481",
        [
            "rainstorm",
            "typhoon",
            "gale",
            "thunderstorm",
            "hail",
            "heat",
            "cold_wave",
            "blizzard",
            "fog",
            "road_icing",
        ],
    ),
    ("SL", "溧阳市水利局", "sl@320481", ["flood"]),
    ("ZRZY", "溧阳市自然资源和规划局", "zrzy@320481", ["landslide", "mountain_torrent"]),
    ("WJ", "溧阳市卫生健康委员会", "wj@320481", ["epidemic"]),
    ("GA", "溧阳市公安局", "ga@320481", ["public_security"]),
]
OPERATORS = [
    ("duty1", "值班员一", "operator"),
    ("duty2", "值班员二", "operator"),
    ("chief", "值班领导", "supervisor"),
    ("admin", "系统管理员", "admin"),
]


def _alert_json(
    level_severity: str, event: str, headline: str, area_desc: str, code: str, hours: int
) -> dict[str, Any]:
    sent = utcnow().astimezone(BEIJING).replace(microsecond=0)
    return {
        "sent": sent.isoformat(),
        "status": "Actual",
        "msg_type": "Alert",
        "scope": "Public",
        "infos": [
            {
                "language": "zh-CN",
                "categories": ["Met"],
                "event": event,
                "urgency": "Immediate",
                "severity": level_severity,
                "certainty": "Likely",
                "expires": (sent + timedelta(hours=hours)).isoformat(),
                "sender_name": "溧阳市气象局",
                "headline": headline,
                "description": f"{headline}。请注意防范。",
                "instruction": "减少外出，远离河道和低洼地带。",
                "areas": [
                    {
                        "area_desc": area_desc,
                        "geocodes": [{"value_name": "CPEAS Geographic Code", "value": code}],
                    }
                ],
            }
        ],
    }


def _cap_xml(sender: str, identifier: str) -> str:
    sent = utcnow().astimezone(BEIJING).replace(microsecond=0)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier>
  <sender>{sender}</sender>
  <sent>{sent.isoformat()}</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>洪水</event>
    <urgency>Expected</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <expires>{(sent + timedelta(hours=12)).isoformat()}</expires>
    <senderName>溧阳市水利局</senderName>
    <headline>溧阳市水利局发布洪水橙色预警</headline>
    <description>受持续强降雨影响，天目湖镇沿河地区水位将超过警戒水位。</description>
    <instruction>沿河低洼地区群众请做好转移准备。</instruction>
    <area>
      <areaDesc>天目湖镇</areaDesc>
      <geocode><valueName>CPEAS Geographic Code</valueName><value>320481106000</value></geocode>
    </area>
  </info>
</alert>
"""


async def _setup(settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    keys: dict[str, str] = {}
    passwords: dict[str, str] = {}
    async with transaction(settings) as s:
        await load_areas(s, liyang_csv())
        for code, name, sender, hazards in AGENCIES:
            new = await agencies.add_agency(
                s,
                settings,
                code=code,
                name=name,
                sender=sender,
                hazards=hazards,
                areas=[CITY],
                actor="demo",
            )
            keys[code] = new.key.key
        for username, display, role in OPERATORS:
            passwords[username] = generate_password()
            await operators.add_operator(
                s,
                username=username,
                display_name=display,
                role=role,
                password=passwords[username],
                actor="demo",
            )
    return keys, passwords


async def _submit_samples(base: str, keys: dict[str, str]) -> list[dict[str, Any]]:
    answers = []
    async with aiohttp.ClientSession(base) as http:
        samples = [
            (
                "QX",
                _alert_json(
                    "Minor", "暴雨", "溧阳市气象台发布暴雨蓝色预警", "社渚镇", "320481116000", 6
                ),
            ),
            (
                "QX",
                _alert_json("Extreme", "暴雨", "溧阳市气象台发布暴雨红色预警", "溧阳市", CITY, 12),
            ),
            (
                "ZRZY",
                _alert_json(
                    "Moderate",
                    "地质灾害",
                    "溧阳市自然资源局发布地质灾害黄色预警",
                    "戴埠镇",
                    "320481103000",
                    24,
                ),
            ),
        ]
        for code, doc in samples:
            async with http.post(
                "/api/v1/warnings", json=doc, headers={"Authorization": f"Bearer {keys[code]}"}
            ) as r:
                answers.append(await r.json())
        xml = _cap_xml("sl@320481", f"sl-demo-{utcnow():%Y%m%d%H%M%S}")
        async with http.post(
            "/api/v1/warnings",
            data=xml.encode(),
            headers={
                "Authorization": f"Bearer {keys['SL']}",
                "Content-Type": "application/cap+xml",
            },
        ) as r:
            answers.append(await r.json())
    return answers


def _print_guide(
    base: str,
    keys: dict[str, str],
    passwords: dict[str, str],
    answers: list[dict[str, Any]],
    people: int,
    sim_url: str,
) -> None:
    print("\n=== warnpub demo: Liyang (溧阳市) warning release centre ===")
    print(
        f"Population      : {people:,} synthetic people in synthetic villages under Liyang's real towns"
    )
    print(
        f"SMS gateway     : the built-in simulator at {sim_url} (see {sim_url}/stats); nothing leaves this machine"
    )
    print(f"API description : {base}/api/v1/openapi.json")
    print(f"Metrics         : {base}/metrics")
    print(f"Health          : {base}/healthz")
    print("\nAgencies and their API keys (demo only):")
    for code, key in keys.items():
        print(f"  {code:5} {key}")
    print("\nOperators and passwords (demo only):")
    for username, password in passwords.items():
        print(f"  {username:6} {password}")
    print("\nSample warnings submitted through the API:")
    for a in answers:
        print(
            f"  {a.get('id')}  {a.get('level', ''):6} {a.get('state', ''):9} "
            f"{'GREEN CHANNEL ' if a.get('green_channel') else ''}{a.get('headline', a.get('detail', ''))}"
        )
    print("\nTry:")
    print(
        f"  TOKEN=$(curl -s -X POST {base}/api/v1/auth/login -H 'Content-Type: application/json' "
        f'-d \'{{"username":"duty1","password":"{passwords["duty1"]}"}}\' | python3 -c \'import json,sys;print(json.load(sys.stdin)["token"])\')'
    )
    print(f'  curl -s {base}/api/v1/review/queue -H "Authorization: Bearer $TOKEN"')
    print(
        f'  curl -s {base}/api/v1/warnings/<id>/plan -H "Authorization: Bearer $TOKEN"   # who, how, the gap'
    )
    print(
        f'  curl -s -X POST {base}/api/v1/warnings/<id>/approve -H "Authorization: Bearer $TOKEN"'
    )
    print("\nStop with Ctrl-C.", flush=True)


SIM_SECRET = "demo-only-callback-secret"  # noqa: S105 (the demo's own loopback simulator)


async def _start_simulator() -> tuple[str, web.AppRunner]:
    """The gateway simulator, in this process on loopback: the demo's SMS gateway."""
    runner = web.AppRunner(
        create_sim_app({"secret": SIM_SECRET, "receipt_delay_ms": 300}), access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return f"http://127.0.0.1:{runner.addresses[0][1]}", runner


async def _wait_for_delivery(
    base: str, password: str, warning_id: str, timeout_s: float
) -> dict[str, Any]:
    """Poll the green-channel warning until it completes (or time runs out); its report."""
    async with aiohttp.ClientSession(base) as http:
        async with http.post(
            "/api/v1/auth/login", json={"username": "duty1", "password": password}
        ) as r:
            token = (await r.json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        deadline = asyncio.get_running_loop().time() + timeout_s
        body: dict[str, Any] = {}
        while asyncio.get_running_loop().time() < deadline:
            async with http.get(f"/api/v1/warnings/{warning_id}", headers=auth) as r:
                body = await r.json()
            if body.get("state") == "completed":
                break
            await asyncio.sleep(0.5)
        async with http.get("/metrics") as r:
            body["metrics"] = await r.text()
    return body


def _print_delivery(report: dict[str, Any]) -> None:
    lines = [
        line
        for line in report.get("metrics", "").splitlines()
        if line.startswith("warnpub_deliveries{")
    ]
    print(
        f"\nThe green-channel red warning is {report.get('state')}. Deliveries by channel and state:"
    )
    for line in lines:
        print("  " + line.replace("warnpub_deliveries", ""))


async def _drill_area(db: Any) -> tuple[str, str | None] | None:
    """The town of the synthetic village with the most special-needs people (a drill there
    shows them, and the town's village contacts), and the phone of the contact there with the
    fewest special-needs people to visit: the demo's silent contact."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import aliased

    from warnpub.audiences.tables import Area, Person

    async with db.reader() as s:
        town = (
            await s.execute(
                select(Area.parent_code)
                .join(Person, Person.area_code == Area.code)
                .where(Area.synthetic.is_(True), Person.needs != 0, Area.parent_code.is_not(None))
                .group_by(Area.code, Area.parent_code)
                .order_by(func.count().desc(), Area.code)
                .limit(1)
            )
        ).scalar_one_or_none()
        if town is None:
            return None
        visited = aliased(Person)
        silent = (
            await s.execute(
                select(Person.phone)
                .join(Area, Area.code == Person.area_code)
                .outerjoin(
                    visited, (visited.relay_contact_id == Person.id) & (visited.needs != 0)
                )
                .where(
                    Area.parent_code == town,
                    Person.role == "village_contact",
                    Person.phone.is_not(None),
                )
                .group_by(Person.id, Person.phone)
                .order_by(func.count(visited.id), Person.id)
                .limit(1)
            )
        ).scalar_one_or_none()
    return town, silent


async def _run_drill(settings: Settings, out: Path, base: str, town: str) -> None:
    """A drill (CAP status Exercise) on one town's synthetic villages, approved by duty1, sent
    over the same simulated channels; then its report, as `warnpub drill run` prints it, and
    what the simulated village contacts did."""
    from warnpub.cli.common import database
    from warnpub.drills.audience import DrillAudience
    from warnpub.drills.run import (
        approve_drill,
        last_kilometre,
        last_kilometre_lines,
        report_text,
        submit_drill,
        summary_lines,
        wait_for_end,
        wait_for_ladders,
    )

    async with database(settings) as db:
        drill = await submit_drill(
            db, settings, area=town, audience=DrillAudience("area"), level="blue", agency="QX"
        )
        print(
            f"\n=== A drill (应急演练) on one town: {drill.area_name} ({town}) ===\n"
            "The same path as a real warning — submitted by the weather bureau with CAP status "
            "Exercise, approved by duty1, sent over the simulated SMS, voice, loudspeaker and "
            "visit channels — but only to the town's villages, and every message starts with "
            "【演练】. The simulated village contacts acknowledge by reply SMS and report their "
            "visits; one of them stays silent, so its escalation ladder runs.",
            flush=True,
        )
        await approve_drill(db, settings, drill, ["duty1"], base=base)
        await wait_for_end(db, drill, 60)
        await wait_for_ladders(db, drill.warning_id, 20)
        text, written = await report_text(
            db, settings, drill, html=out / "report.html", csv_dir=out / "csv"
        )
        facts = await last_kilometre(db, drill.warning_id)
    print("\n".join(summary_lines(drill)))
    print("\nThe drill report (also `warnpub report <id>`; see docs/drills.md):\n")
    print(text)
    print("The last kilometre (docs/last-kilometre.md; also `warnpub visits <id>`):")
    print("\n".join(last_kilometre_lines(facts)))
    print(f"\nReport page : {out / 'report.html'}")
    print(f"CSV files   : {out / 'csv'}/ ({len(written) - 1} files; unreached.csv lists who was missed)")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _demo_channels(
    sim_url: str, base: str, mqtt_host: str, mqtt_port: int, visit_timeout_s: float = 30
) -> dict[str, list[dict[str, Any]]]:
    """SMS and voice calls through the loopback gateway simulator, loudspeakers through the
    embedded broker, visits by village contacts as visit lists sent by SMS (the simulated
    contacts, :func:`start_contacts`, report them by reply). Notice boards are not simulated
    in the demo: their route steps are recorded as "no board channel is configured" and the
    route moves on. A visit not reported within ``visit_timeout_s`` is unreached."""
    return {
        "sms": [
            {
                "name": "demo-sim",
                "adapter": "http_json",
                "url": f"{sim_url}/sms",
                "rate_per_s": 500,
                "concurrency": 16,
                "callback_secret": SIM_SECRET,
            }
        ],
        "voice": [
            {
                "name": "demo-voice",
                "adapter": "http_voice",
                "url": f"{sim_url}/voice/calls",
                "callback_url": f"{base}/api/v1/callbacks/voice/demo-voice/outcomes",
                "callback_secret": SIM_SECRET,
                "rate_per_s": 50,
                "retry_interval_s": 5,
            }
        ],
        "speaker": [
            {
                "name": "demo-speakers",
                "adapter": "mqtt_speaker",
                "host": mqtt_host,
                "port": mqtt_port,
                "ack_timeout_s": 60,
                "repeat": 2,
                "interval_s": 5,
            }
        ],
        "relay": [
            {"name": "demo-visits", "adapter": "visit", "receipt_timeout_s": visit_timeout_s}
        ],
    }


async def point_simulator_at(sim_url: str, base: str) -> None:
    """Tell the gateway simulator where delivery receipts and people's replies go (the app's
    callbacks for the ``demo-sim`` SMS channel)."""
    callbacks = f"{base}/api/v1/callbacks/sms/demo-sim"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sim_url}/control",
            json={"callback_url": f"{callbacks}/receipts", "inbound_url": f"{callbacks}/inbound"},
        ) as r,
    ):
        r.raise_for_status()


# The simulated village contacts: a reply code a second after the message, a visit report
# after a one-second "walk" to the first person and a tenth of a second per further person
# (a demo's seconds stand for a real village's minutes).
CONTACT_DELAY_S = 1.0
VISIT_DELAY_S = 1.0
VISIT_PER_PERSON_S = 0.1
DEMO_LADDER_WAIT_S = 2.0


async def start_contacts(sim_url: str, silent: set[str] | None = None) -> ContactSim:
    """Village contacts and town duty officers who answer what the gateway simulator gets."""
    contacts = ContactSim(
        ContactSimOptions(
            sim_url,
            silent=silent or set(),
            delay_s=CONTACT_DELAY_S,
            visit_delay_s=VISIT_DELAY_S,
            visit_per_person_s=VISIT_PER_PERSON_S,
            poll_s=0.3,
        )
    )
    await contacts.start()
    return contacts


def demo(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.database)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    settings = settings.model_copy(deep=True)
    settings.database.url = f"sqlite+aiosqlite:///{path}"
    # Blue has no escalation ladder by default; the demo gives its blue drill a short one, so
    # the silent village contact is escalated within seconds: the town duty officer is alerted
    # by SMS, then the console.
    settings.escalation.ladders["blue"] = LadderConfig(
        wait_s=DEMO_LADDER_WAIT_S, steps=["duty_officer", "console"], repeat=1
    )
    port = args.port if args.port is not None else settings.server.port
    upgrade(settings.database.url, schema=settings.database.schema_name)

    async def body() -> int:
        from warnpub.cli.common import database

        keys, passwords = await _setup(settings)
        async with transaction(settings) as s:
            summary = await generate(s, DemoOptions(people=args.people, seed=1))
        async with database(settings) as db:
            drill_area = await _drill_area(db)
        silent = {drill_area[1]} if drill_area and drill_area[1] else set()
        sim_url, sim = await _start_simulator()
        # The base URL must be known before the channels are built (the voice gateway is told
        # where to post call outcomes), so a free port is picked here when none was given.
        bind_port = port or _free_port(settings.server.host)
        base = f"http://{settings.server.host}:{bind_port}"
        contacts = await start_contacts(sim_url, silent)
        try:
            async with embedded_broker() as (mqtt_host, mqtt_port):
                speakers = SpeakerSim(SimOptions(host=mqtt_host, port=mqtt_port, delay_s=0.2))
                await speakers.start()
                try:
                    settings.channels = _demo_channels(sim_url, base, mqtt_host, mqtt_port)

                    async def after_start(base: str) -> None:
                        settings.server.public_url = base  # the app reads it for status URLs
                        await point_simulator_at(sim_url, base)
                        answers = await _submit_samples(base, keys)
                        _print_guide(base, keys, passwords, answers, summary.people, sim_url)
                        print(
                            f"Loudspeakers    : an embedded MQTT broker on {mqtt_host}:{mqtt_port} "
                            "with simulated speaker groups that play and acknowledge"
                        )
                        print(
                            "Village contacts: simulated (warnpub/lastkm/contact_sim.py); they "
                            f"acknowledge by reply SMS after {CONTACT_DELAY_S:g} s and report "
                            f"visits after a {VISIT_DELAY_S:g} s walk"
                            + (f"; {', '.join(sorted(silent))} stays silent" if silent else "")
                        )
                        red = next((a for a in answers if a.get("green_channel")), None)
                        if red is not None:
                            report = await _wait_for_delivery(
                                base, passwords["duty1"], red["id"], 120
                            )
                            _print_delivery(report)
                            print(f"Speaker groups played and acknowledged: {len(speakers.played)}")
                            c = contacts.stats
                            print(
                                f"Village contacts' replies so far: {c.acks_sent} acknowledgements, "
                                f"{c.visit_replies} visit reports ({c.visits_reported} people told)"
                            )
                        if drill_area is not None:
                            await _run_drill(
                                settings, path.parent / f"{path.stem}-drill", base, drill_area[0]
                            )
                        if not args.no_serve:
                            print("\nStill serving. Stop with Ctrl-C.", flush=True)

                    await serve_until_stopped(
                        settings,
                        settings.server.host,
                        bind_port,
                        after_start,
                        stop_at_once=args.no_serve,
                    )
                finally:
                    await speakers.stop()
        finally:
            await contacts.stop()
            await sim.cleanup()
        return 0

    return run(body)
