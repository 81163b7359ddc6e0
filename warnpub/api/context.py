"""What every handler needs: settings, database, and the caller of the request."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from warnpub.auth.callers import Caller, identify
from warnpub.config import Settings
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.lastkm.inbox import ReplyInbox
from warnpub.storage.engine import Database


@dataclass(slots=True)
class Services:
    settings: Settings
    db: Database
    dispatcher: Dispatcher | None = None
    inbox: ReplyInbox | None = None  # made on the first inbound SMS (warnpub.lastkm.inbox)

    def released(self, warning_id: str) -> None:
        """A warning was approved, released by the green channel, or cancelled."""
        if self.dispatcher is not None:
            self.dispatcher.released(warning_id)


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


async def caller_of(request: web.Request) -> Caller:
    # A read transaction: looking a credential up writes nothing, and on SQLite a write
    # transaction per request would take one of the write lock's turns (bench/load.py).
    async with services(request).db.reader() as session:
        return await identify(session, request.headers.get("Authorization"))
