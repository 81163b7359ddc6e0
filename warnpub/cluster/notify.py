"""Wake-ups by PostgreSQL LISTEN/NOTIFY.

Triggers (migration 0010) send ``NOTIFY warnpub_work, '<schema>:<topic>'`` when a transaction
that queued work commits: ``deliveries:<kinds>`` (rows of those channel kinds due now),
``timers`` (a timer due now) or ``plan`` (a warning approved). Each worker process keeps one
dedicated asyncpg connection LISTENing (outside the pool: a pooled connection would be
reset and handed to others) and passes what it hears to the dispatcher and timer runner.

The connection is checked every ``check_s`` (a cut network does not always close it) and is
opened again with backoff when it drops. Notifications sent while it was down are lost, so a
(re)connection wakes everything once, and polling stays on as a slow fallback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger("warnpub.cluster")
CHANNEL = "warnpub_work"
TOPICS = ("deliveries", "timers", "plan")
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0


@dataclass(frozen=True, slots=True)
class Work:
    topic: str  # deliveries | timers | plan
    kinds: tuple[str, ...] = ()  # deliveries: the channel kinds with rows due


def parse(payload: str, schema: str) -> Work | None:
    """The work a payload announces for ``schema``; None for another schema or a payload
    this version does not know."""
    owner, _, rest = payload.partition(":")
    if owner != schema:
        return None
    topic, _, kinds = rest.partition(":")
    if topic not in TOPICS:
        return None
    return Work(topic, tuple(k for k in kinds.split(",") if k) if topic == "deliveries" else ())


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` (SQLAlchemy) as a DSN asyncpg itself takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """One LISTEN connection; ``on_work`` gets what it hears, ``on_state`` whether it is
    connected (True after every (re)connection: everything should look for work once)."""

    def __init__(
        self,
        url: str,
        schema: str,
        on_work: Callable[[Work], None],
        on_state: Callable[[bool], None],
        *,
        check_s: float = 5.0,
    ) -> None:
        self.dsn = asyncpg_dsn(url)
        self.search_path = schema
        self.on_work, self.on_state = on_work, on_state
        self.check_s = check_s
        self.schema = (
            ""  # the schema whose notifications count (current_schema() of the connection)
        )
        self.connected = False
        self.heard = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cluster listener")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def connection_pid(self) -> int | None:
        """The server process of the LISTEN connection (tests terminate it)."""
        return None if self._conn is None else int(self._conn.get_server_pid())

    async def _connect(self) -> Any:
        settings = {"application_name": "warnpub listener"}
        if self.search_path:
            settings["search_path"] = self.search_path
        return await asyncpg.connect(self.dsn, server_settings=settings, timeout=10)

    async def _run(self) -> None:
        backoff = RECONNECT_MIN_S
        while not self._stopping.is_set():
            try:
                conn = await self._connect()
            except Exception as exc:
                log.warning(
                    "cannot open the LISTEN connection; polling meanwhile",
                    extra={"error": f"{type(exc).__name__}: {exc}"[:300], "retry_s": backoff},
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                self.schema = str(await conn.fetchval("SELECT current_schema()"))
                await conn.add_listener(CHANNEL, self._notified)
                self._conn = conn
                self._set_state(True)
                backoff = RECONNECT_MIN_S
                while not self._stopping.is_set() and not lost.is_set():
                    await self._wait_either(lost, self.check_s)
                    if not self._stopping.is_set() and not lost.is_set():
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), timeout=self.check_s)
                if lost.is_set() and not self._stopping.is_set():
                    log.warning("the LISTEN connection was closed; opening it again")
            except Exception as exc:
                if not self._stopping.is_set():
                    log.warning(
                        "the LISTEN connection failed; opening it again",
                        extra={"error": f"{type(exc).__name__}: {exc}"[:300]},
                    )
            finally:
                self._conn = None
                self._set_state(False)
                await self._close(conn)
            if not self._stopping.is_set():
                await self._sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        work = parse(payload, self.schema)
        if work is None:
            return
        self.heard += 1
        try:
            self.on_work(work)
        except Exception:
            log.exception("handling a notification failed")

    def _set_state(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        if connected:
            log.info("listening for work", extra={"channel": CHANNEL, "schema": self.schema})
        try:
            self.on_state(connected)
        except Exception:
            log.exception("handling the listener's state failed")

    async def _close(self, conn: Any) -> None:
        try:
            await asyncio.wait_for(conn.close(), timeout=2)
        except Exception:
            conn.terminate()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _wait_either(self, lost: asyncio.Event, seconds: float) -> None:
        waits = [asyncio.ensure_future(lost.wait()), asyncio.ensure_future(self._stopping.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
