"""The planner on its own: grouped rows, chunks, resuming, cancelling (no workers running)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.factories import alert_json, seed
from warnpub.audiences.demo_data import DemoOptions, generate
from warnpub.audiences.routes import RouteChoice
from warnpub.audiences.targeting import Target
from warnpub.dispatch import planner
from warnpub.dispatch.outbox import plan_rows, stage_rows
from warnpub.review import service as review
from warnpub.storage.tables import Delivery, Operator, WarningRecord

pytestmark = pytest.mark.postgres
CITY = "320481000000"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def target(kind: str, id: int, route: tuple[tuple[str, ...], ...], **kw: object) -> Target:
    return Target(
        kind, id, kw.pop("area", "320481101301"), 1, "t", 12, RouteChoice("r", route, True), **kw
    )  # type: ignore[arg-type]


def test_grouped_rows_are_the_rows_one_by_one():
    available = frozenset({"sms", "speaker"})
    targets = [
        target("person", 1, (("sms",), ("email",))),
        target("person", 2, (("sms",), ("email",)), area="320481101302"),
        target("person", 3, (("speaker", "voice"), ("relay",)), ack_required=True),
        target("person", 4, (("relay", "speaker", "board"),), language="en"),
        target("person", 5, (("board",), ("email",), ("sms",))),
        target("device", 6, (("speaker",),)),
        target("device", 7, (("board",),)),
    ]
    planned = plan_rows("W1", targets, NOW, available)
    expected = [
        row
        for t in targets
        for row in stage_rows(
            "W1",
            t.kind,
            t.id,
            t.route,
            0,
            tier=t.tier,
            priority=t.priority,
            area_code=t.area_code,
            language=t.language,
            ack=t.ack_required,
            now=NOW,
            available=available,
        )
    ]

    def key(row: dict[str, object]) -> tuple[object, ...]:
        return row["target_kind"], row["target_id"], row["channel"]

    assert sorted(planned.dicts(), key=key) == sorted(expected, key=key)
    assert len(planned) == len(expected) == 9
    # A step whose channels are all missing fails at once and the next step is planned.
    assert {
        (r["target_id"], r["channel"], r["state"]) for r in expected if r["target_id"] == 5
    } == {
        (5, "email", "failed"),
        (5, "sms", "queued"),
    }
    assert planned.queued_channels == {"sms", "speaker"}


@pytest.fixture
async def released(settings, db, client):
    """A city-wide warning approved by an operator, with nobody planning it yet."""
    world = await seed(db, settings)
    async with db.session() as s:
        await generate(s, DemoOptions(people=1500, seed=5, villages_per_town=2))
    settings.channels = {"sms": []}
    settings.dispatch.plan_chunk = 400  # several chunks
    r = await client.post(
        "/api/v1/warnings",
        json=alert_json(severity="Moderate", code=CITY),
        headers=world.agency("QX"),
    )
    warning = await r.json()
    r = await client.post(
        f"/api/v1/warnings/{warning['id']}/approve", headers=world.operator("duty1")
    )
    assert r.status == 200, await r.text()
    return warning["id"]


async def counts(db, warning_id: str) -> tuple[int, int]:
    async with db.reader() as s:
        rows = (
            await s.execute(
                select(func.count()).select_from(Delivery).where(Delivery.warning_id == warning_id)
            )
        ).scalar_one()
        distinct = (
            await s.execute(
                select(func.count()).select_from(
                    select(Delivery.target_kind, Delivery.target_id, Delivery.channel)
                    .where(Delivery.warning_id == warning_id)
                    .distinct()
                    .subquery()
                )
            )
        ).scalar_one()
    return rows, distinct


async def test_a_plan_run_again_writes_each_row_once(settings, db, released, monkeypatch):
    monkeypatch.setattr(planner, "HEAD_START_S", 0.0)  # no worker will claim anything
    woken: list[set[str]] = []
    first = await planner.plan(db, settings, released, woken.append)
    rows, distinct = await counts(db, released)
    assert first == rows == distinct > 1500
    assert woken and set().union(*woken) == {"sms"}
    # As after a crash before "planned_at" was written: the plan runs again from the start.
    async with db.session() as s:
        warning = await s.get(WarningRecord, released)
        warning.planned_at = None
    again = await planner.plan(db, settings, released, lambda kinds: None)
    assert again == first
    assert await counts(db, released) == (rows, distinct)
    async with db.reader() as s:
        states = dict(
            (
                await s.execute(
                    select(Delivery.state, func.count())
                    .where(Delivery.warning_id == released)
                    .group_by(Delivery.state)
                )
            ).all()
        )
        tiers = (
            await s.execute(
                select(Delivery.tier).where(Delivery.warning_id == released).order_by(Delivery.id)
            )
        ).scalars()
        tiers = list(tiers)
    assert set(states) == {"queued", "failed"}  # only SMS is configured here
    assert tiers == sorted(tiers), "rows are written highest priority first"


async def test_a_cancel_stops_the_plan_between_chunks(settings, db, released, monkeypatch):
    monkeypatch.setattr(planner, "HEAD_START_S", 0.0)
    cancelled = threading.Event()
    planned = 0
    real_plan_rows = planner.plan_rows

    def plan_rows(*args, **kw):  # on the planning thread
        nonlocal planned
        if planned >= planner.FIRST_CHUNK:  # the first chunk is out: hold the second
            assert cancelled.wait(10), "the cancel did not come"
        planned += len(args[1])
        return real_plan_rows(*args, **kw)

    async def cancel() -> None:  # an operator cancels once the first chunk is committed
        async with db.session() as s:
            op = (
                await s.execute(select(Operator).where(Operator.username == "duty1"))
            ).scalar_one()
            await review.cancel(s, released, op, "wrong area")
        cancelled.set()

    tasks: list[asyncio.Task[None]] = []

    def wake(kinds: set[str]) -> None:
        if not tasks:
            tasks.append(asyncio.ensure_future(cancel()))

    monkeypatch.setattr(planner, "plan_rows", plan_rows)
    written = await planner.plan(db, settings, released, wake)
    await asyncio.gather(*tasks)
    rows, _ = await counts(db, released)
    assert 0 < written == rows < 2 * planner.FIRST_CHUNK  # the first chunk only
    async with db.reader() as s:
        queued = (
            await s.execute(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.warning_id == released, Delivery.state == "queued")
            )
        ).scalar_one()
        warning = await s.get(WarningRecord, released)
    assert queued == 0 and warning.state == "cancelled" and warning.planned_at is None


async def test_on_sqlite_each_chunk_waits_for_the_write_turn(
    settings, db, released, monkeypatch, backend
):
    if backend != "sqlite":
        pytest.skip("write turns order one process's SQLite writers")
    monkeypatch.setattr(planner, "HEAD_START_S", 0.0)
    turns = db._write_turn()
    seen: list[int] = []
    holding: list[asyncio.Task[None]] = []

    async def hold() -> None:
        await turns.acquire()
        try:
            seen.append((await counts(db, released))[0])
            await asyncio.sleep(0.4)  # the planner's thread waits in the queue meanwhile
            seen.append((await counts(db, released))[0])
        finally:
            turns.release()

    def wake(kinds: set[str]) -> None:  # on the event loop, after each chunk
        if not holding:
            holding.append(asyncio.create_task(hold()))

    written = await planner.plan(db, settings, released, wake)
    await holding[0]
    assert seen[0] < written, "the plan was not done when the test took the turn"
    assert seen[0] == seen[1], "a chunk was written while another writer held the turn"
    assert (await counts(db, released))[0] == written
