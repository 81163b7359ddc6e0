"""A gateway instance's rate limit shared by the live workers, so that together they never
exceed it.

An instance allows ``L`` messages in any window of ``W`` seconds (``RateWindow.full``). With
``n`` live workers ranked by age (oldest 0), worker ``k`` gets the messages ``k, k + n,
k + 2n, …`` below ``L``: ``ceil((L - k) / n)``, which sums to exactly ``L``. A worker's share
only falls when ``n`` grows (its rank does not change: newcomers rank last) and only grows when
a worker's row is gone, which happens after that worker stopped sending, and then only one
window later, once its last messages are out of the gateway's window (warnpub.cluster.node).
More workers than ``L``: the youngest get nothing on that instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from warnpub.dispatch.limits import RateWindow


def allocation(limit: int, members: int, rank: int) -> int:
    """Messages per window for the worker of ``rank`` (0 = oldest) among ``members``."""
    if members <= 0 or rank < 0 or rank >= members or limit <= rank:
        return 0
    return -(-(limit - rank) // members)


class Shares:
    """The rate windows of one process's gateway instances, cut to its shares."""

    def __init__(
        self, windows: Mapping[str, RateWindow], on_change: Callable[[], None] | None = None
    ) -> None:
        self.windows = dict(windows)
        self.on_change = on_change
        self.members = 0
        self.rank = 0
        self.sending = False
        self._grow_at: dict[str, float] = {}  # window → when its share may grow

    def apply(self, members: int, rank: int, sending: bool) -> None:
        """Size every window for ``members`` workers with this one at ``rank``; while not
        ``sending`` (not admitted yet, or stood down) every limit is 0.

        A cut applies at once. A share that grows while sending (a worker left or died) grows
        one window after it was first seen, at a later call: the messages of a worker that
        died are still in the gateway's window for that long after it was last able to send
        (the sum is only safe once they are out of it)."""
        was_sending = self.sending
        self.members, self.rank, self.sending = members, rank, sending
        now = time.monotonic()
        changed = False
        for name, window in self.windows.items():
            target = allocation(window.full, members, rank) if sending else 0
            if target > window.limit and was_sending and sending:
                due = self._grow_at.setdefault(name, now + window.window)
                if now < due:
                    continue
            self._grow_at.pop(name, None)
            if target != window.limit:
                window.set_limit(target)
                changed = True
        if changed and self.on_change is not None:
            self.on_change()

    def growing(self) -> bool:
        """Whether a share waits to grow (the next call may apply it)."""
        return bool(self._grow_at)

    def stand_down(self) -> None:
        self.apply(self.members, self.rank, False)

    def drained(self) -> bool:
        """Whether every window counts no more messages than its limit now allows: from here
        on this process keeps to the shares it was sized for."""
        return all(w.count() <= w.limit for w in self.windows.values())

    def limits(self) -> dict[str, int]:
        return {name: w.limit for name, w in self.windows.items()}

    def empty_in(self) -> float:
        """Seconds until no window counts any message (used when leaving the cluster)."""
        return max((w.empty_in() for w in self.windows.values()), default=0.0)
