"""The auditor test (issue 6): a `warnpub serve` process is killed with SIGKILL in the middle
of an escalation, and its ladder timers are lost while it is down; after a restart the
auditor resumes the ladders and every escalation completes, each step taken exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from sqlalchemy import func, select, update

from tests.dispatch.conftest import SECRET, start_sim
from tests.dispatch.test_crash import free_port, wait_up
from tests.factories import VILLAGE_SHEZHU, alert_json, seed
from tests.lastkm.conftest import PHONES, add_people
from warnpub.config import load_settings
from warnpub.lastkm.plans import TICK
from warnpub.lastkm.tables import LadderState
from warnpub.storage.engine import Database
from warnpub.storage.migrate import upgrade
from warnpub.storage.tables import AuditEntry, Escalation, Timer

STEPS = 3
REPEAT = 2
CONTACTS = ("contact_a", "contact_b", "contact_c")


def config_file(tmp: Path, sim_url: str) -> Path:
    path = tmp / "auditor.toml"
    path.write_text(f"""
[timers]
tick_seconds = 0.2
lease_seconds = 3

[logging]
level = "WARNING"

[escalation]
auditor_every_s = 1

[escalation.ladders.yellow]
wait_s = 1.0
steps = ["resend", "duty_officer", "console"]
repeat = {REPEAT}

[[channels.sms]]
name = "sim"
adapter = "http_json"
url = "{sim_url}/sms"
rate_per_s = 500
callback_secret = "{SECRET}"
timeout_s = 5
""")
    return path


async def test_killed_mid_escalation_the_ladders_complete_after_restart(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'auditor.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = load_settings(environ={"WARNPUB_DATABASE_URL": url})
    db = Database(url)
    world = await seed(db, settings)
    ids = await add_people(db)
    sim, sim_runner = await start_sim()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    await sim.control(callback_url=f"{base}/api/v1/callbacks/sms/sim/receipts")
    env = {
        **os.environ,
        "WARNPUB_DATABASE_URL": url,
        "WARNPUB_CONFIG": str(config_file(tmp_path, sim.url)),
        "WARNPUB_SERVER_PUBLIC_URL": base,
    }
    command = [sys.executable, "-m", "warnpub", "serve", "--port", str(port)]

    async def ladders() -> dict[int, LadderState]:
        async with db.reader() as s:
            rows = (await s.execute(select(LadderState))).scalars().all()
        return {r.person_id: r for r in rows}

    async def until(check, what: str, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while not (found := await check()):
            assert proc.poll() is None, f"warnpub serve exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
            await asyncio.sleep(0.1)
        return found

    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_up(base, proc)
        async with aiohttp.ClientSession(base) as http:
            doc = alert_json(code=VILLAGE_SHEZHU)
            async with http.post("/api/v1/warnings", json=doc, headers=world.agency("QX")) as r:
                assert r.status == 202, await r.text()
                warning_id = (await r.json())["id"]
            for who in ("duty1", "chief"):
                async with http.post(
                    f"/api/v1/warnings/{warning_id}/approve", headers=world.operator(who)
                ) as r:
                    assert r.status == 200, await r.text()
                    if (await r.json())["state"] != "pending":
                        break

        async def mid_escalation():
            found = await ladders()
            taken = [found[ids[c]].taken for c in CONTACTS if ids[c] in found]
            return len(taken) == 3 and min(taken) >= 1 and max(taken) < STEPS * REPEAT

        await until(mid_escalation, "every silent contact one step up the ladder")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = {pid: s.taken for pid, s in (await ladders()).items()}
        # While it is down the ladder timers are lost as well (a restored backup, a bug).
        async with db.session() as s:
            lost = await s.execute(
                update(Timer)
                .where(Timer.kind == TICK, Timer.state == "pending")
                .values(state="cancelled", dedupe_key=None)
            )
            assert lost.rowcount == 1
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await wait_up(base, proc)

        async def exhausted():
            found = await ladders()
            return all(found[ids[c]].state == "exhausted" for c in CONTACTS)

        await until(exhausted, "every contact's ladder walked to the end")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        await sim_runner.cleanup()
    found = await ladders()
    assert all(found[ids[c]].taken == STEPS * REPEAT for c in CONTACTS)
    assert all(found[ids[c]].taken > before[ids[c]] for c in CONTACTS)
    # Each duty-officer step alerted the officer exactly once per contact and round, the
    # console got one escalation per contact and round: nothing lost, nothing twice.
    officer = [
        m for m in sim.gateway.messages(0, 10_000)["messages"] if m["to"] == PHONES["officer"]
    ]
    assert len(officer) == len(CONTACTS) * REPEAT, [m["text"] for m in officer]
    async with db.reader() as s:
        console = (
            await s.execute(
                select(func.count())
                .select_from(Escalation)
                .where(Escalation.warning_id == warning_id, Escalation.kind == "unacknowledged")
            )
        ).scalar_one()
        resumed = (
            await s.execute(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "escalation.resumed")
            )
        ).scalar_one()
    assert console == len(CONTACTS) * REPEAT
    assert resumed >= 1
    await db.dispose()
