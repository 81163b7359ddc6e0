"""A gateway's rate limit holds across the cluster: workers join, leave and die (real rows
in the workers table, real heartbeats), and the messages a peer sees in any one-second window
never exceed the instance's limit."""

from __future__ import annotations

import asyncio
import time

import pytest

from warnpub.cluster import registry
from warnpub.cluster.node import ClusterNode
from warnpub.cluster.shares import Shares, allocation
from warnpub.config import ClusterConfig
from warnpub.dispatch.limits import RateWindow
from warnpub.storage.engine import Database

RATE = 12  # messages per second at the (simulated) gateway instance


@pytest.mark.parametrize("limit", [1, 2, 5, 12, 100])
def test_allocations_sum_to_the_limit_and_only_shrink_as_workers_join(limit):
    for n in range(1, 15):
        shares = [allocation(limit, n, k) for k in range(n)]
        assert sum(shares) == limit, (limit, n, shares)
        assert max(shares) - min(shares) <= 1
        for k in range(n):  # one more worker (ranked last) never makes an older share larger
            assert allocation(limit, n + 1, k) <= shares[k]
    assert allocation(limit, 0, 0) == 0 and allocation(limit, 3, 3) == 0


class Member:
    """One simulated worker process: its node (real heartbeats on PostgreSQL), one rate
    window for the shared gateway instance, and a sender that sends as fast as it may."""

    def __init__(self, settings, config: ClusterConfig, name: str, peer: list[float]) -> None:
        self.window = RateWindow(RATE)
        # A database of its own, like a process: its connections go when it dies.
        self.db = Database(settings.database.url, schema=settings.database.schema_name)
        self.node = ClusterNode(
            self.db, config, name, Shares({"sms/gw": self.window}), host="test", pid=0
        )
        self.peer = peer
        self.stop = asyncio.Event()
        self.sender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.node.start()
        self.sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while not self.stop.is_set():
            if self.window.available() < 1 or not await self.window.acquire(1, self.stop):
                await asyncio.sleep(0.005)
                continue
            self.peer.append(time.monotonic())  # the gateway sees it
            await asyncio.sleep(0.01)  # the call
            self.window.finish(1)

    async def leave(self) -> None:
        """SIGTERM: stop sending, then leave the workers table."""
        self.stop.set()
        await asyncio.gather(self.sender, return_exceptions=True)
        await self.node.stop()
        await self.db.dispose()

    async def die(self) -> None:
        """SIGKILL: everything stops at once, its connections close, its row stays behind."""
        self.stop.set()
        self.sender.cancel()
        self.node._stopping.set()
        self.node._task.cancel()
        self.node._stand_down.cancel()
        await asyncio.gather(self.sender, self.node._task, return_exceptions=True)
        await self.db.dispose()


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


async def test_shares_never_exceed_the_limit_across_joins_leaves_and_deaths(settings, db):
    config = ClusterConfig(heartbeat_s=0.1, dead_after_s=0.9, listen=False)
    peer: list[float] = []
    a, b, c, d = (Member(settings, config, f"w-{x}", peer) for x in "abcd")

    await a.start()  # alone: the whole limit at once
    assert a.node.admitted and a.window.limit == RATE
    await asyncio.sleep(0.8)
    await b.start()
    await c.start()
    assert b.window.limit == 0 and c.window.limit == 0, "newcomers wait for the others to shrink"

    async def settled(*members: Member) -> bool:
        rows = await registry.members(db)
        limits = [m.window.limit for m in members]
        return (
            len(rows) == len(members)
            and all(m.node.admitted for m in members)
            and (sum(limits) == RATE)
        )

    await _until(lambda: settled(a, b, c), "a, b and c share the limit")
    assert sorted(m.window.limit for m in (a, b, c)) == [4, 4, 4]
    await asyncio.sleep(0.8)
    await a.leave()  # graceful: its row stays until its messages stop counting
    await _until(lambda: settled(b, c), "b and c take over a's share")
    assert sorted(m.window.limit for m in (b, c)) == [6, 6]
    await asyncio.sleep(1.0)
    await b.die()
    await _until(lambda: settled(c), "c takes over the dead b's share")
    assert c.window.limit == RATE
    await d.start()
    await _until(lambda: settled(c, d), "d joins c")
    await asyncio.sleep(0.8)
    late = [t for t in peer if t >= time.monotonic() - 1.0]
    await asyncio.gather(c.leave(), d.leave())

    assert busiest_second(peer) <= RATE, "the gateway saw more than its limit in one second"
    assert len(late) >= RATE * 0.6, f"the limit is used, not wasted: {len(late)} in the last second"
    assert [m.id for m in await registry.members(db)] in ([], ["w-c"], ["w-d"], ["w-c", "w-d"])


async def _until(check, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.02)
