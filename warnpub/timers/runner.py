"""The timer tick: APScheduler calls :meth:`TimerRunner.tick`, which claims and fires due timers."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from warnpub.storage.engine import Database
from warnpub.timers.store import Handler, claim_due, fire

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

    async def tick(self) -> int:
        """Fire every due timer once; returns how many fired."""
        fired = 0
        while ids := await claim_due(self.db, self.owner, self.lease_s):
            for timer_id in ids:
                try:
                    fired += await fire(self.db, timer_id, self.owner, self.handlers)
                except Exception:
                    log.exception("timer failed", extra={"timer_id": timer_id})
            if len(ids) < 100:
                break
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
