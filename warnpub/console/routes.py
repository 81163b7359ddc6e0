"""The console's route table (registered on the app in warnpub/api/app.py)."""

from __future__ import annotations

from aiohttp import web

from warnpub.api.routes import RouteTable
from warnpub.console.streams import Streams

STREAMS: web.AppKey[Streams] = web.AppKey("console_streams", Streams)


class ConsoleRoutes(RouteTable):
    """The console's routes, plus the :class:`Streams` that its event streams wait on (closed
    on shutdown, so an open warning page never holds the server up)."""

    def add_to(self, app: web.Application) -> None:
        super().add_to(app)
        app[STREAMS] = streams = Streams()

        async def close_streams(_: web.Application) -> None:
            streams.close()

        app.on_shutdown.append(close_streams)


routes = ConsoleRoutes()
HTML = {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}
FORM = {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
SESSION = "console session (cookie wp_session)"
