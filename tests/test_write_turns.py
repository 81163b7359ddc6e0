"""The process's SQLite writers take turns (warnpub.storage.turns, Database.session)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from warnpub.storage.engine import Database
from warnpub.storage.turns import WriteTurns


async def test_first_come_first_served_and_background_last() -> None:
    turns = WriteTurns()
    order: list[str] = []
    await turns.acquire()

    async def writer(name: str, background: bool = False) -> None:
        await turns.acquire(background=background)
        order.append(name)
        turns.release()

    tasks = [
        asyncio.create_task(writer("reply-1", background=True)),
        asyncio.create_task(writer("claim-1")),
        asyncio.create_task(writer("reply-2", background=True)),
        asyncio.create_task(writer("record-1")),
    ]
    await asyncio.sleep(0)  # all four are waiting now
    assert turns.waiting() == 2 and turns.waiting(background=True) == 2
    turns.release()
    await asyncio.gather(*tasks)
    assert order == ["claim-1", "record-1", "reply-1", "reply-2"]
    assert not turns.held


async def test_background_waits_at_most_background_wait_s() -> None:
    turns = WriteTurns(background_wait_s=0.05)
    order: list[str] = []
    await turns.acquire()

    async def writer(name: str, background: bool = False) -> None:
        await turns.acquire(background=background)
        order.append(name)
        await asyncio.sleep(0.03)  # each holds the turn a while
        turns.release()

    reply = asyncio.create_task(writer("reply", background=True))
    claims = [asyncio.create_task(writer(f"claim-{i}")) for i in range(6)]
    await asyncio.sleep(0)
    turns.release()
    await asyncio.gather(reply, *claims)
    # Not starved behind six foreground writers: it went once it had waited 0.05 s.
    assert 1 <= order.index("reply") < 6, order


async def test_a_waiter_that_gives_up_passes_the_turn_on() -> None:
    turns = WriteTurns()
    await turns.acquire()
    quitter = asyncio.create_task(turns.acquire())
    patient = asyncio.create_task(turns.acquire())
    await asyncio.sleep(0)
    quitter.cancel()
    turns.release()
    await asyncio.wait_for(patient, 1)  # the turn skipped the cancelled waiter
    assert turns.held
    turns.release()
    assert not turns.held

    # Handed the turn and cancelled in the same step: it is passed on, not lost.
    await turns.acquire()
    handed = asyncio.create_task(turns.acquire())
    after = asyncio.create_task(turns.acquire())
    await asyncio.sleep(0)
    turns.release()  # handed now owns it ...
    handed.cancel()  # ... and is cancelled before it ran
    await asyncio.wait_for(after, 1)
    turns.release()
    assert not turns.held


async def test_sessions_queue_and_readers_take_no_turn(tmp_path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    try:
        async with db.session() as s:
            await s.execute(text("create table t (v integer)"))

        async def insert(v: int) -> None:
            async with db.session() as s:
                await s.execute(text("insert into t values (:v)"), {"v": v})
                await asyncio.sleep(0.01)  # the lock is held across awaits

        await asyncio.wait_for(asyncio.gather(*(insert(i) for i in range(20))), 10)
        async with db.session() as outer:
            await outer.execute(text("select 1"))
            # A reader takes no turn: it reads beside the writer holding one.
            async with db.reader() as r:
                assert (await r.execute(text("select count(*) from t"))).scalar_one() == 20
        async with db.session(background=True) as s:
            assert (await s.execute(text("select count(*) from t"))).scalar_one() == 20
    finally:
        await db.dispose()


async def test_a_long_queue_that_moves_is_waited_out() -> None:
    # Each writer holds the turn 20 ms; the last of 15 waits ~0.3 s, longer than stuck_s,
    # and still gets its turn in order: a waiter gives up only on a holder that is stuck.
    turns = WriteTurns()
    order: list[int] = []

    async def writer(i: int) -> bool:
        got = await turns.acquire(stuck_s=0.1)
        if got:
            order.append(i)
            await asyncio.sleep(0.02)
            turns.release()
        return got

    got = await asyncio.gather(*(writer(i) for i in range(15)))
    assert all(got) and order == list(range(15))
    assert not turns.held


async def test_a_waiter_goes_ahead_when_the_holder_is_stuck() -> None:
    turns = WriteTurns()
    await turns.acquire()  # held and never released in time
    first = asyncio.create_task(turns.acquire(stuck_s=0.05))
    second = asyncio.create_task(turns.acquire(stuck_s=10))
    assert await asyncio.wait_for(first, 1) is False  # gave up its place, without the turn
    assert turns.waiting() == 1 and turns.held_for() >= 0.05
    turns.release()  # the stuck holder is done at last: the turn goes to the one still waiting
    assert await asyncio.wait_for(second, 1) is True
    turns.release()
    assert not turns.held


async def test_the_intake_writer_goes_ahead_of_the_queue_but_never_twice_in_a_row() -> None:
    turns = WriteTurns()
    order: list[str] = []
    await turns.acquire()

    async def writer(name: str, *, first: bool = False, again: bool = False) -> None:
        await turns.acquire(first=first)
        order.append(name)
        turns.release()
        if again:  # the intake writer comes back with what was queued meanwhile
            await writer(name + "-again", first=True)

    tasks = [
        asyncio.create_task(writer("claim-1")),
        asyncio.create_task(writer("record-1")),
        asyncio.create_task(writer("intake", first=True, again=True)),
    ]
    await asyncio.sleep(0)
    assert turns.waiting() == 2 and turns.waiting(first=True) == 1
    turns.release()
    await asyncio.gather(*tasks)
    # Ahead of the two that came before it; back at once, but after one of them.
    assert order == ["intake", "claim-1", "intake-again", "record-1"]
