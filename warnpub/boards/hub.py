"""Wakes the boards' event streams when warnings change.

One task per application looks at a cheap marker of the warnings table (how many rows, the
latest change) every :data:`CHECK_S` seconds while at least one board is connected, and wakes
every stream when it moves; each stream then works out its own board's content and sends it
only when it differs from what the board has. Changes made by another process (an operator
on another API host, the expiry timer in a worker) are seen the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select

from warnpub.storage.engine import Database
from warnpub.storage.tables import WarningRecord

log = logging.getLogger("warnpub.boards.hub")

CHECK_S = 1.0  # how often the marker is read while boards are connected


class BoardHub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Event] = set()
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def connected(self) -> int:
        return len(self._subscribers)

    @asynccontextmanager
    async def subscribe(self, db: Database) -> AsyncIterator[asyncio.Event]:
        """An event that is set when warnings may have changed (or the hub closes)."""
        event = asyncio.Event()
        self._subscribers.add(event)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(db), name="board-hub")
        try:
            yield event
        finally:
            self._subscribers.discard(event)

    def wake(self) -> None:
        for event in self._subscribers:
            event.set()

    async def close(self) -> None:
        """End every stream (the server is shutting down)."""
        self.closed = True
        self.wake()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self, db: Database) -> None:
        last: Any = None
        while self._subscribers and not self.closed:
            try:
                async with db.reader() as session:
                    marker = (
                        await session.execute(
                            select(func.count(), func.max(WarningRecord.updated_at))
                        )
                    ).one()
                marker = tuple(marker)
                if last is not None and marker != last:
                    self.wake()
                last = marker
            except Exception:
                log.warning(
                    "reading the warnings marker failed; boards keep their content", exc_info=True
                )
            await asyncio.sleep(CHECK_S)
