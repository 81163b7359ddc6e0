"""Database engine and sessions: SQLite (WAL, foreign keys, immediate write locks) or PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from warnpub.storage.turns import WriteTurns

log = logging.getLogger("warnpub.storage")

# A writer waiting for its turn goes ahead anyway, leaving the queueing to SQLite's busy
# handler, once one writer has held the turn this long (never a deadlock: at worst the old
# behaviour, a little later). A long queue that moves is waited out: see storage.turns.
TURN_WAIT_S = 5.0

# Set while a task (and the tasks it starts) holds the process's SQLite write turn: a session
# opened inside another one does not queue behind its own parent.
_holding_turn: ContextVar[bool] = ContextVar("warnpub_holding_write_turn", default=False)


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)


def sync_sqlite_engine(path: Path) -> Engine:
    """A synchronous engine on the SQLite file ``path`` with the settings of
    :func:`make_engine` (WAL, foreign keys, busy timeout, FULL sync, BEGIN IMMEDIATE): for a
    writer that runs a whole transaction on a thread of its own, with no round trip through the
    event loop per statement (warnpub.intake.batch)."""
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_engine(
    url: str, *, echo: bool = False, schema: str = "", immediate: bool = True, **kwargs: Any
) -> AsyncEngine:
    """An async engine. SQLite files get WAL, foreign keys, a busy timeout and (``immediate``)
    BEGIN IMMEDIATE, so that concurrent writers queue instead of failing half-way through a
    transaction. ``immediate=False`` gives plain deferred transactions for long reads, which in
    WAL mode see one snapshot and never hold up writers."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide where transactions begin.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # FULL: a committed transaction survives power loss, not only a process crash.
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if schema:
        # PostgreSQL only: keep every warnpub table in this schema (it must exist).
        kwargs.setdefault("connect_args", {}).setdefault("server_settings", {})["search_path"] = (
            schema
        )
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, echo=echo, **kwargs)


class Database:
    """The engine plus a session factory. ``async with db.session() as s`` commits on success."""

    def __init__(
        self, url: str, *, echo: bool = False, schema: str = "", turns: bool = True, **kwargs: Any
    ) -> None:
        self.url, self.schema = url, schema
        self.turns = turns  # False: SQLite's busy handler alone orders writers (bench/write_turns.py)
        self.engine = make_engine(url, echo=echo, schema=schema, **kwargs)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Long reads (targeting a city, reports) must not take SQLite's write lock.
        self.read_engine = (
            make_engine(url, echo=echo, immediate=False, **kwargs)
            if self.engine.dialect.name == "sqlite"
            else self.engine
        )
        self._readers = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._turn: tuple[asyncio.AbstractEventLoop, WriteTurns] | None = None
        self._closers: list[Callable[[], None]] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self, *, background: bool = False) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back on any exception.

        On SQLite the process's writers take turns before BEGIN IMMEDIATE (first come, first
        served; ``background`` ones after every other writer waiting: storage.turns). SQLite's
        own busy handler makes a waiting writer sleep up to 100 ms between tries, so under
        contention the lock sat idle while writers slept, and the luckiest retry won (measured
        by bench/write_turns.py, docs/performance.md: with a dozen writers 1.2–2× the
        transactions per second, p99 34–88 ms instead of 0.3–0.8 s, the slowest 0.04–0.1 s
        instead of 2–3 s)."""
        turn = self._write_turn()
        if turn is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        acquired = await turn.acquire(background=background, stuck_s=TURN_WAIT_S)
        if not acquired:
            log.warning(
                "a database writer (%s) has held the write turn for %.0f s; another goes ahead",
                turn.holder or "?",
                TURN_WAIT_S,
            )
        token = _holding_turn.set(True)
        try:
            async with self._sessions() as session, session.begin():
                yield session
        finally:
            _holding_turn.reset(token)
            if acquired:
                turn.release()

    def _write_turn(self) -> WriteTurns | None:
        """The process's queue of SQLite writers on this event loop (None: no queueing —
        PostgreSQL, or this task already holds the turn)."""
        if not self.turns or self.engine.dialect.name != "sqlite" or _holding_turn.get():
            return None
        loop = asyncio.get_running_loop()
        if self._turn is None or self._turn[0] is not loop:
            self._turn = (loop, WriteTurns())
        return self._turn[1]

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction: one consistent snapshot; SQLite writers are not held up."""
        async with self._readers() as session, session.begin():
            yield session

    def on_dispose(self, close: Callable[[], None]) -> None:
        """Call ``close`` when this database is disposed (a writer's own connection)."""
        self._closers.append(close)

    async def dispose(self) -> None:
        closers, self._closers = self._closers, []
        for close in closers:
            await asyncio.to_thread(close)
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
