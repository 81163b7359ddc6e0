"""Crash safety: a `warnpub serve` process sending 20,000 SMS is killed with SIGKILL at random
moments, five times, and restarted; afterwards every target has exactly one accepted message
at the simulator and every delivery is in a final state."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from sqlalchemy import func, select

from tests.dispatch.conftest import SECRET, start_sim
from tests.factories import alert_json, seed
from warnpub.audiences.demo_data import DemoOptions, generate
from warnpub.config import load_settings
from warnpub.storage.engine import Database
from warnpub.storage.migrate import upgrade
from warnpub.storage.tables import Delivery

PEOPLE = 20_600  # about 20,000 of them have a mobile number
KILLS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_file(tmp: Path, sim_url: str) -> Path:
    path = tmp / "crash.toml"
    path.write_text(f"""
[dispatch]
lease_seconds = 2
receipt_timeout_s = 5
retry_base_s = 0.2
retry_max_s = 1.0

[logging]
level = "WARNING"

[[channels.sms]]
name = "sim"
adapter = "http_json"
url = "{sim_url}/sms"
rate_per_s = 3000
concurrency = 32
callback_secret = "{SECRET}"
timeout_s = 5
""")
    return path


async def wait_up(base: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"warnpub serve exited with {proc.returncode}"
            try:
                async with http.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("warnpub serve did not come up")


async def test_sigkill_loses_nothing_and_sends_nothing_twice(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = load_settings(environ={"WARNPUB_DATABASE_URL": url})
    db = Database(url)
    world = await seed(db, settings)
    async with db.session() as s:
        await generate(s, DemoOptions(people=PEOPLE, seed=3, villages_per_town=2))
    sim, sim_runner = await start_sim()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    await sim.control(
        callback_url=f"{base}/api/v1/callbacks/sms/sim/receipts", receipt_delay_ms=200
    )
    env = {
        **os.environ,
        "WARNPUB_DATABASE_URL": url,
        "WARNPUB_CONFIG": str(config_file(tmp_path, sim.url)),
        "WARNPUB_SERVER_PUBLIC_URL": base,
    }
    command = [sys.executable, "-m", "warnpub", "serve", "--port", str(port)]
    rng = random.Random(20261128)
    at_kill: list[int] = []
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_up(base, proc)
        async with aiohttp.ClientSession(base) as http:
            doc = alert_json(severity="Moderate", code="320481000000")
            async with http.post("/api/v1/warnings", json=doc, headers=world.agency("QX")) as r:
                warning = await r.json()
            async with http.post(
                f"/api/v1/warnings/{warning['id']}/approve", headers=world.operator("duty1")
            ) as r:
                assert r.status == 200
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            at_kill.append((await sim.stats())["accepted"])
            proc = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            await wait_up(base, proc)
        deadline = time.monotonic() + 120
        async with aiohttp.ClientSession(base) as http:
            while time.monotonic() < deadline:
                async with http.get(
                    f"/api/v1/warnings/{warning['id']}", headers=world.operator("duty1")
                ) as r:
                    if (await r.json())["state"] == "completed":
                        break
                await asyncio.sleep(0.25)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    async with db.session() as s:
        sms = (
            await s.execute(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.warning_id == warning["id"], Delivery.channel == "sms")
            )
        ).scalar_one()
        states = dict(
            (
                await s.execute(
                    select(Delivery.state, func.count())
                    .where(Delivery.warning_id == warning["id"])
                    .group_by(Delivery.state)
                )
            ).all()
        )
    stats = await sim.stats()
    await sim_runner.cleanup()
    await db.dispose()
    assert sms >= 19_000
    # The kills came while messages were leaving, not before or after.
    assert sum(1 for n in at_kill if 0 < n < sms) >= 3, at_kill
    assert stats["accepted"] == stats["unique_references"] == sms, stats
    assert stats["numbers_with_more_than_one"] == 0, "a target got two messages"
    assert set(states) <= {"delivered", "failed", "expired", "sent"}, states
    assert states.get("sent", 0) == 0, f"rows still waiting for a receipt: {states}"
