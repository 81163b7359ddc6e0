"""Partner systems: GET /feeds/cap.atom and GET /warnings/{id}.cap.xml (public, no credentials).

Both answer conditional GETs: an ``If-None-Match`` naming the current ETag (or, for the feed,
an ``If-Modified-Since`` not older than its Last-Modified) gets 304 with no body.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from warnpub.api.context import services
from warnpub.api.routes import RouteTable
from warnpub.cap import Alert
from warnpub.clock import utcnow
from warnpub.feeds import atom
from warnpub.feeds.conditional import etag_for, http_date, not_modified, settled
from warnpub.feeds.documents import CAP_MEDIA_TYPE, is_published, published_cap
from warnpub.problems import not_found
from warnpub.storage.tables import WarningRecord

routes = RouteTable()
# Caches may keep a copy but must ask again every time: warnings change within minutes.
CACHE_CONTROL = "public, no-cache"
CONDITIONAL = (
    {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "The ETag of the copy you hold; 304 when it is still current.",
    },
)
IF_MODIFIED_SINCE = {
    "name": "If-Modified-Since",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "The Last-Modified of the copy you hold (ignored with If-None-Match).",
}
NOT_MODIFIED = {"304": {"description": "Not modified: the copy you hold is current"}}


def _respond(
    request: web.Request, body: bytes, media_type: str, last_changed: datetime | None = None
) -> web.Response:
    etag = etag_for(body)
    last_modified = settled(last_changed, utcnow())
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    if not_modified(request.headers, etag, last_modified):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers={**headers, "Content-Type": media_type})


@routes.route(
    "GET",
    atom.FEED_PATH,
    auth="none",
    summary="Atom feed of the active public warnings (Actual, in force, not replaced), newest first; each entry links to its CAP 1.2 document.",
    params=(*CONDITIONAL, IF_MODIFIED_SINCE),
    response={
        "200": {
            "description": "The feed",
            "content": {f"{atom.ATOM_MEDIA_TYPE}; charset=utf-8": {"schema": {"type": "string"}}},
        },
        **NOT_MODIFIED,
    },
)
async def cap_feed(request: web.Request) -> web.Response:
    svc = services(request)
    async with svc.db.reader() as session:
        state = await atom.feed_state(session, utcnow())
    body = atom.build_feed(state, svc.settings)
    return _respond(request, body, f"{atom.ATOM_MEDIA_TYPE}; charset=utf-8", state.last_changed)


@routes.route(
    "GET",
    "/warnings/{warning_id}.cap.xml",
    auth="none",
    summary="A released public warning as a CAP 1.2 document (signed by the centre when a signing key is configured).",
    params=CONDITIONAL,
    response={
        "200": {
            "description": "The CAP 1.2 document",
            "content": {CAP_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **NOT_MODIFIED,
    },
    errors=(404,),
)
async def cap_document(request: web.Request) -> web.Response:
    svc = services(request)
    warning_id = request.match_info["warning_id"]
    async with svc.db.reader() as session:
        warning = await session.get(WarningRecord, warning_id)
    if warning is None or not is_published(warning):
        raise not_found(f"no public warning with id {warning_id}")
    body = published_cap(warning.id, Alert.model_validate(warning.alert), svc.settings)
    return _respond(request, body, CAP_MEDIA_TYPE)
