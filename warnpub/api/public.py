"""The public full-text page of a warning: where a cut SMS links to (``[render] full_text_url``).

It shows the warning as its e-mail does (autoescaped HTML, the level named in words), in the
reader's language when the warning has an info block in it. Only warnings that were released
and are meant for the public are shown.
"""

from __future__ import annotations

from aiohttp import web

from warnpub.api.context import services
from warnpub.api.routes import RouteTable
from warnpub.problems import not_found
from warnpub.render.templates import render
from warnpub.render.view import WarningView
from warnpub.review import states
from warnpub.storage.tables import WarningRecord

routes = RouteTable()
RELEASED = (states.APPROVED, states.DISPATCHING, states.COMPLETED, states.CANCELLED, states.EXPIRED)
# The page is static HTML with inline styles: nothing else may load or run.
CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@routes.route(
    "GET",
    "/w/{warning_id}",
    auth="none",
    summary="The full text of a released public warning (HTML); ?lang=en picks the English block.",
    params=({"name": "lang", "in": "query", "required": False, "schema": {"type": "string"}},),
    response={
        "200": {
            "description": "HTML page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    },
    errors=(404,),
)
async def full_text(request: web.Request) -> web.Response:
    svc = services(request)
    async with svc.db.reader() as session:
        warning = await session.get(WarningRecord, request.match_info["warning_id"])
    if warning is None or warning.state not in RELEASED or warning.scope != "Public":
        raise not_found("no public warning with this id")
    language = request.query.get("lang") or svc.settings.render.default_language
    page = render("email", WarningView.from_record(warning, svc.settings), language).html or ""
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )
