"""Loudspeakers after the first play, end to end over Mosquitto: re-broadcast rounds (timers,
acknowledged per round), stop commands on Cancel, silent groups played again and then
unreached, and one round per timer however many runners tick."""

from __future__ import annotations

import asyncio

import pytest

from tests.speakers.conftest import VILLAGES, Speakers
from warnpub.dispatch import broadcasts

pytestmark = pytest.mark.postgres


async def delivered(s: Speakers, warning_id: str) -> dict[str, int]:
    """Wait until every speaker group acknowledged the first play: address → delivery id."""

    async def check() -> dict[str, int] | None:
        found = await s.deliveries(warning_id)
        if len(found) == len(VILLAGES) and all(d.state == "delivered" for d in found.values()):
            return {a: d.id or 0 for a, d in found.items()}
        return None

    return await s.until(check, what="both groups delivered")


def round_refs(s: Speakers) -> list[tuple[str, str]]:
    """(address, reference) of every re-broadcast command the groups received."""
    return [
        (c.address, c.command.reference)
        for c in s.sim.commands
        if c.command is not None and "-r" in c.command.reference
    ]


async def test_a_round_is_published_acknowledged_and_the_next_one_scheduled(speakers):
    s = speakers
    warning = await s.release()
    ids = await delivered(s, warning)
    runner = s.runner()

    async def round_two_acked():
        rows = [r for r in await s.rounds(warning) if r.round == 2]
        return rows if len(rows) == 2 and all(r.acknowledged_at for r in rows) else None

    rows = await s.until(round_two_acked, runner=runner, what="round 2 acknowledged")
    assert {r.reference for r in rows} == {f"wp-{i}-r2" for i in ids.values()}
    assert all(r.published_at is not None and r.error == "" for r in rows)
    assert sorted(round_refs(s))[:2] == sorted((a, f"wp-{i}-r2") for a, i in ids.items())
    # The round's acks went to speaker_rounds; the deliveries are untouched.
    after = await s.deliveries(warning)
    assert {a: (d.state, d.provider_ref) for a, d in after.items()} == {
        a: ("delivered", f"wp-{i}") for a, i in ids.items()
    }
    (entry,) = (await s.audit("speaker.rebroadcast", warning))[:1]
    assert entry.details["round"] == 2 and entry.details["published"] == 2

    # A group that fails round 3 has it recorded there, and its delivery stays delivered.
    failing = f"{s.prefix}/{VILLAGES[1]}"
    s.sim.fail = {VILLAGES[1]}

    async def round_three_answered():
        rows = {r.device_id: r for r in await s.rounds(warning) if r.round == 3}
        done = len(rows) == 2 and all(r.acknowledged_at or r.error for r in rows.values())
        return rows if done else None

    rows3 = await s.until(round_three_answered, runner=runner, what="round 3 answered")
    by_device = {d.id: a for a, d in s.devices.items()}
    outcome = {by_device[k]: (r.acknowledged_at is not None, r.error) for k, r in rows3.items()}
    assert outcome[failing][0] is False and "simulated failure" in outcome[failing][1]
    assert outcome[f"{s.prefix}/{VILLAGES[0]}"] == (True, "")
    assert (await s.deliveries(warning))[failing].state == "delivered"


async def test_cancel_stops_the_groups_and_no_round_follows(held_speakers):
    s = held_speakers
    warning = await s.release()
    silent = f"{s.prefix}/{VILLAGES[0]}"

    async def one_delivered():
        found = await s.deliveries(warning)
        states = sorted(d.state for d in found.values())
        return {a: d.id or 0 for a, d in found.items()} if states == ["delivered", "sent"] else None

    ids = await s.until(one_delivered, what="one group delivered, one silent")
    runner = s.runner()

    async def round_two():
        rows = [r for r in await s.rounds(warning) if r.round == 2 and r.published_at]
        return rows if len(rows) == 2 else None

    await s.until(round_two, runner=runner, what="round 2 published")
    # The silent group got round 2 too (it was played once), and did not answer it.
    assert {(a, ref) for a, ref in round_refs(s)} == {(a, f"wp-{i}-r2") for a, i in ids.items()}
    await s.cancel(warning)
    (stop_timer,) = await s.timers(warning, broadcasts.STOP)
    assert stop_timer.state == "pending"

    async def stopped():
        return s.sim.stops if len(s.sim.stops) >= 4 else None

    await s.until(stopped, runner=runner, what="stop commands")
    stops = {(x.address, x.reference) for x in s.sim.stops}
    assert stops == {(a, ref) for a, i in ids.items() for ref in (f"wp-{i}", f"wp-{i}-r2")}, (
        "each group is told to stop its delivery's reference and its latest round's"
    )
    # Round 2 (repeat 3, 5 s apart) was still being played by the answering group.
    playing = {(x.address, x.reference) for x in s.sim.stops if x.was_playing}
    answering = next(a for a in ids if a != silent)
    assert (answering, f"wp-{ids[answering]}-r2") in playing
    assert not [p for p in playing if p[0] == silent]
    (entry,) = await s.audit("speaker.stopped", warning)
    assert entry.details["groups"] == 2 and entry.details["commands"] == 4
    pending = [t for t in await s.timers(warning, broadcasts.REBROADCAST) if t.state == "pending"]
    assert pending == [], "the cancel cancelled the next round's timer"

    # Well past the next round's time: nothing more is played.
    played = len(s.sim.commands)
    for _ in range(25):
        await s.dispatcher.sweep()
        await runner.tick()
        await asyncio.sleep(0.1)
    assert len(s.sim.commands) == played
    assert max(r.round for r in await s.rounds(warning)) == 2
    assert [t.state for t in await s.timers(warning, broadcasts.STOP)] == ["done"]


async def test_a_silent_group_is_played_again_then_unreached(silent_speakers):
    s = silent_speakers
    warning = await s.release()
    silent = f"{s.prefix}/{VILLAGES[0]}"
    answering = f"{s.prefix}/{VILLAGES[1]}"

    async def settled():
        found = await s.deliveries(warning)
        return found if found and found[silent].state == "failed" else None

    found = await s.until(settled, timeout=30, what="the silent group unreached")
    d = found[silent]
    assert d.last_error == "unreached: no acknowledgement after 3 plays"
    assert d.attempts == 3 and d.final_at is not None
    assert found[answering].state == "delivered"
    heard = [c for c in s.sim.commands if c.address == silent]
    assert [c.command.reference for c in heard if c.command] == [f"wp-{d.id}"] * 3
    assert {c.outcome for c in heard} == {"silent"}
    # Nothing waits any more: the warning completes.
    await s.until(lambda: _state_is(s, warning, "completed"), timeout=10, what="warning completed")


async def _state_is(s: Speakers, warning_id: str, state: str) -> bool:
    r = await s.client.get(f"/api/v1/warnings/{warning_id}", headers=s.world.operator("duty1"))
    return (await r.json())["state"] == state


async def test_two_timer_runners_publish_a_round_once(speakers):
    s = speakers
    warning = await s.release()
    ids = await delivered(s, warning)

    async def scheduled():
        return await s.timers(warning, broadcasts.REBROADCAST)

    (timer,) = await s.until(scheduled, what="first round scheduled")
    assert timer.payload == {"round": 2} and timer.state == "pending"
    first = min(d.final_at for d in (await s.deliveries(warning)).values() if d.final_at)
    assert abs((timer.due_at - first).total_seconds() - 1.5) < 0.01
    await asyncio.sleep(max(0.0, (timer.due_at - first).total_seconds()) + 0.2)

    runners = [s.runner(), s.runner()]
    fired = await asyncio.gather(*(r.tick() for r in runners))
    assert sum(fired) == 1, "one runner fires the round, the other finds nothing due"
    await asyncio.sleep(0.5)
    r2 = [ref for ref in round_refs(s) if ref[1].endswith("-r2")]
    assert sorted(r2) == sorted((a, f"wp-{i}-r2") for a, i in ids.items())
    assert [r.round for r in await s.rounds(warning)] == [2, 2]
    assert len(await s.audit("speaker.rebroadcast", warning)) == 1
    pending = [t for t in await s.timers(warning, broadcasts.REBROADCAST) if t.state == "pending"]
    assert [t.payload["round"] for t in pending] == [3]


async def test_a_process_without_speaker_channels_hands_the_stop_on(held_speakers):
    s = held_speakers
    warning = await s.release()

    async def sent_to_both():
        found = await s.deliveries(warning)
        return len(found) == 2 and all(d.sent_at for d in found.values())

    await s.until(sent_to_both, what="both groups played")
    broadcasts.unregister(s.dispatcher.broadcaster)  # as in `warnpub serve --no-dispatch`
    try:
        await s.cancel(warning)
        assert await s.runner().tick() == 1
        first, copy = await s.timers(warning, broadcasts.STOP)
        assert (first.state, copy.state) == ("done", "pending")
        assert copy.payload == {"pass": 1, "handed_on": 1}
        assert 4 < (copy.due_at - first.fired_at).total_seconds() <= 5.5
        assert s.sim.stops == []
    finally:
        broadcasts.register(s.dispatcher.broadcaster)
    async with s.db.session() as session:
        row = await session.get(type(copy), copy.id)
        row.due_at = first.fired_at
    assert await s.runner().tick() == 1
    await s.until(
        lambda: _true(len(s.sim.stops) == 2), what="stops from the process with the channel"
    )


async def _true(value: bool) -> bool:
    return value
