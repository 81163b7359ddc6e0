"""What every handler needs: settings, database, and the caller of the request."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from warnpub.auth import key_cache
from warnpub.auth.callers import Caller, bearer, identify
from warnpub.auth.secrets import sha256_hex
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
    svc = services(request)
    header = request.headers.get("Authorization")
    credential = bearer(header)
    # An agency's key found valid in the last seconds is not looked up again (auth.key_cache).
    where = svc.db.url + "#" + svc.db.schema
    if (agency := key_cache.agency_for(where, credential)) is not None:
        return Caller(agency=agency)
    # A read transaction: looking a credential up writes nothing, and on SQLite a write
    # transaction per request would take one of the write lock's turns (bench/load.py).
    async with svc.db.reader() as session:
        caller = await identify(session, header)
    if caller.agency is not None:
        seconds = svc.settings.security.api_key_cache_seconds
        key_cache.remember(where, credential, sha256_hex(credential), caller.agency, seconds)
    return caller
