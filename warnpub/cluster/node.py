"""One worker process in the cluster: its row in the workers table, and its rate shares.

Every ``heartbeat_s`` the node writes its heartbeat and reads the live workers
(:mod:`warnpub.cluster.registry`), then sizes each gateway instance's rate window for them
(:mod:`warnpub.cluster.shares`). The sum of the shares never exceeds an instance's limit:

- **Joining.** A new worker sends nothing until every older worker reports (``view_at``)
  that its shares are sized for a membership it read after the newcomer's row was committed
  (database time: the newcomer's first heartbeat after registering), and that its rate
  windows already hold no more than those shares. Only then does the newcomer use its share;
  the older ones shrank first. (A membership read later only grows a share when a worker is
  gone, which is safe: see Leaving and Dying.)
- **Leaving.** A worker that stops leaves its row in place until the messages it sent no
  longer count in its windows (``registry.leave``); only then do the others' shares grow.
- **Dying.** The others remove a row after ``dead_after_s`` without a heartbeat. A worker
  that cannot write its heartbeat (the database is unreachable, the host is cut off) stops
  sending after ``dead_after_s / 2`` — well before the others may take its share over — and
  sends again only after a heartbeat finds its row still there; a worker whose row was
  removed joins again as a newcomer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from datetime import datetime

from warnpub.cluster import registry
from warnpub.cluster.registry import Member
from warnpub.cluster.shares import Shares
from warnpub.config import ClusterConfig
from warnpub.storage.engine import Database

log = logging.getLogger("warnpub.cluster")
QUICK_BEAT_S = 0.05  # a report waiting to be written goes this soon, not a heartbeat later


class ClusterNode:
    def __init__(
        self,
        db: Database,
        config: ClusterConfig,
        member_id: str,
        shares: Shares,
        *,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.db, self.config, self.id, self.shares = db, config, member_id, shares
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self.admitted = False  # the older workers are sized for this one
        self.stale = False  # no heartbeat for dead_after_s / 2: stood down
        self.members: list[Member] = []
        self._applied: tuple[int, datetime | None] = (0, None)  # the membership sized for
        self._reported: tuple[int, datetime | None] = (0, None)  # as last written
        self._visible_at: datetime | None = None  # first heartbeat after the row was committed
        self._task: asyncio.Task[None] | None = None
        self._stand_down: asyncio.TimerHandle | None = None
        self._failing = False
        self._stopping = asyncio.Event()

    @property
    def sending(self) -> bool:
        return self.admitted and not self.stale

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register (the first heartbeat), beat once more (from then on every membership read
        includes this worker: alone, it may send at once), and keep beating."""
        await self.beat()
        await self.beat()
        self._task = asyncio.create_task(self._loop(), name=f"cluster heartbeat {self.id}")

    async def stop(self) -> None:
        """Stop beating and leave: the row goes now, or once this worker's messages no longer
        count in its rate windows."""
        self._stopping.set()  # (a cancel alone may be lost in a wait_for that just finished)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._stand_down is not None:
            self._stand_down.cancel()
        self.shares.apply(self.shares.members, self.shares.rank, False)
        hold = self.shares.empty_in()
        try:
            await registry.leave(self.db, self.id, hold, self.config.dead_after_s)
            log.info("left the cluster", extra={"worker": self.id, "hold_s": round(hold, 3)})
        except Exception:
            log.exception("could not remove the worker row; it lapses by itself")

    # -- heartbeats -----------------------------------------------------------------------------

    def _report(self) -> tuple[int, datetime | None]:
        """What the row may say now: the membership the shares were sized for (how many, read
        when), once the windows hold no more than those shares; otherwise what it said."""
        return self._applied if self.shares.drained() else self._reported

    async def beat(self) -> None:
        started = time.monotonic()
        report = self._report()
        view = await registry.beat(
            self.db, self.id, self.host, self.pid, report, self.config.dead_after_s
        )
        if view.joined:
            if self.members:
                log.warning(
                    "this worker's row was gone (no heartbeat for too long); joining again",
                    extra={"worker": self.id},
                )
            self.admitted = False
            self._visible_at = None
            self._reported = (0, None)
        else:
            self._reported = report
            if self._visible_at is None:
                # The first heartbeat after the row was committed: a membership read from
                # this moment on includes this worker.
                self._visible_at = view.at
        self._schedule_stand_down(started)
        if self.stale:
            self.stale = False
            log.info("heartbeat written again; sending again", extra={"worker": self.id})
        found = view.members
        ids = [m.id for m in found]
        if self.id not in ids:  # removed between our write and our read: join again
            self.members = found
            self.admitted = False
            self.shares.apply(len(found), 0, False)
            return
        rank, n = ids.index(self.id), len(found)
        if not self.admitted and self._older_sized_for_me(found[:rank]):
            self.admitted = True
            log.info(
                "joined the cluster: sending with its share",
                extra={"worker": self.id, "workers": n, "rank": rank},
            )
        if n != len(self.members):
            log.info("cluster membership changed", extra={"worker": self.id, "workers": n})
        self.members = found
        self._applied = (n, view.at)
        self.shares.apply(n, rank, self.sending)

    def _older_sized_for_me(self, older: list[Member]) -> bool:
        """Whether every older worker sized its shares for a membership read after this
        worker's row was visible (so: with this worker in it) and holds to them."""
        seen = self._visible_at
        return seen is not None and all(m.view_at is not None and m.view_at >= seen for m in older)

    def _schedule_stand_down(self, started: float) -> None:
        if self._stand_down is not None:
            self._stand_down.cancel()
        left = started + self.config.dead_after_s / 2 - time.monotonic()
        self._stand_down = asyncio.get_running_loop().call_later(
            max(0.0, left), self._stand_down_now
        )

    def _stand_down_now(self) -> None:
        if not self.stale:
            log.warning(
                "no heartbeat written for half of dead_after_s; not sending until one is",
                extra={"worker": self.id, "dead_after_s": self.config.dead_after_s},
            )
        self.stale = True
        self.shares.stand_down()

    async def _loop(self) -> None:
        every = self.config.heartbeat_s
        while not self._stopping.is_set():
            wait = QUICK_BEAT_S if self._report() != self._reported else every
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=wait)
                return
            except TimeoutError:
                pass
            try:
                async with asyncio.timeout(self.config.dead_after_s / 2):
                    await self.beat()
                if self._failing:
                    self._failing = False
                    log.info("cluster heartbeat written again", extra={"worker": self.id})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:
                    log.warning(
                        "cluster heartbeat failed",
                        extra={"worker": self.id, "error": f"{type(exc).__name__}: {exc}"[:300]},
                    )
                self._failing = True
