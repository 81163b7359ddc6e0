"""A county with village loudspeakers on the real Mosquitto broker: Liyang's areas and staff
(tests.factories.seed), two speaker groups in 社渚镇, the speaker simulator answering for them,
the real app with its dispatcher (an ``mqtt_speaker`` instance) and a timer runner the tests
tick themselves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from tests.channels.mqtt_peer import BROKER_HOST, BROKER_PORT, require_broker, unique_prefix
from tests.factories import World, alert_json, seed
from warnpub.api.app import create_app
from warnpub.audiences.tables import Device
from warnpub.channels.registry import build_channels
from warnpub.config import Settings, SpeakersConfig
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.review.timers import HANDLERS
from warnpub.speakers.tables import SpeakerRound
from warnpub.speakersim import SimOptions, SpeakerSim
from warnpub.storage.engine import Database
from warnpub.storage.tables import AuditEntry, Delivery, Timer
from warnpub.timers.runner import TimerRunner

VILLAGES = ("320481116200", "320481116201")  # 社渚村, 下西村 (both in 社渚镇)


@dataclass
class Speakers:
    client: TestClient
    db: Database
    settings: Settings
    world: World
    dispatcher: Dispatcher
    sim: SpeakerSim
    prefix: str
    devices: dict[str, Device]  # address → device

    def runner(self) -> TimerRunner:
        return TimerRunner(self.db, HANDLERS, tick_s=1, lease_s=30)

    async def release(self, severity: str = "Moderate") -> str:
        r = await self.client.post(
            "/api/v1/warnings", json=alert_json(severity=severity), headers=self.world.agency("QX")
        )
        assert r.status == 202, await r.text()
        body = await r.json()
        if body["state"] == "pending":
            for username in ("duty1", "chief"):
                r = await self.client.post(
                    f"/api/v1/warnings/{body['id']}/approve",
                    headers=self.world.operator(username),
                )
                answer = await r.json()
                assert r.status == 200, answer
                if answer["state"] != "pending":
                    break
        return str(body["id"])

    async def cancel(self, warning_id: str) -> None:
        r = await self.client.post(
            f"/api/v1/warnings/{warning_id}/cancel",
            json={"reason": "the rain has passed"},
            headers=self.world.operator("duty1"),
        )
        assert r.status == 200, await r.text()

    async def deliveries(self, warning_id: str) -> dict[str, Delivery]:
        """Speaker deliveries of a warning by their group's address."""
        async with self.db.reader() as s:
            rows = (
                await s.execute(
                    select(Device.address, Delivery)
                    .join(Device, Device.id == Delivery.target_id)
                    .where(Delivery.warning_id == warning_id, Delivery.channel == "speaker")
                )
            ).all()
        return {address: d for address, d in rows}

    async def rounds(self, warning_id: str) -> list[SpeakerRound]:
        async with self.db.reader() as s:
            q = (
                select(SpeakerRound)
                .where(SpeakerRound.warning_id == warning_id)
                .order_by(SpeakerRound.round, SpeakerRound.device_id)
            )
            return list((await s.execute(q)).scalars())

    async def timers(self, warning_id: str, kind: str) -> list[Timer]:
        async with self.db.reader() as s:
            q = select(Timer).where(Timer.warning_id == warning_id, Timer.kind == kind)
            return list((await s.execute(q.order_by(Timer.id))).scalars())

    async def audit(self, action: str, warning_id: str) -> list[AuditEntry]:
        async with self.db.reader() as s:
            q = select(AuditEntry).where(
                AuditEntry.action == action, AuditEntry.subject == f"warning:{warning_id}"
            )
            return list((await s.execute(q.order_by(AuditEntry.seq))).scalars())

    async def until(
        self,
        check: Callable[[], Awaitable[Any]],
        *,
        timeout: float = 20,
        runner: TimerRunner | None = None,
        what: str = "",
    ) -> Any:
        """Sweep (and tick ``runner``) until ``check()`` answers something true."""
        deadline = time.monotonic() + timeout
        while True:
            found = await check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what or check}")
            await self.dispatcher.sweep()
            if runner is not None:
                await runner.tick()
            await asyncio.sleep(0.1)


def speaker_config(prefix: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "county-broadcast",
        "adapter": "mqtt_speaker",
        "host": BROKER_HOST,
        "port": BROKER_PORT,
        "topic_prefix": prefix,
        "repeat": 3,
        "interval_s": 5,
        "connect_timeout_s": 5,
        **extra,
    }


async def make_speakers(
    settings: Settings,
    db: Database,
    *,
    rebroadcast: dict[str, float],
    sim: dict[str, Any] | None = None,
    **channel: Any,
) -> AsyncIterator[Speakers]:
    require_broker()
    prefix = unique_prefix()
    world = await seed(db, settings)
    devices: dict[str, Device] = {}
    async with db.session() as s:
        for code in VILLAGES:
            device = Device(
                external_id=f"spk-{code}",
                kind="speaker_group",
                name=f"{code} 应急广播",
                area_code=code,
                address=f"{prefix}/{code}",
            )
            s.add(device)
            await s.flush()
            devices[device.address] = device
    settings.channels = {"speaker": [speaker_config(prefix, **channel)]}
    settings.speakers = SpeakersConfig(rebroadcast_every_s=rebroadcast)  # type: ignore[arg-type]
    speaker_sim = SpeakerSim(
        SimOptions(host=BROKER_HOST, port=BROKER_PORT, topic_prefix=prefix, **(sim or {}))
    )
    await speaker_sim.start()
    dispatcher = Dispatcher(db, settings, build_channels(settings))
    app = create_app(settings, db, run_timers=False, dispatcher=dispatcher)
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield Speakers(client, db, settings, world, dispatcher, speaker_sim, prefix, devices)
    finally:
        await speaker_sim.stop()


@pytest.fixture
async def speakers(settings: Settings, db: Database) -> AsyncIterator[Speakers]:
    """Yellow warnings are played again every 1.5 s; groups answer at once."""
    async for s in make_speakers(settings, db, rebroadcast={"yellow": 1.5}):
        yield s


@pytest.fixture
async def silent_speakers(settings: Settings, db: Database) -> AsyncIterator[Speakers]:
    """No re-broadcasts; 社渚村's group never answers; acks are awaited 0.5 s, 2 retries."""
    async for s in make_speakers(
        settings,
        db,
        rebroadcast={},
        sim={"silent": {VILLAGES[0]}},
        ack_timeout_s=0.5,
        ack_retries=2,
    ):
        yield s


@pytest.fixture
async def held_speakers(settings: Settings, db: Database) -> AsyncIterator[Speakers]:
    """Re-broadcasts every 1.5 s; 社渚村's group never answers and is awaited 60 s, so the
    warning stays dispatching (a completed warning can no longer be cancelled)."""
    async for s in make_speakers(
        settings,
        db,
        rebroadcast={"yellow": 1.5},
        sim={"silent": {VILLAGES[0]}},
        ack_timeout_s=60,
    ):
        yield s
