"""SIGTERM to `warnpub worker` on PostgreSQL: it stops claiming, the call in flight finishes,
every row claimed but not sent goes back to the queue at once (not after its 60 s lease), it
leaves the workers table, and it exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from tests.cluster.conftest import county, release, until
from tests.conftest import PG_URL
from tests.dispatch.conftest import SECRET, start_sim
from warnpub.cluster import registry
from warnpub.storage.tables import Delivery


def config_file(tmp: Path, sim_url: str) -> Path:
    path = tmp / "worker.toml"
    path.write_text(f"""
[dispatch]
lease_seconds = 60

[cluster]
heartbeat_s = 0.3
dead_after_s = 3

[logging]
level = "INFO"

[[channels.sms]]
name = "sim"
adapter = "http_json"
url = "{sim_url}/sms"
rate_per_s = 1000
concurrency = 1
callback_secret = "{SECRET}"
timeout_s = 10
""")
    return path


async def test_sigterm_puts_unsent_rows_back_at_once_and_exits_0(settings, db, tmp_path):
    sim, sim_runner = await start_sim(receipts="none", latency_ms=700)
    world, client = await county(settings, db, people=400)
    env = {
        **os.environ,
        "WARNPUB_DATABASE_URL": PG_URL,
        "WARNPUB_DATABASE_SCHEMA_NAME": settings.database.schema_name,
        "WARNPUB_CONFIG": str(config_file(tmp_path, sim.url)),
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "warnpub", "worker"], env=env, stdout=out, stderr=out
        )
    try:

        async def registered():
            assert proc.poll() is None, log.read_text()
            return await registry.members(db)

        (member,) = await until(registered, "the worker registered")
        warning = await release(client, world)

        async def counts() -> dict[str, int]:
            async with db.reader() as s:
                rows = await s.execute(
                    select(Delivery.state, func.count())
                    .where(Delivery.warning_id == warning, Delivery.channel == "sms")
                    .group_by(Delivery.state)
                )
                return dict(rows.all())

        async def some_sent_many_claimed():
            assert proc.poll() is None, log.read_text()
            c = await counts()
            return c.get("sent", 0) >= 1 and c.get("sending", 0) >= 5

        await until(some_sent_many_claimed, "a message sent and more claimed behind it")
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 15)
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await client.close()
        await sim_runner.cleanup()
    output = log.read_text()
    assert code == 0, output
    assert took < 5, f"stopping took {took:.1f} s"
    after = await counts()
    assert after.get("sending", 0) == 0, after
    assert after.get("queued", 0) >= 4, after  # handed back, not left to their lease
    assert after["sent"] == sim.gateway.counts["messages"], "the call in flight was recorded"
    async with db.reader() as s:
        queued = (
            await s.execute(
                select(Delivery.lease_owner, Delivery.lease_until, Delivery.attempts).where(
                    Delivery.warning_id == warning, Delivery.state == "queued"
                )
            )
        ).all()
    assert all(owner is None and until_ is None and n == 0 for owner, until_, n in queued)
    # It left the workers table (or its row lapses within a rate window of its last send).
    rows = await registry.members(db)
    assert [m.id for m in rows] in ([], [member.id])
    assert '"worker stopped"' in output or "worker stopped" in output
