"""End to end for one town (issue 5): a warning for 社渚镇 reaches its loudspeaker groups over
Mosquitto (and they acknowledge, and it is played again on schedule), its digital board shows
it, the webhook partner receives it and the Atom feed lists it; then a Cancel stops the
loudspeakers and clears the board. Every peer is real: the broker, the speaker simulator, the
partner's HTTP server, the board's HTTP requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from tests.boards.helpers import shown_ids
from tests.channels.mqtt_peer import BROKER_HOST, BROKER_PORT, require_broker, unique_prefix
from tests.dispatch.test_partners import Partner, partner_server, webhook
from tests.factories import alert_json, seed
from tests.speakers.conftest import VILLAGES, speaker_config
from warnpub.api.app import create_app
from warnpub.audiences.tables import Device
from warnpub.boards import tokens
from warnpub.channels.registry import build_channels
from warnpub.config import SpeakersConfig
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.lastkm.tables import Acknowledgement
from warnpub.review.timers import HANDLERS
from warnpub.speakers.tables import SpeakerRound
from warnpub.speakersim import SimOptions, SpeakerSim
from warnpub.storage.tables import Delivery
from warnpub.timers.runner import TimerRunner

BOARD = "shezhu-village-screen"


async def test_a_town_warning_end_to_end_then_cancelled(settings, db):
    require_broker()
    prefix = unique_prefix()
    world = await seed(db, settings)
    async with db.session() as s:
        for code in VILLAGES:
            s.add(
                Device(
                    external_id=f"spk-{code}",
                    kind="speaker_group",
                    name=f"{code} 应急广播",
                    area_code=code,
                    address=f"{prefix}/{code}",
                )
            )
        board = Device(
            external_id="e2e-board",
            kind="board_digital",
            name="社渚村电子显示屏",
            area_code=VILLAGES[0],
            address=BOARD,
        )
        s.add(board)
        await s.flush()
        token = (await tokens.issue(s, board, "test")).token
    settings.speakers = SpeakersConfig(rebroadcast_every_s={"yellow": 1.0})  # type: ignore[arg-type]
    sim = SpeakerSim(SimOptions(host=BROKER_HOST, port=BROKER_PORT, topic_prefix=prefix))
    await sim.start()
    try:
        async with partner_server(Partner("county-tv")) as tv:
            settings.channels = {
                "speaker": [speaker_config(prefix)],
                "board": [{"name": "boards", "adapter": "board"}],
                "webhook": [webhook(tv, "cap")],
            }
            dispatcher = Dispatcher(db, settings, build_channels(settings))
            app = create_app(settings, db, run_timers=False, dispatcher=dispatcher)
            runner = TimerRunner(db, HANDLERS, tick_s=1, lease_s=30)
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:

                async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
                    deadline = time.monotonic() + 30
                    while not (found := await check()):
                        assert time.monotonic() < deadline, f"not within 30 s: {what}"
                        await dispatcher.sweep()
                        await runner.tick()
                        await asyncio.sleep(0.1)
                    return found

                async def states(channel: str) -> dict[int, str]:
                    async with db.reader() as s:
                        rows = await s.execute(
                            select(Delivery.target_id, Delivery.state).where(
                                Delivery.warning_id == warning_id, Delivery.channel == channel
                            )
                        )
                        return dict(rows.all())

                async def board_shows() -> list[str]:
                    r = await client.get(f"/boards/{BOARD}", params={"token": token})
                    assert r.status == 200, await r.text()
                    return shown_ids(await r.text())

                # A yellow rainstorm warning for 社渚镇, approved by two operators.
                r = await client.post(
                    "/api/v1/warnings", json=alert_json(), headers=world.agency("QX")
                )
                assert r.status == 202, await r.text()
                submitted = await r.json()
                warning_id = submitted["id"]
                for username in ("duty1", "chief"):
                    r = await client.post(
                        f"/api/v1/warnings/{warning_id}/approve",
                        headers=world.operator(username),
                    )
                    assert r.status == 200, await r.text()
                    if (await r.json())["state"] != "pending":
                        break

                # Loudspeakers: both groups played it and acknowledged.
                async def speakers_delivered() -> bool:
                    found = await states("speaker")
                    return len(found) == 2 and set(found.values()) == {"delivered"}

                await until(speakers_delivered, "both speaker groups acknowledged")
                assert {c.address for c in sim.played} == {f"{prefix}/{v}" for v in VILLAGES}

                # The partner got it once, as signed CAP.
                await until(lambda: _true(len(tv.bodies) == 1), "the partner received it")
                assert tv.bodies[0][0].startswith("application/cap+xml")
                identifier = submitted["identifier"]
                assert f"<identifier>{identifier}</identifier>".encode() in tv.bodies[0][1]

                # The board shows it; having shown it, its delivery is delivered.
                await until(lambda: _any(states, "board"), "a board row")
                assert warning_id in await board_shows()

                async def board_delivered() -> bool:
                    return set((await states("board")).values()) == {"delivered"}

                await until(board_delivered, "the board's delivery delivered")

                # The speakers' "played" and the board's showing are acknowledgements, with
                # their time and channel (issue 6).
                async with db.reader() as s:
                    acks = (
                        await s.execute(
                            select(Acknowledgement.via, Acknowledgement.target_id).where(
                                Acknowledgement.warning_id == warning_id,
                                Acknowledgement.target_kind == "device",
                            )
                        )
                    ).all()
                assert sorted(via for via, _ in acks) == ["board", "speaker", "speaker"]

                # The Atom feed lists it.
                feed = await (await client.get("/feeds/cap.atom")).text()
                assert warning_id in feed

                # Played again on schedule (round 2), acknowledged by both groups.
                async def second_round() -> list[SpeakerRound]:
                    async with db.reader() as s:
                        rounds = (
                            await s.execute(
                                select(SpeakerRound).where(
                                    SpeakerRound.warning_id == warning_id,
                                    SpeakerRound.round == 2,
                                    SpeakerRound.acknowledged_at.is_not(None),
                                )
                            )
                        ).scalars()
                        return list(rounds)

                assert len(await until(second_round, "round 2 acknowledged")) == 2

                # Cancel: stop commands reach both groups, no round follows, the board clears.
                r = await client.post(
                    f"/api/v1/warnings/{warning_id}/cancel",
                    json={"reason": "the rain has passed"},
                    headers=world.operator("duty1"),
                )
                assert r.status == 200, await r.text()

                async def both_stopped() -> bool:
                    return {s.address for s in sim.stops} == {f"{prefix}/{v}" for v in VILLAGES}

                await until(both_stopped, "stop commands to both groups")
                async with db.reader() as s:
                    last = max(
                        (
                            await s.execute(
                                select(SpeakerRound.round).where(
                                    SpeakerRound.warning_id == warning_id
                                )
                            )
                        ).scalars()
                    )
                for _ in range(15):  # 1.5 s: well past the 1 s re-broadcast interval
                    await dispatcher.sweep()
                    await runner.tick()
                    await asyncio.sleep(0.1)
                async with db.reader() as s:
                    after = max(
                        (
                            await s.execute(
                                select(SpeakerRound.round).where(
                                    SpeakerRound.warning_id == warning_id
                                )
                            )
                        ).scalars()
                    )
                assert after == last, "a round was played after the cancel"
                assert warning_id not in await board_shows()
                assert warning_id not in await (await client.get("/feeds/cap.atom")).text()
    finally:
        await sim.stop()


async def _true(value: bool) -> bool:
    return value


async def _any(states: Callable[[str], Awaitable[dict[int, str]]], channel: str) -> bool:
    return bool(await states(channel))
