"""The review queue's plan counts: people and devices targeted, and how many have no working
route, per pending warning, computed once and kept per warning id + roster version.

A full plan preview (:func:`warnpub.audiences.plan.preview`) walks every target: about 5 s for a
whole-city warning over 100,000 people (SQLite), far too slow for a page read under stress. So
the queue never waits for it for long: a missing entry is computed in the background (one at a
time, on a thread with its own event loop and engine, so the duty room's pages stay quick),
the page that started it waits at most :data:`WAIT_S` for it, and otherwise shows "being computed" with a link to the warning page
(whose own preview fills the cache too). The roster version is one cheap aggregate over people
and devices (count, highest id, last change), so an import or a new device makes every entry
stale at once.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.plan import PlanPreview, preview
from warnpub.audiences.tables import Device, Person
from warnpub.audiences.targeting import Scope
from warnpub.config import Settings
from warnpub.problems import Problem
from warnpub.review import service as review
from warnpub.storage.engine import Database

log = logging.getLogger("warnpub.console")
WAIT_S = 0.15  # how long the queue page waits for counts not yet known
KEEP = 256  # entries kept (a handful of pending warnings × a few roster versions)

Version = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class PlanCounts:
    ok: bool
    targets: int = 0
    people: int = 0
    devices: int = 0
    no_route: int = 0
    why: str = ""


_cache: OrderedDict[tuple[str, Version], PlanCounts] = OrderedDict()
_running: dict[tuple[str, Version], asyncio.Task[None]] = {}
_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


async def roster_version(session: AsyncSession) -> Version:
    """What changes whenever the roster or the devices do (a few ms at 100,000 people)."""
    people = (
        await session.execute(
            select(func.count(), func.max(Person.id), func.max(Person.updated_at))
        )
    ).one()
    devices = (
        await session.execute(
            select(func.count(), func.max(Device.id), func.sum(Device.active.cast(Integer)))
        )
    ).one()
    return (*(str(v) for v in people), *(str(v) for v in devices))


def _store(key: tuple[str, Version], counts: PlanCounts) -> None:
    _cache[key] = counts
    _cache.move_to_end(key)
    while len(_cache) > KEEP:
        _cache.popitem(last=False)


def remember(warning_id: str, version: Version, plan: PlanPreview) -> None:
    _store(
        (warning_id, version),
        PlanCounts(True, plan.targets, plan.people, plan.devices, plan.no_route_total),
    )


def clear() -> None:
    _cache.clear()


def _turn() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    turn = _turns.get(loop)
    if turn is None:
        turn = _turns[loop] = asyncio.Semaphore(1)
    return turn


async def _plan(db: Database, settings: Settings, warning_id: str) -> PlanPreview:
    async with db.reader() as session:
        warning = await review.load(session, warning_id, lock=False)
        return await preview(session, settings, await Scope.of(session, warning))


def _plan_in_thread(settings: Settings, warning_id: str) -> PlanPreview:
    """The preview on an event loop and engine of its own: walking 100,000 targets is CPU work
    that would otherwise hold up every page for seconds; in a thread it only shares the CPU."""

    async def run() -> PlanPreview:
        db = Database(settings.database.url, schema=settings.database.schema_name)
        try:
            return await _plan(db, settings, warning_id)
        finally:
            await db.dispose()

    return asyncio.run(run())


async def _compute(db: Database, settings: Settings, warning_id: str, version: Version) -> None:
    async with _turn():
        if (warning_id, version) in _cache:
            return
        try:
            if ":memory:" in settings.database.url:  # one connection: stay on this loop
                plan = await _plan(db, settings, warning_id)
            else:
                plan = await asyncio.to_thread(_plan_in_thread, settings, warning_id)
            remember(warning_id, version, plan)
        except Problem as problem:
            _store((warning_id, version), PlanCounts(False, why=problem.detail))
        except Exception:  # a background task: log it, try again next time
            log.exception("plan counts failed", extra={"warning_id": warning_id})


async def counts(
    db: Database, settings: Settings, warning_ids: list[str], wait_s: float | None = None
) -> dict[str, PlanCounts | None]:
    """Each warning's counts; None for those still being computed after ``wait_s``."""
    if not warning_ids:
        return {}
    async with db.reader() as session:
        version = await roster_version(session)
    waiting = []
    for wid in warning_ids:
        key = (wid, version)
        if key in _cache:
            continue
        if key in _running:
            continue  # started by an earlier page: do not wait for it again
        task = asyncio.create_task(_compute(db, settings, wid, version))
        _running[key] = task
        task.add_done_callback(lambda _t, k=key: _running.pop(k, None))
        waiting.append(task)
    if waiting:
        await asyncio.wait(waiting, timeout=WAIT_S if wait_s is None else wait_s)
    return {wid: _cache.get((wid, version)) for wid in warning_ids}
