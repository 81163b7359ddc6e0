"""Database engine and sessions: SQLite (WAL, foreign keys, immediate write locks) or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if (
        parsed.get_backend_name() != "sqlite"
        or not parsed.database
        or parsed.database == ":memory:"
    ):
        return None
    return Path(parsed.database)


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

    def __init__(self, url: str, *, echo: bool = False, schema: str = "", **kwargs: Any) -> None:
        self.url, self.schema = url, schema
        self.engine = make_engine(url, echo=echo, schema=schema, **kwargs)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Long reads (targeting a city, reports) must not take SQLite's write lock.
        self.read_engine = (
            make_engine(url, echo=echo, immediate=False, **kwargs)
            if self.engine.dialect.name == "sqlite"
            else self.engine
        )
        self._readers = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction: one consistent snapshot; SQLite writers are not held up."""
        async with self._readers() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
