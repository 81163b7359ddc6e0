"""When to try a transient failure again: exponential backoff with full jitter, up to a deadline."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float
    max_s: float
    deadline_s: float

    def delay(
        self, attempts: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before attempt ``attempts + 1`` (full jitter; a peer's Retry-After wins)."""
        ceiling = min(self.max_s, self.base_s * 2 ** max(0, attempts - 1))
        jittered = (rng or random).uniform(0, ceiling)
        return max(jittered, retry_after_s or 0.0)

    def next_attempt(
        self, now: datetime, first_at: datetime, attempts: int, retry_after_s: float | None = None
    ) -> datetime | None:
        """The next attempt time, or None when the deadline has passed (give up)."""
        at = now + timedelta(seconds=self.delay(attempts, retry_after_s))
        return None if at > first_at + timedelta(seconds=self.deadline_s) else at
