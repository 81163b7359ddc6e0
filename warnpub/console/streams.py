"""The console's open event streams, so a server shutdown ends them at once.

An event stream (``GET /console/warnings/{id}/events``) waits between reads on
:meth:`Streams.wait`; :meth:`Streams.close`, called from the application's ``on_shutdown``
(registered by :class:`warnpub.console.routes.ConsoleRoutes`), wakes every one of them so each
writes nothing more and returns. Without it a stream would run until its warning ends or its
next write fails, and aiohttp would wait for it (up to the runner's shutdown timeout) before
stopping.
"""

from __future__ import annotations

import asyncio


class Streams:
    def __init__(self) -> None:
        self._closing = asyncio.Event()
        self.open = 0

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    async def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``, or less when the server shuts down; True if it does."""
        if self._closing.is_set():
            return True
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """End every stream (the server is shutting down); new ones end at once too."""
        self._closing.set()
