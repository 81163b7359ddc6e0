"""Flow control for one channel instance: a token bucket, a circuit breaker, a health score."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field


class RateWindow:
    """At most ``rate`` messages accepted by the peer in any sliding window of one second.

    A message counts from the moment it is sent until one second after its answer came back,
    so however the network delays it, the peer cannot see more than ``rate`` in any second.
    (A token bucket's saved-up burst would let it see nearly twice the rate.) Below one
    message a second the window widens so that one message fits.
    """

    def __init__(self, rate: float) -> None:
        self.window = max(1.0, 1.0 / rate)
        # The whole limit, and the part of it this process may use (on PostgreSQL a worker's
        # share of the cluster's limit, warnpub.cluster.shares; 0 while it may not send).
        self.full = max(1, int(rate * self.window))
        self.limit = self.full
        self._done: deque[tuple[float, int]] = deque()
        self._recent = 0
        self.in_flight = 0

    def set_limit(self, limit: int) -> None:
        """Use ``limit`` messages per window (at most the whole limit). Messages already
        counted stay counted: after a cut nothing is sent until they fall below it."""
        self.limit = max(0, min(limit, self.full))

    def count(self) -> int:
        """Messages in flight or answered within the last window."""
        self._expire(time.monotonic())
        return self._recent + self.in_flight

    def empty_in(self) -> float:
        """Seconds until no message counts any more (in-flight messages: unknown, one window)."""
        now = time.monotonic()
        self._expire(now)
        if self.in_flight:
            return self.window
        if not self._done:
            return 0.0
        return max(0.0, self._done[-1][0] + self.window - now)

    def cancel(self, n: int) -> None:
        """``n`` messages counted as started were not sent after all."""
        self.in_flight -= n

    def _expire(self, now: float) -> None:
        while self._done and self._done[0][0] <= now - self.window:
            self._recent -= self._done.popleft()[1]

    def available(self) -> int:
        self._expire(time.monotonic())
        return self.limit - self._recent - self.in_flight

    def start(self, n: int) -> None:
        self.in_flight += n

    def finish(self, n: int) -> None:
        self.in_flight -= n
        self._done.append((time.monotonic(), n))
        self._recent += n

    def wait_for(self, n: int) -> float:
        """Seconds until ``n`` more fit, as far as finished messages tell (0 when they fit now)."""
        now = time.monotonic()
        self._expire(now)
        excess = self._recent + self.in_flight + n - self.limit
        if excess <= 0:
            return 0.0
        for at, count in self._done:
            excess -= count
            if excess <= 0:
                return max(0.0, at + self.window - now)
        return 0.01  # waiting on messages still in flight

    async def acquire(self, n: int, stop: asyncio.Event | None = None) -> bool:
        """Wait until ``n`` messages may be sent, then count them as in flight (True).

        A batch larger than the whole limit waits for an empty window and goes alone. False,
        nothing counted, when ``stop`` is set meanwhile, or when the limit was cut below the
        batch (a cluster share that shrank: the batch must not go at all)."""
        while True:
            if stop is not None and stop.is_set():
                return False
            if n > self.limit and self.limit < self.full:
                return False
            need = min(n, self.limit)
            if self.available() >= need:
                self.start(n)
                return True
            await asyncio.sleep(max(self.wait_for(need), 0.002))


@dataclass
class CircuitBreaker:
    """Opens after ``failures`` consecutive failed calls; lets one trial through after ``open_s``."""

    failures: int
    open_s: float
    consecutive: int = 0
    opened_at: float | None = None

    def allows(self) -> bool:
        if self.opened_at is None:
            return True
        return time.monotonic() - self.opened_at >= self.open_s  # half-open: try once

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def record(self, ok: bool) -> None:
        if ok:
            self.consecutive, self.opened_at = 0, None
            return
        self.consecutive += 1
        if self.consecutive >= self.failures:
            self.opened_at = time.monotonic()


@dataclass
class Health:
    """The recent error rate of an instance and whether its receipts are late. Above
    ``demote_at``, or while most of its receipts are overdue, it is demoted (gets only
    probes); it is restored when its answers and receipts are on time again."""

    demote_at: float
    window: int = 200
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=200))
    slow_receipts: bool = False

    def record(self, ok: bool, n: int = 1) -> None:
        for _ in range(n):
            self.outcomes.append(ok)

    @property
    def error_rate(self) -> float:
        return 0.0 if not self.outcomes else 1 - sum(self.outcomes) / len(self.outcomes)

    @property
    def demoted(self) -> bool:
        errors = len(self.outcomes) >= 20 and self.error_rate >= self.demote_at
        return errors or self.slow_receipts
