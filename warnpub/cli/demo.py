"""``warnpub demo``: a demo county (Liyang) with agencies, operators and warnings, served locally.

Everything goes through the real paths: migrations, the area loader, the agency and operator
services, and the HTTP API for the sample warnings.
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
from warnpub.config import Settings
from warnpub.embedded_broker import embedded_broker
from warnpub.gatewaysim.app import create_sim_app
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


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _demo_channels(
    sim_url: str, base: str, mqtt_host: str, mqtt_port: int
) -> dict[str, list[dict[str, Any]]]:
    """SMS and voice calls through the loopback gateway simulator, loudspeakers through the
    embedded broker. Notice boards and village contacts' visits are not simulated in the demo:
    their route steps are recorded as "no … channel is configured" and the route moves on."""
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
    }


def demo(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.database)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    settings = settings.model_copy(deep=True)
    settings.database.url = f"sqlite+aiosqlite:///{path}"
    port = args.port if args.port is not None else settings.server.port
    upgrade(settings.database.url, schema=settings.database.schema_name)

    async def body() -> int:
        keys, passwords = await _setup(settings)
        async with transaction(settings) as s:
            summary = await generate(s, DemoOptions(people=args.people, seed=1))
        sim_url, sim = await _start_simulator()
        # The base URL must be known before the channels are built (the voice gateway is told
        # where to post call outcomes), so a free port is picked here when none was given.
        bind_port = port or _free_port(settings.server.host)
        base = f"http://{settings.server.host}:{bind_port}"
        try:
            async with embedded_broker() as (mqtt_host, mqtt_port):
                speakers = SpeakerSim(SimOptions(host=mqtt_host, port=mqtt_port, delay_s=0.2))
                await speakers.start()
                try:
                    settings.channels = _demo_channels(sim_url, base, mqtt_host, mqtt_port)

                    async def after_start(base: str) -> None:
                        settings.server.public_url = base  # the app reads it for status URLs
                        async with aiohttp.ClientSession() as http:
                            callback = f"{base}/api/v1/callbacks/sms/demo-sim/receipts"
                            async with http.post(
                                f"{sim_url}/control", json={"callback_url": callback}
                            ) as r:
                                r.raise_for_status()
                        answers = await _submit_samples(base, keys)
                        _print_guide(base, keys, passwords, answers, summary.people, sim_url)
                        print(
                            f"Loudspeakers    : an embedded MQTT broker on {mqtt_host}:{mqtt_port} "
                            "with simulated speaker groups that play and acknowledge"
                        )
                        red = next((a for a in answers if a.get("green_channel")), None)
                        if args.no_serve and red is not None:
                            report = await _wait_for_delivery(
                                base, passwords["duty1"], red["id"], 120
                            )
                            _print_delivery(report)
                            print(f"Speaker groups played and acknowledged: {len(speakers.played)}")

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
            await sim.cleanup()
        return 0

    return run(body)
