"""The turns of one process's SQLite writers: one at a time, first come first served, and
background work (inbound replies) when no other writer is waiting — or once it has waited
``background_wait_s``, so that it is slowed down, never starved. An agency's submissions
(``first``) go ahead of the queue: the writer that has them answers waiting agencies, while the
dispatcher's records and the receipts only keep books on messages already sent. It never
starves them: the intake writer takes everything queued in one turn and lets go, so at least
one other writer has its turn between two of its own.

SQLite has one write lock per database file. Waiting for it in SQLite's busy handler means
sleeping up to 100 ms between tries, so under contention the lock sat idle while writers slept
and the luckiest retry won; queueing in the process before ``BEGIN IMMEDIATE`` hands the lock
straight to the next writer (docs/performance.md has the figures). Background writers give way
to the dispatcher's claims and records, so a burst of replies does not slow the sending down.

A waiter gives up its place (``stuck_s``) only when one and the same writer has held the turn
that long — a writer stuck, never a queue that is long but moving: when every writer that had
waited a few seconds went ahead to SQLite's busy handler, a backlog of a few hundred writers
(agencies submitting during a large send) took every pooled connection and stopped the whole
process for the busy timeout (bench/load.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

BACKGROUND_WAIT_S = 0.25


class WriteTurns:
    """An asyncio lock with three queues; the turn is handed to the next waiter directly."""

    def __init__(self, background_wait_s: float = BACKGROUND_WAIT_S) -> None:
        self.background_wait_s = background_wait_s
        self._held = False
        self._first: deque[asyncio.Future[None]] = deque()
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._background: deque[asyncio.Future[None]] = deque()
        self._since: dict[asyncio.Future[None], float] = {}  # when a background waiter came
        self._held_since = 0.0  # when the current holder got the turn
        self.holder = ""  # the name of the task that holds it (for the log)

    @property
    def held(self) -> bool:
        return self._held

    def waiting(self, *, background: bool = False, first: bool = False) -> int:
        return len(self._queue(background=background, first=first))

    def _queue(self, *, background: bool, first: bool) -> deque[asyncio.Future[None]]:
        return self._first if first else self._background if background else self._waiting

    def held_for(self) -> float:
        """Seconds the current holder has held the turn (0 when free)."""
        return time.monotonic() - self._held_since if self._held else 0.0

    async def acquire(
        self, *, background: bool = False, first: bool = False, stuck_s: float | None = None
    ) -> bool:
        """Wait for the turn; True once it is this caller's (``first``: ahead of the other
        writers waiting; ``background``: after them). With ``stuck_s``: False, without
        the turn, as soon as one holder has held it ``stuck_s`` seconds (the place in the queue
        is given up; the caller goes ahead on its own)."""
        if not self._held:
            self._held = True
            self._held_since = time.monotonic()
            self._name_holder()
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queue(background=background, first=first)
        queue.append(future)
        if background:
            self._since[future] = time.monotonic()
        try:
            if stuck_s is None:
                await future
                self._name_holder()
                return True
            while True:
                # Not wait_for: a timeout must not cancel the future (the place in the queue).
                await asyncio.wait((future,), timeout=max(0.01, stuck_s - self.held_for()))
                if future.done():  # (also when handed over just as the wait timed out)
                    self._name_holder()
                    return True
                if self.held_for() >= stuck_s:
                    future.cancel()
                    with contextlib.suppress(ValueError):
                        queue.remove(future)
                    return False
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed the turn just as this waiter gave up: pass it on
            else:
                future.cancel()
                with contextlib.suppress(ValueError):
                    queue.remove(future)
            raise
        finally:
            self._since.pop(future, None)

    def _name_holder(self) -> None:
        task = asyncio.current_task()
        self.holder = task.get_name() if task is not None else ""

    def release(self) -> None:
        order = (self._first, self._waiting, self._background)
        if self._background and self._waiting:
            came = self._since.get(self._background[0])
            if came is not None and time.monotonic() - came >= self.background_wait_s:
                order = (self._first, self._background, self._waiting)  # waited long enough
        for queue in order:
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)  # still held: it belongs to that waiter now
                    self._held_since = time.monotonic()
                    return
        self._held = False
