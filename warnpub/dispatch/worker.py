"""One worker per channel instance: claim the highest-priority due rows, send, record.

A round: take as many rows as the rate window allows (and the instance's share by weight),
drop those whose warning was cancelled or has expired, render, send in batches of the
instance's ``max_batch`` with at most ``concurrency`` calls in flight, then record every
outcome in one transaction. The circuit breaker and the health score decide whether the
instance takes work at all; when it does not, the other instances of the same kind do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from warnpub.channels.base import Channel, Message, Result, Status
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.dispatch.addresses import addresses
from warnpub.dispatch.limits import CircuitBreaker, Health, RateWindow
from warnpub.dispatch.metrics import Metrics
from warnpub.dispatch.outbox import Claimed, claim, update_many
from warnpub.dispatch.render import MessageRenderer
from warnpub.dispatch.results import record
from warnpub.dispatch.retry import RetryPolicy
from warnpub.storage.engine import Database
from warnpub.storage.tables import WarningRecord

log = logging.getLogger("warnpub.dispatch")
SENDABLE = ("approved", "dispatching")


@dataclass
class WorkerStats:
    claimed: int = 0
    sent: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0
    calls_failed: int = 0


class ChannelWorker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        channel: Channel,
        renderer: MessageRenderer,
        owner: str,
        share: float = 1.0,
        metrics: Metrics | None = None,
    ) -> None:
        d = settings.dispatch
        self.db, self.settings, self.channel, self.renderer = db, settings, channel, renderer
        self.kind, self.name = channel.kind, channel.name
        self.owner = f"{owner}/{channel.kind}/{channel.name}"
        self.share = share
        self.rate = RateWindow(channel.limits.rate_per_s)
        self.breaker = CircuitBreaker(d.breaker_failures, d.breaker_open_s)
        self.health = Health(d.demote_error_rate)
        self.retry = RetryPolicy(d.retry_base_s, d.retry_max_s, d.retry_deadline_s)
        self.stats = WorkerStats()
        self.metrics = metrics or Metrics()
        self.wake = asyncio.Event()
        # A peer that said "retry after N s" (HTTP 429/503) gets nothing until then.
        self.paused_until = 0.0
        self._sem = asyncio.Semaphore(max(1, channel.limits.concurrency))

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        idle_s = 0.05
        while not stopping.is_set():
            try:
                done = await self.round()
            except Exception:
                log.exception(
                    "dispatch round failed", extra={"channel": self.kind, "instance": self.name}
                )
                done = 0
            if done:
                idle_s = 0.05
                continue
            paused = max(0.0, self.paused_until - time.monotonic())
            wait = max(self.rate.wait_for(1), idle_s, paused)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
                idle_s = 0.05
            except TimeoutError:
                idle_s = min(idle_s * 2, 1.0)

    def capacity(self) -> int:
        """How many rows this round may take."""
        if not self.breaker.allows() or time.monotonic() < self.paused_until:
            return 0
        limits = self.channel.limits
        if self.breaker.is_open or self.health.demoted:
            return min(limits.max_batch, self.rate.available())  # a probe, not a share
        per_round = max(limits.max_batch * limits.concurrency, 1)
        share = max(1, int(self.settings.dispatch.claim_batch * self.share))
        return min(self.rate.available(), per_round, share)

    async def round(self) -> int:
        n = self.capacity()
        if n <= 0:
            return 0
        lease = self.settings.dispatch.lease_seconds
        claimed = await claim(self.db, self.kind, self.owner, self.name, n, lease)
        if not claimed:
            return 0
        self.stats.claimed += len(claimed)
        sendable, dropped = await self._check_warnings(claimed)
        results = await self._send(sendable) if sendable else {}
        await self._record(sendable, results, dropped)
        return len(claimed)

    # -- steps ------------------------------------------------------------------------------

    async def _check_warnings(
        self, claimed: Sequence[Claimed]
    ) -> tuple[list[Claimed], dict[int, str]]:
        """Rows whose warning may still be sent, and the others with the state they end in."""
        ids = {c.warning_id for c in claimed}
        now = utcnow()
        async with self.db.reader() as session:
            rows = (
                await session.execute(
                    select(WarningRecord.id, WarningRecord.state, WarningRecord.expires_at).where(
                        WarningRecord.id.in_(ids)
                    )
                )
            ).all()
        stop: dict[str, str] = {}
        for wid, state, expires in rows:
            if expires is not None and expires <= now:
                stop[wid] = "expired"
            elif state not in SENDABLE:
                stop[wid] = "cancelled" if state == "cancelled" else "expired"
        dropped = {c.id: stop[c.warning_id] for c in claimed if c.warning_id in stop}
        return [c for c in claimed if c.id not in dropped], dropped

    async def _send(self, rows: list[Claimed]) -> dict[int, Result]:
        async with self.db.reader() as session:
            where = await addresses(session, rows)
            messages: list[Message] = []
            results: dict[int, Result] = {}
            for c in rows:
                address = where.get(c.id)
                if not address:
                    results[c.id] = Result(
                        c.id, Status.PERMANENT, error=f"no address for {c.channel}"
                    )
                    continue
                messages.append(await self.renderer.message(session, c, address))
        size = max(1, self.channel.limits.max_batch)
        batches = [messages[i : i + size] for i in range(0, len(messages), size)]
        for batch_results in await asyncio.gather(*(self._call(b) for b in batches)):
            for r in batch_results:
                results[r.delivery_id] = r
        return results

    async def _call(self, batch: list[Message]) -> list[Result]:
        async with self._sem:
            await self.rate.acquire(len(batch))
            started = time.perf_counter()
            try:
                out = await self.channel.send(batch)
            except Exception as exc:
                self.stats.calls_failed += 1
                error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning(
                    "channel call failed",
                    extra={"channel": self.kind, "instance": self.name, "error": error},
                )
                out = [Result(m.delivery_id, Status.TRANSIENT, error=error) for m in batch]
            finally:
                self.rate.finish(len(batch))
        ok = sum(r.status in (Status.SENT, Status.DELIVERED, Status.PERMANENT) for r in out)
        self.breaker.record(ok > 0 or not out)
        self.health.record(True, ok)
        self.health.record(False, len(out) - ok)
        self._observe(time.perf_counter() - started, out)
        waits = [r.retry_after_s for r in out if r.retry_after_s]
        if waits:
            pause = min(max(waits), self.settings.dispatch.retry_max_s)
            self.paused_until = max(self.paused_until, time.monotonic() + pause)
        return out

    def _observe(self, seconds: float, out: list[Result]) -> None:
        m, labels = self.metrics, (self.kind, self.name)
        m.send_seconds.labels(*labels).observe(seconds)
        for r in out:
            m.messages.labels(*labels, r.status.value).inc()
        m.error_rate.labels(*labels).set(self.health.error_rate)
        m.demoted.labels(*labels).set(1 if self.health.demoted else 0)
        m.breaker_open.labels(*labels).set(1 if self.breaker.is_open else 0)

    async def _record(
        self, rows: list[Claimed], results: dict[int, Result], dropped: dict[int, str]
    ) -> None:
        now = utcnow()
        async with self.db.session() as session:
            counts = await record(
                session,
                self.owner,
                rows,
                results,
                receipts=self.channel.limits.receipts,
                retry=self.retry,
                now=now,
                available=frozenset(self.settings.channels),
            )
            if dropped:
                await update_many(
                    session,
                    self.owner,
                    [
                        {
                            "b_id": i,
                            "state": state,
                            "final_at": now,
                            "lease_owner": None,
                            "last_error": f"warning {state} before sending",
                        }
                        for i, state in dropped.items()
                    ],
                )
        self.stats.sent += counts["sent"]
        self.stats.delivered += counts["delivered"]
        self.stats.retried += counts["retried"]
        self.stats.failed += counts["failed"]
        self.stats.dropped += len(dropped)
