"""Planning: an approved warning becomes delivery rows, highest priority first, chunk by chunk.

Targets stream from :class:`~warnpub.audiences.targeting.Targeter` (reading one snapshot) and
are grouped into rows (:func:`~warnpub.dispatch.outbox.plan_rows`) on a thread of their own,
so that a city-wide plan, seconds of Python work, never holds up the event loop that serves
the API and the workers. A writer commits each chunk in its own transaction (the warning
checked under the write lock: a cancel stops the plan between two chunks) and wakes the
workers: on SQLite a thread with a connection of its own, one statement per chunk; on
PostgreSQL the event loop, one statement per group of rows (``unnest`` of their ids), inserted
as new rows without ON CONFLICT (falling back to it when a row exists: a resumed plan), and
up to ``PG_WRITERS`` chunks of one rank at once, each in its own transaction.

The first chunk is small. Once a chunk has rows to send, the writer waits (at most
``HEAD_START_S``) until a worker has claimed them before it writes on, and the targeting thread
rests meanwhile: on SQLite the plan and the workers share one write lock (and all threads one
interpreter lock), and the first special-needs message must not queue behind the rest of a
million-row plan. While plans run, the garbage collector is tuned for bulk allocation
(see ``_freeze``). Rows are inserted with ON CONFLICT DO NOTHING: a plan cut short by a crash is simply
run again, and ``planned_at`` marks it finished.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub import gc_tuning
from warnpub.audiences.targeting import Scope, Targeter
from warnpub.audit.log import append as audit
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.dispatch.outbox import (
    PlannedRows,
    insert_new_planned,
    plan_rows,
    sqlite_chunk_insert,
)
from warnpub.review import states
from warnpub.storage.engine import TURN_WAIT_S, Database, sqlite_path
from warnpub.storage.tables import Delivery, WarningArea, WarningRecord, WarningReference
from warnpub.storage.turns import WriteTurns

log = logging.getLogger("warnpub.dispatch")
PLANNABLE = (states.APPROVED, states.DISPATCHING)
# Rows in the first transaction of a plan: small, so the first messages leave at once.
FIRST_CHUNK = 500
# Chunks the targeting thread may have ready ahead of the writer.
AHEAD = 4
# After the first chunk with rows to send, the writer waits at most this long for a worker to
# claim them (polling every HEAD_START_POLL_S) before writing on. Only once per plan.
HEAD_START_S = 0.25
HEAD_START_POLL_S = 0.005
# PostgreSQL: chunks of one rank written at once, each in a transaction of its own.
PG_WRITERS = 2


async def unplanned(db: Database) -> list[str]:
    """Released warnings whose plan is not finished, most severe first."""
    async with db.reader() as session:
        rows = await session.execute(
            select(WarningRecord.id)
            .where(
                WarningRecord.state.in_(PLANNABLE),
                WarningRecord.planned_at.is_(None),
                WarningRecord.msg_type != "Cancel",
            )
            .order_by(WarningRecord.level_rank, WarningRecord.decided_at)
        )
        return list(rows.scalars())


async def scope_for(session: AsyncSession, warning: WarningRecord) -> Scope:
    """An Update reaches its own areas and those of the warnings it updates."""
    scope = await Scope.of(session, warning)
    if warning.msg_type != "Update":
        return scope
    earlier = (
        select(WarningArea.code)
        .join(WarningReference, WarningReference.referenced_id == WarningArea.warning_id)
        .where(WarningReference.warning_id == warning.id)
    )
    codes = set(scope.codes) | set((await session.execute(earlier)).scalars())
    return Scope(tuple(sorted(codes)), scope.level, scope.drill)


async def _still_plannable(session: AsyncSession, warning_id: str, *, share: bool = False) -> bool:
    state = (
        await session.execute(
            select(WarningRecord.state)
            .where(WarningRecord.id == warning_id)
            .with_for_update(read=share)
        )
    ).scalar_one_or_none()
    return state in PLANNABLE


async def plan(
    db: Database, settings: Settings, warning_id: str, wake: Callable[[set[str]], None]
) -> int:
    """Write the plan of one warning; returns the number of rows written in this run."""
    async with db.session() as session:
        # Locked, like every state change: a cancel racing with the start of a plan must not
        # be overwritten by "dispatching".
        warning = (
            (
                await session.execute(
                    select(WarningRecord).where(WarningRecord.id == warning_id).with_for_update()
                )
            )
            .scalars()
            .first()
        )
        if warning is None or warning.state not in PLANNABLE or warning.planned_at is not None:
            return 0
        if warning.state == states.APPROVED:
            states.move(warning, states.DISPATCHING)
            await audit(session, "system", "warning.dispatching", f"warning:{warning.id}")
    # Channels with no configured instance are recorded as failed at once (and the route
    # moves on), rather than waiting for a channel that will never come.
    available = frozenset(settings.channels)
    loop = asyncio.get_running_loop()
    path = sqlite_path(db.url) if db.dialect == "sqlite" else None
    handoff = _Handoff(loop, to_thread=path is not None)
    threading.Thread(
        target=_produce_in_thread,
        args=(db, settings, warning, available, handoff),
        name=f"plan {warning_id}",
        daemon=True,
    ).start()
    try:
        if path is not None:
            writer = loop.run_in_executor(
                None,
                _write_sqlite,
                path,
                db.engine.dialect,
                warning_id,
                handoff,
                wake,
                db._write_turn(),
            )
            try:
                written, stopped = await asyncio.shield(writer)
            finally:
                handoff.stop()
                await asyncio.wait([writer])  # its chunk in flight, then it ends
        else:
            written, stopped = await _write(db, warning_id, handoff, wake)
    finally:
        await handoff.close()
    if stopped:
        log.info(
            "plan stopped: the warning was cancelled or expired", extra={"warning_id": warning_id}
        )
        return written
    async with db.session() as session:
        await session.execute(
            update(WarningRecord).where(WarningRecord.id == warning_id).values(planned_at=utcnow())
        )
        await audit(session, "system", "warning.planned", f"warning:{warning_id}", rows=written)
    log.info("plan written", extra={"warning_id": warning_id, "rows": written})
    return written


async def _write(
    db: Database, warning_id: str, handoff: _Handoff, wake: Callable[[set[str]], None]
) -> tuple[int, bool]:
    """Write the chunks on the event loop (PostgreSQL). Returns (rows, stopped by a cancel).

    Each chunk is one transaction that share-locks the warning and inserts its rows as new
    (:func:`~warnpub.dispatch.outbox.insert_new_planned`). After the head start, up to
    ``PG_WRITERS`` chunks that are ready and whose rows all have one and the same rank (tier
    and priority) are written at once, each on its own connection (the server inserts them on
    as many cores), and all of them are committed before the next ones start: rows of a higher
    rank are still committed before any row of a lower one, and between two rounds no chunk
    holds the warning, so a cancel waiting for its lock gets it."""
    written, head_start = 0, True
    ahead: PlannedRows | None = None  # a chunk taken from the handoff for the next round
    ended = False
    while not ended:
        rows = ahead if ahead is not None else await handoff.get()
        ahead = None
        if rows is None:
            break
        rounds = [rows]
        ranks = rows.ranks
        while not head_start and len(rounds) < PG_WRITERS and len(ranks) == 1 and handoff.ready():
            more = await handoff.get()
            if more is None:
                ended = True
            elif more.ranks == ranks:
                rounds.append(more)
                continue
            else:
                ahead = more
            break
        results = await asyncio.gather(
            *(_write_chunk(db, warning_id, r) for r in rounds), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        stopped = False
        for r, done in zip(rounds, results, strict=True):
            if not done:
                stopped = True
                continue
            written += len(r)
            if sendable := r.queued_channels:
                wake(sendable)
        if stopped:
            return written, True
        if head_start and rows.queued_channels:
            head_start = False
            await _first_claimed(db, warning_id)
            handoff.go.set()
    return written, False


async def _write_chunk(db: Database, warning_id: str, rows: PlannedRows) -> bool:
    """One chunk in one transaction (PostgreSQL); False when the warning may not be planned."""
    async with db.session() as session:
        # Share-lock the warning: a cancel or expiry (which locks it for update) either comes
        # before this chunk, and the plan stops, or after it, and stops these rows.
        if not await _still_plannable(session, warning_id, share=True):
            return False
        await insert_new_planned(session, rows)
    return True


# As warnpub.storage.engine sets up every SQLite connection.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA synchronous=FULL",
)


def _write_sqlite(
    path: Path,
    dialect: Any,
    warning_id: str,
    handoff: _Handoff,
    wake: Callable[[set[str]], None],
    turns: WriteTurns | None = None,
) -> tuple[int, bool]:
    """Write the chunks on a thread with a connection of its own (SQLite).

    Each chunk is one transaction of three statements run straight through by the driver
    (BEGIN IMMEDIATE; one insert of the whole chunk that checks the warning's state itself;
    COMMIT), with no round trip through the event loop: with targeting busy on another thread,
    every return from the database waits for the interpreter lock, so the fewer the better.
    Each chunk waits for its turn among the process's writers (``turns``, on the event loop):
    left to SQLite's busy handler, chunk after chunk kept the lock while the dispatcher's
    writers slept between tries (one waited 0.76 s), and agencies' submissions behind them
    (bench/load.py). Returns (rows, stopped by a cancel)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        written, head_start = 0, True
        while (rows := handoff.take()) is not None:
            sql, params = sqlite_chunk_insert(
                dialect, rows, if_warning=warning_id, in_states=PLANNABLE
            )
            held = _turn_from_thread(handoff.loop, turns)
            try:
                conn.execute("BEGIN IMMEDIATE")
                # Under the write lock, the insert checks the warning itself: a cancel or
                # expiry either committed before this chunk, and nothing is inserted, or comes
                # after it, and stops these rows.
                before = conn.total_changes  # (rowcount is -1 for a statement led by WITH)
                conn.execute(sql, params)
                if conn.total_changes == before and not _plannable_sync(conn, warning_id):
                    conn.execute("ROLLBACK")
                    return written, True
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                if held:
                    assert turns is not None
                    with contextlib.suppress(RuntimeError):  # (the loop has closed)
                        handoff.loop.call_soon_threadsafe(turns.release)
            written += len(rows)
            sendable = rows.queued_channels
            if sendable:
                handoff.call(wake, sendable)
                if head_start:
                    head_start = False
                    _first_claimed_sync(conn, warning_id)
                    handoff.go.set()
        return written, False
    finally:
        conn.close()


def _turn_from_thread(loop: asyncio.AbstractEventLoop, turns: WriteTurns | None) -> bool:
    """Wait for the write turn from a thread; True once it is this thread's (False: no turns,
    or none came — one writer held it ``TURN_WAIT_S``, or the loop did not answer — and the
    thread goes ahead to SQLite's busy handler, as every writer did before there were turns)."""
    if turns is None:
        return False
    future = asyncio.run_coroutine_threadsafe(turns.acquire(stuck_s=TURN_WAIT_S), loop)
    try:
        return future.result(timeout=2 * TURN_WAIT_S)
    except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
        future.cancel()  # (a turn handed over meanwhile is passed on: WriteTurns.acquire)
        return False


def _plannable_sync(conn: sqlite3.Connection, warning_id: str) -> bool:
    """(Nothing inserted: the rows existed already, or the warning may not be planned.)"""
    state = conn.execute("SELECT state FROM warnings WHERE id = ?", (warning_id,)).fetchone()
    return state is not None and state[0] in PLANNABLE


def _first_claimed_sync(conn: sqlite3.Connection, warning_id: str) -> None:
    """:func:`_first_claimed` for the SQLite writer thread."""
    deadline = time.monotonic() + HEAD_START_S
    while time.monotonic() < deadline:
        found = conn.execute(
            "SELECT 1 FROM deliveries WHERE warning_id = ? "
            "AND state NOT IN ('queued', 'failed') LIMIT 1",
            (warning_id,),
        ).fetchone()
        if found is not None:
            return
        time.sleep(HEAD_START_POLL_S)


class _Handoff:
    """Chunks from the targeting thread to the writer on the event loop, at most AHEAD ahead.

    The thread ends the stream with None, or with the exception that stopped it; the writer
    stops the thread (:meth:`close`) when it leaves early."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, to_thread: bool = False) -> None:
        self.loop = loop
        # To the writer on the event loop, or to the writer thread (SQLite).
        self.queue: asyncio.Queue[PlannedRows | BaseException | None] = asyncio.Queue()
        self.sync: queue.SimpleQueue[PlannedRows | BaseException | None] | None = (
            queue.SimpleQueue() if to_thread else None
        )
        self.room = threading.Semaphore(AHEAD)
        self.stopped = threading.Event()
        # Set once the first rows to send are claimed: until then the thread rests after
        # handing them over, leaving the CPU (and the GIL) to the workers.
        self.go = threading.Event()
        self.finished: asyncio.Future[None] = loop.create_future()

    # -- on the thread ----------------------------------------------------------------------

    def put(self, rows: PlannedRows) -> bool:
        """Hand a chunk over, waiting for room; False when the writer has stopped."""
        while not self.room.acquire(timeout=0.1):
            if self.stopped.is_set():
                return False
        if self.stopped.is_set():
            return False
        self._deliver(rows)
        return True

    def rest(self) -> bool:
        """Wait until the first rows are claimed; False when the writer has stopped."""
        while not self.go.wait(timeout=0.1):
            if self.stopped.is_set():
                return False
        return not self.stopped.is_set()

    def end(self, error: BaseException | None) -> None:
        """No more chunks: the stream ends, cleanly or with ``error``."""
        self._deliver(error)

    def _deliver(self, item: PlannedRows | BaseException | None) -> None:
        if self.sync is not None:
            self.sync.put(item)
        else:
            self.call(self.queue.put_nowait, item)

    def finish(self) -> None:
        """The thread is done with everything (the writer may return)."""
        self.call(self._finish)

    def _finish(self) -> None:
        if not self.finished.done():
            self.finished.set_result(None)

    def call(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn`` on the event loop (from a thread)."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the event loop is closed: nobody is waiting any more
            pass

    # -- on the event loop ------------------------------------------------------------------

    def ready(self) -> bool:
        """A chunk (or the end of the stream) is waiting: :meth:`get` returns at once."""
        return not self.queue.empty()

    async def get(self) -> PlannedRows | None:
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        if item is not None:
            self.room.release()
        return item

    def stop(self) -> None:
        self.stopped.set()
        self.go.set()

    async def close(self) -> None:
        """Stop the thread (if it is still going) and wait until it has let go of the database."""
        self.stop()
        await self.finished

    # -- on the writer thread ---------------------------------------------------------------

    def take(self) -> PlannedRows | None:
        """The next chunk; None at the end of the stream or once the plan is stopped."""
        assert self.sync is not None
        while not self.stopped.is_set():
            try:
                item = self.sync.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                self.room.release()
            return item
        return None


def _produce_in_thread(
    db: Database,
    settings: Settings,
    warning: WarningRecord,
    available: frozenset[str],
    handoff: _Handoff,
) -> None:
    error: BaseException | None = None
    _freeze()
    try:
        asyncio.run(_produce(db, settings, warning, available, handoff))
    except BaseException as exc:  # handed to the writer, which raises it
        error = exc
    finally:
        handoff.end(error)
        _unfreeze()
        handoff.finish()


# While plans run, the garbage collector is tuned for bulk allocation (warnpub.gc_tuning).
def _freeze() -> None:
    gc_tuning.enter()


def _unfreeze() -> None:
    # The last user unfreezes what existed before and collects in full at once: while the
    # workers send, not in the middle of the next plan's first chunk.
    if gc_tuning.leave():
        gc.collect()


async def _produce(
    db: Database,
    settings: Settings,
    warning: WarningRecord,
    available: frozenset[str],
    handoff: _Handoff,
) -> None:
    """Target, group into rows, hand over chunk by chunk (runs on the planning thread, with
    its own engine: connections belong to the event loop that opened them)."""
    own = Database(db.url, schema=db.schema)
    try:
        async with own.reader() as reader:
            scope = await scope_for(reader, warning)
            try:
                await _chunks(
                    reader,
                    scope,
                    settings,
                    warning.id,
                    available,
                    handoff,
                    eager_first=own.dialect == "postgresql",
                )
            finally:
                await _closed_streams()
    finally:
        await own.dispose()


async def _chunks(
    reader: AsyncSession,
    scope: Scope,
    settings: Settings,
    warning_id: str,
    available: frozenset[str],
    handoff: _Handoff,
    *,
    eager_first: bool = False,
) -> None:
    # The first chunk is small, so that the first rows (the highest tier) are committed and
    # sending starts at once; the rest go in chunks of ``plan_chunk`` rows. With
    # ``eager_first`` (PostgreSQL) the first chunk goes as soon as the first batch is in, even
    # when it is short of FIRST_CHUNK rows: there, the first read of the next tier can take a
    # few hundred milliseconds (the village devices, the first batch, are not held up by it).
    size = settings.dispatch.plan_chunk
    limit = min(FIRST_CHUNK, size)
    pending = PlannedRows()
    first_out = False

    def hand_over() -> bool:
        nonlocal pending, limit, first_out
        first = not handoff.go.is_set() and pending.queued_channels
        if not handoff.put(pending) or (first and not handoff.rest()):
            return False
        pending, limit, first_out = PlannedRows(), size, True
        return True

    async with aclosing(Targeter(settings).batches(reader, scope)) as batches:
        async for batch in batches:
            if handoff.stopped.is_set():
                return
            now, start = utcnow(), 0
            while start < len(batch):
                # About one row per target: take as many targets as the chunk has room for.
                take = max(1, limit - len(pending))
                plan_rows(warning_id, batch[start : start + take], now, available, pending)
                start += take
                if len(pending) >= limit and not hand_over():
                    return
            if eager_first and not first_out and pending and not hand_over():
                return
    if pending:
        handoff.put(pending)


async def _closed_streams() -> None:
    """Wait for the streams a stopped plan left open to close, before their connection does.

    Targeting reads through nested async generators; when a plan stops half-way, the event loop
    closes the inner ones on tasks of their own (and their reads ahead run on tasks too). This
    loop belongs to the planning thread alone, so every other task in it is one of those."""
    for _ in range(10):
        await asyncio.sleep(0)  # a generator's finalizer creates its task on the next turn
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if not others:
            return
        await asyncio.wait(others, timeout=1.0)


async def _first_claimed(db: Database, warning_id: str) -> None:
    """Wait (at most HEAD_START_S) until a worker has claimed a row of this warning."""
    query = (
        select(Delivery.id)
        .where(Delivery.warning_id == warning_id, Delivery.state.not_in(("queued", "failed")))
        .limit(1)
    )
    deadline = time.monotonic() + HEAD_START_S
    while time.monotonic() < deadline:
        async with db.reader() as session:
            if (await session.execute(query)).first() is not None:
                return
        await asyncio.sleep(HEAD_START_POLL_S)
