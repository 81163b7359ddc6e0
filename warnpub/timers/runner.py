"""The timer tick: APScheduler calls :meth:`TimerRunner.tick`, which claims and fires due timers."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from warnpub.storage.engine import Database
from warnpub.timers.store import Handler, claim_due, fire, release

log = logging.getLogger("warnpub.timers")


class _SkippedTicks(logging.Filter):
    """A tick that finds the previous one still running is skipped by design (``max_instances``
    = 1: the running tick claims everything due); APScheduler would log each as a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not ("warnpub-timers" in message or "TimerRunner.tick" in message):
            return True
        # A tick cancelled because the process is stopping is not an error either (its claimed
        # timers' leases run out and another tick takes them).
        cancelled = record.exc_info is not None and isinstance(
            record.exc_info[1], asyncio.CancelledError
        )
        return "maximum number of running instances" not in message and not cancelled


logging.getLogger("apscheduler.scheduler").addFilter(_SkippedTicks())
logging.getLogger("apscheduler.executors.default").addFilter(_SkippedTicks())


class TimerRunner:
    def __init__(
        self, db: Database, handlers: dict[str, Handler], *, tick_s: float, lease_s: float
    ) -> None:
        self.db, self.handlers = db, handlers
        self.tick_s, self.lease_s = tick_s, lease_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._scheduler: AsyncIOScheduler | None = None
        self._stopping = False
        self._ticks = 0  # ticks running now
        self._idle = asyncio.Event()
        self._idle.set()
        self._poked: asyncio.Task[int] | None = None
        self._again = False

    async def tick(self) -> int:
        """Fire every due timer once; returns how many fired."""
        fired = 0
        self._ticks += 1
        self._idle.clear()
        try:
            while not self._stopping and (
                ids := await claim_due(self.db, self.owner, self.lease_s)
            ):
                for timer_id in ids:
                    if self._stopping:  # the rest are released by aclose()
                        break
                    try:
                        fired += await fire(self.db, timer_id, self.owner, self.handlers)
                    except Exception:
                        log.exception("timer failed", extra={"timer_id": timer_id})
                if len(ids) < 100:
                    break
        finally:
            self._ticks -= 1
            if not self._ticks:
                self._idle.set()
        return fired

    def poke(self) -> None:
        """A timer is due now (a notification, warnpub.cluster.notify): tick at once rather
        than at the next interval. Ticks of one runner never overlap with a poke's."""
        if self._scheduler is None or self._stopping:
            return
        if self._poked is not None and not self._poked.done():
            self._again = True
            return
        self._poked = asyncio.create_task(self._poked_tick(), name="timers poked")

    async def _poked_tick(self) -> int:
        fired = 0
        while True:
            self._again = False
            try:
                fired += await self.tick()
            except Exception:
                log.exception("timer tick failed")
            if not self._again or self._stopping:
                return fired

    def start(self) -> None:
        self._scheduler = AsyncIOScheduler()
        self._scheduler.add_job(
            self.tick,
            "interval",
            seconds=self.tick_s,
            max_instances=1,
            coalesce=True,
            id="warnpub-timers",
        )
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def aclose(self, wait_s: float = 10.0) -> None:
        """Stop: no new tick; the timer being fired finishes (up to ``wait_s``); timers claimed
        but not fired are released at once for another process, not after their lease."""
        self._stopping = True
        self.stop()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=wait_s)
        except TimeoutError:
            log.warning("a timer still running at shutdown; its lease will run out")
        if self._poked is not None:
            self._poked.cancel()
            await asyncio.gather(self._poked, return_exceptions=True)
        try:
            released = await release(self.db, self.owner)
        except Exception:
            log.exception("releasing claimed timers failed; their leases will run out")
            return
        if released:
            log.info("claimed timers released", extra={"timers": released})
