"""The turns of one process's SQLite writers: one at a time, first come first served, and
background work (inbound replies) when no other writer is waiting — or once it has waited
``background_wait_s``, so that it is slowed down, never starved.

SQLite has one write lock per database file. Waiting for it in SQLite's busy handler means
sleeping up to 100 ms between tries, so under contention the lock sat idle while writers slept
and the luckiest retry won; queueing in the process before ``BEGIN IMMEDIATE`` hands the lock
straight to the next writer (docs/performance.md has the figures). Background writers give way
to the dispatcher's claims and records, so a burst of replies does not slow the sending down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

BACKGROUND_WAIT_S = 0.25


class WriteTurns:
    """An asyncio lock with two queues; the turn is handed to the next waiter directly."""

    def __init__(self, background_wait_s: float = BACKGROUND_WAIT_S) -> None:
        self.background_wait_s = background_wait_s
        self._held = False
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()
        self._since: dict[asyncio.Future[None], float] = {}  # when a background waiter came

    @property
    def held(self) -> bool:
        return self._held

    def waiting(self, *, background: bool = False) -> int:
        return len(self._background if background else self._waiting)

    async def acquire(self, *, background: bool = False) -> None:
        if not self._held:
            self._held = True
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._background if background else self._waiting
        queue.append(future)
        if background:
            self._since[future] = time.monotonic()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed the turn just as this waiter gave up: pass it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(future)
            raise
        finally:
            self._since.pop(future, None)

    def release(self) -> None:
        order = (self._waiting, self._background)
        if self._background and self._waiting:
            came = self._since.get(self._background[0])
            if came is not None and time.monotonic() - came >= self.background_wait_s:
                order = (self._background, self._waiting)  # waited long enough: its turn
        for queue in order:
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)  # still held: it belongs to that waiter now
                    return
        self._held = False
