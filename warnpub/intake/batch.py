"""Agencies' submissions that arrive together, written in one transaction (SQLite).

During a flood twenty agencies may submit a few hundred warnings a second while a large warning
is being sent. On SQLite every write transaction waits its turn for the one write lock, and a
submission written alone held it for a dozen round trips between the event loop and the
database's thread (look up the key, the areas, the identifier; insert the warning, its areas,
two timers, the audit entry and the chain's head, the key) — about 15 ms each under load, so the
turns queued up, the dispatcher's claims waited behind them and the send nearly stopped
(bench/load.py).

Here each submission is queued; one task takes everything queued and checks and writes it in
one transaction, on a connection and a thread of the writer's own (:class:`_Store`), so that the
statements do not each go through the busy event loop: on the thread, BEGIN IMMEDIATE and the
stored data the checks need, read for all of them at once (:class:`BatchLookups`); on the event
loop, the checks — :func:`warnpub.intake.service._submit`'s own — staging the rows, with the
audit chain's head advanced in memory by :func:`warnpub.audit.log.append` for each entry
(:class:`_Staged`, :class:`warnpub.audit.log.ChainHead`); on the thread again, one INSERT per
table, the chain's head, COMMIT. The batch takes the process's write turn like any other writer. A refused submission (a 4xx)
stages nothing and gets its own answer; the others are kept. Each is answered only after the
commit. Should the batch fail as a whole, each of its submissions is written in a transaction
of its own, exactly as if it had come alone.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, and_, insert, or_, select

from warnpub.audiences.tables import Area
from warnpub.audit.log import ChainHead
from warnpub.auth.callers import Caller
from warnpub.config import Settings
from warnpub.intake.service import (
    Lookups,
    Outcome,
    Prepared,
    Submission,
    _submit,
    submit_alone,
)
from warnpub.problems import Problem
from warnpub.storage.engine import TURN_WAIT_S, Database, sqlite_path, sync_sqlite_engine
from warnpub.storage.tables import IdempotencyRecord, WarningRecord

log = logging.getLogger("warnpub.intake")

MAX_BATCH = 200  # submissions per transaction at most

_writers: weakref.WeakKeyDictionary[Database, IntakeWriter] = weakref.WeakKeyDictionary()


def writer_for(db: Database, settings: Settings) -> IntakeWriter:
    """The process's intake writer for ``db`` on the running event loop."""
    loop = asyncio.get_running_loop()
    writer = _writers.get(db)
    if writer is None or writer.loop is not loop or writer.settings is not settings:
        writer = _writers[db] = IntakeWriter(db, settings)
    return writer


@dataclass(slots=True)
class _Waiting:
    caller: Caller
    sub: Submission
    pre: Prepared
    answer: asyncio.Future[Outcome]


class IntakeWriter:
    """The queue of one process's submissions over ``db``."""

    def __init__(self, db: Database, settings: Settings, max_batch: int = MAX_BATCH) -> None:
        self.db, self.settings, self.max_batch = db, settings, max_batch
        self.loop = asyncio.get_running_loop()
        self._queue: list[_Waiting] = []
        self._task: asyncio.Task[None] | None = None
        self._store: _Store | None = None  # made on the first batch
        self.batches = 0  # transactions committed with more than one submission
        self.fallbacks = 0  # batches written again one submission at a time

    async def submit(self, caller: Caller, sub: Submission, pre: Prepared) -> Outcome:
        answer: asyncio.Future[Outcome] = self.loop.create_future()
        # A caller that went away leaves its outcome unread: read it here.
        answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(_Waiting(caller, sub, pre, answer))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="warnpub-intake-writer")
        # Written whether or not this caller is still waiting for it.
        return await asyncio.shield(answer)

    async def _drain(self) -> None:
        while self._queue:
            taken, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                results = await self._batch(taken)
            except Exception:
                log.warning(
                    "a batch of %d submissions failed; writing them one by one",
                    len(taken),
                    exc_info=True,
                )
                self.fallbacks += 1
                for waiting in taken:
                    await self._alone(waiting)
                continue
            self.batches += len(taken) > 1
            for waiting, result in zip(taken, results, strict=True):
                if waiting.answer.done():
                    continue
                if isinstance(result, BaseException):
                    waiting.answer.set_exception(result)
                else:
                    waiting.answer.set_result(result)

    async def _alone(self, waiting: _Waiting) -> None:
        try:
            outcome = await submit_alone(
                self.db, self.settings, waiting.caller, waiting.sub, waiting.pre
            )
        except Exception as exc:
            if not waiting.answer.done():
                waiting.answer.set_exception(exc)
            return
        if not waiting.answer.done():
            waiting.answer.set_result(outcome)

    async def _batch(self, taken: list[_Waiting]) -> list[Outcome | Problem]:
        """One transaction for ``taken``: the reads and the writes run on the writer's thread
        (two round trips in all), the checks on the event loop in between."""
        if self._store is None:
            self._store = _Store(self.db)
            self.db.on_dispose(self._store.close)
        store, loop = self._store, asyncio.get_running_loop()
        # The process's writers take turns (storage.turns): wait like any of them.
        turn = self.db._write_turn()
        acquired = turn is not None and await turn.acquire(first=True, stuck_s=TURN_WAIT_S)
        try:
            look, head = await loop.run_in_executor(store.thread, store.begin_and_read, taken)
            try:
                staged = _Staged(head)
                results: list[Outcome | Problem] = []
                for waiting in taken:
                    try:
                        results.append(
                            await _submit(
                                staged,  # type: ignore[arg-type]
                                self.settings,
                                waiting.caller,
                                waiting.sub,
                                waiting.pre,
                                look,
                            )
                        )
                    except Problem as problem:  # refused before anything was staged
                        results.append(problem)
                await loop.run_in_executor(store.thread, store.write_and_commit, staged)
            except BaseException:
                await asyncio.shield(loop.run_in_executor(store.thread, store.rollback))
                raise
        finally:
            if acquired:
                assert turn is not None
                turn.release()
        return results


class _Store:
    """The writer's own connection (synchronous, SQLite), used on one thread of its own: a
    batch's statements run there one after another, instead of each going to the database's
    thread and back through a busy event loop."""

    def __init__(self, db: Database) -> None:
        path = sqlite_path(db.url)
        assert path is not None
        self.engine = sync_sqlite_engine(path)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warnpub-intake")
        self.conn: Connection | None = None
        self.trans: Any = None

    def begin_and_read(self, taken: list[_Waiting]) -> tuple[BatchLookups, ChainHead]:
        if self.conn is None:
            self.conn = self.engine.connect()
        self.trans = self.conn.begin()  # BEGIN IMMEDIATE
        return BatchLookups.read(self.conn, taken), ChainHead.read(self.conn)

    def write_and_commit(self, staged: _Staged) -> None:
        assert self.conn is not None and self.trans is not None
        staged.write(self.conn)
        self.trans.commit()
        self.trans = None

    def rollback(self) -> None:
        if self.trans is not None:
            self.trans.rollback()
            self.trans = None

    def close(self) -> None:
        """The connection closed on its thread, then the thread and the engine (when the
        database is disposed)."""

        def on_thread() -> None:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

        self.thread.submit(on_thread).result()
        self.thread.shutdown()
        self.engine.dispose()


class BatchLookups(Lookups):
    """The stored data a batch's checks read, read for the whole batch in three statements,
    plus what the batch itself writes (a later submission sees an earlier one's warning and
    idempotency key)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], IdempotencyRecord] = {}
        self._warnings: dict[tuple[str, str], WarningRecord] = {}
        self._unknown: set[str] = set()

    @classmethod
    def read(cls, conn: Connection, taken: Iterable[_Waiting]) -> BatchLookups:
        look = cls()
        keys: dict[str, set[str]] = defaultdict(set)
        names: dict[str, set[str]] = defaultdict(set)
        codes: set[str] = set()
        for w in taken:
            if w.sub.idempotency_key is not None:
                keys[w.caller.actor].add(w.sub.idempotency_key)
            names[w.sub.alert.sender].add(w.sub.alert.identifier)
            for ref in w.sub.alert.references:
                names[ref.sender].add(ref.identifier)
            codes.update(w.pre.ask.codes)
        if keys:
            t = IdempotencyRecord.__table__
            rows = conn.execute(
                select(t).where(
                    or_(*(and_(t.c.caller == c, t.c.key.in_(ks)) for c, ks in keys.items()))
                )
            )
            for row in rows:
                rec = IdempotencyRecord(**row._mapping)
                look._keys[(rec.caller, rec.key)] = rec
        if names:
            t = WarningRecord.__table__
            rows = conn.execute(
                select(t).where(
                    or_(
                        *(
                            and_(t.c.sender == s, t.c.identifier.in_(ids))
                            for s, ids in names.items()
                        )
                    )
                )
            )
            for row in rows:
                warning = WarningRecord(**row._mapping)
                look._warnings[(warning.sender, warning.identifier)] = warning
        if codes:
            known = set(conn.execute(select(Area.code).where(Area.code.in_(codes))).scalars())
            look._unknown = codes - known
        return look

    async def idempotency(self, caller: str, key: str) -> IdempotencyRecord | None:
        return self._keys.get((caller, key))

    async def unknown_codes(self, codes: list[str]) -> list[str]:
        return [c for c in sorted(set(codes)) if c in self._unknown]

    async def warning(self, sender: str, identifier: str) -> WarningRecord | None:
        return self._warnings.get((sender, identifier))

    def stored(self, warning: WarningRecord) -> None:
        self._warnings[(warning.sender, warning.identifier)] = warning

    def remembered(self, record: IdempotencyRecord) -> None:
        self._keys[(record.caller, record.key)] = record


class _Staged:
    """What :func:`_submit` is given as its session inside a batch: rows are staged and
    inserted together at the end (:meth:`write`), and :func:`warnpub.audit.log.append` advances
    the chain's head in memory (``audit_head``). It runs no statement: one would be an error,
    and the batch is written again one submission at a time."""

    def __init__(self, head: ChainHead) -> None:
        self.audit_head = head
        self.first: list[Any] = []  # warnings: the other rows refer to them
        self.then: list[Any] = []

    def add(self, obj: Any) -> None:
        (self.first if isinstance(obj, WarningRecord) else self.then).append(obj)

    def add_all(self, objs: Iterable[Any]) -> None:
        for obj in objs:
            self.add(obj)

    async def flush(self) -> None:
        """Rows are inserted at the end of the batch."""

    async def execute(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        raise RuntimeError(f"a statement a batch of submissions does not expect: {statement}")

    def write(self, conn: Connection) -> None:
        """Every staged row, one INSERT … executemany per table (warnings first: the other
        rows refer to them); the ORM's unit of work, one object at a time, took longer than
        the checks of the whole batch."""
        tables: dict[Table, list[dict[str, Any]]] = {}
        for obj in (*self.first, *self.then):
            table: Table = obj.__table__
            tables.setdefault(table, []).append({c.key: getattr(obj, c.key) for c in table.c})
        for table, rows in tables.items():
            for column in table.primary_key.columns:
                if all(row[column.key] is None for row in rows):  # numbered by the database
                    for row in rows:
                        del row[column.key]
            conn.execute(insert(table), rows)
        self.audit_head.write(conn)
