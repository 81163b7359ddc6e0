"""Notice boards over HTTP: the full-screen board page, its event stream and poll, the paper
notice, and the village contact's "posted" acknowledgement (see docs/boards.md).

A board authenticates with its own token (``Authorization: Bearer wpb_…`` or ``?token=wpb_…``
for a kiosk browser that cannot set headers). Every board request is its heartbeat
(:mod:`warnpub.boards.heartbeat`). Agency text is rendered only through autoescaped
templates; the page runs one inline script, allowed by a per-response nonce, and loads
nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any
from urllib.parse import quote

from aiohttp import web
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.api.bodies import json_object, text_field
from warnpub.api.context import services
from warnpub.api.routes import RouteTable
from warnpub.audiences.divisions import covers, is_division_code
from warnpub.audiences.tables import Device
from warnpub.auth.callers import identify, require_operator
from warnpub.auth.secrets import TOKEN_PREFIX as OPERATOR_TOKEN_PREFIX
from warnpub.boards import heartbeat
from warnpub.boards.content import BoardContent, active_warnings, board_content
from warnpub.boards.hub import BoardHub
from warnpub.boards.notices import load_notice, render_notice
from warnpub.boards.tokens import TOKEN_PREFIX, board_for_token, device_for_token, fix_hint
from warnpub.clock import iso, utcnow
from warnpub.problems import Problem, forbidden, invalid, not_found, unauthorized
from warnpub.render.templates import environment

log = logging.getLogger("warnpub.api.boards")

KEEPALIVE_S = 15.0  # a ping (and a heartbeat) this often on an idle event stream
POLL_S = 30  # the page polls this often when it has no event stream
RETRY_MS = 5000  # EventSource reconnects after this
PAGE_TEMPLATE = "board/page.html.j2"
STAFF = ("operator", "supervisor", "admin")
HTML_RESPONSE = {
    "200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
}
TOKEN_PARAM = {
    "name": "token",
    "in": "query",
    "required": False,
    "description": "The board token, for kiosk browsers that cannot send an Authorization header",
    "schema": {"type": "string"},
}
LANG_PARAM = {"name": "lang", "in": "query", "required": False, "schema": {"type": "string"}}
CONTENT_SCHEMA = {
    "type": "object",
    "required": ["version", "html", "warnings", "at"],
    "properties": {
        "version": {"type": "string"},
        "html": {"type": "string", "description": "the warning list, escaped HTML"},
        "warnings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "level": {"type": "string"},
                    "level_name": {"type": "string"},
                    "headline": {"type": "string"},
                },
            },
        },
        "at": {"type": "string", "format": "date-time"},
    },
}
HUB: web.AppKey[BoardHub] = web.AppKey("board_hub", BoardHub)


class BoardRoutes(RouteTable):
    """The board routes, plus the hub that wakes their event streams (closed on shutdown, so
    connected boards never hold the server up)."""

    def add_to(self, app: web.Application) -> None:
        super().add_to(app)
        app[HUB] = hub = BoardHub()

        async def close_streams(_: web.Application) -> None:
            await hub.close()

        app.on_shutdown.append(close_streams)


routes = BoardRoutes()


# -- credentials --------------------------------------------------------------------------


def credential(request: web.Request) -> str:
    """The token of the request: the Authorization header, else ``?token=``."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthorized("use the Bearer scheme: 'Authorization: Bearer <board token>'")
        return value.strip()
    token = request.query.get("token", "").strip()
    if not token:
        raise unauthorized(
            "this board needs its token: open /boards/<board id>?token=<board token> "
            "(or send 'Authorization: Bearer <board token>'); "
            "the centre issues it with `warnpub board token <board>`"
        )
    return token


async def _board(session: AsyncSession, request: web.Request) -> Device:
    board_id = request.match_info["board_id"]
    return await board_for_token(session, credential(request), board_id)


def _language(request: web.Request) -> str:
    return request.query.get("lang") or services(request).settings.render.default_language


async def _content(request: web.Request, device: Device) -> BoardContent:
    svc = services(request)
    async with svc.db.reader() as session:
        records = await active_warnings(session, device.area_code, utcnow())
    return board_content(records, svc.settings, _language(request))


async def _heartbeat(request: web.Request, via: str, content: BoardContent | None) -> Device:
    """Authenticate the board again, record the request and what it was shown; the board."""
    svc = services(request)
    now = utcnow()
    async with svc.db.session() as session:
        device = await _board(session, request)
        await heartbeat.seen(session, device, via, now)
        if content is not None and device.kind == "board_digital":
            marked = await heartbeat.shown(session, device, content.warning_ids, now)
            if marked:
                log.info(
                    "board showed warnings",
                    extra={"board": device.address, "deliveries": marked, "via": via},
                )
    return device


def _payload(content: BoardContent) -> dict[str, Any]:
    return {
        "version": content.version,
        "html": content.html,
        "warnings": [
            {
                "id": i.warning_id,
                "level": i.level,
                "level_name": i.text["level_name"],
                "headline": i.text["headline"],
            }
            for i in content.items
        ],
        "at": iso(utcnow()),
    }


def _page_headers(nonce: str) -> dict[str, str]:
    csp = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


def _board_urls(request: web.Request, board_id: str) -> dict[str, str]:
    """Where the page's script fetches updates: the same credential as the page, if it was in
    the URL (a header-authenticated kiosk sends its header with every request anyway)."""
    query: list[str] = []
    if not request.headers.get("Authorization") and request.query.get("token"):
        query.append("token=" + quote(request.query["token"], safe=""))
    if request.query.get("lang"):
        query.append("lang=" + quote(request.query["lang"], safe=""))
    suffix = ("?" + "&".join(query)) if query else ""
    base = f"/boards/{quote(board_id, safe='')}"
    return {"events": f"{base}/events{suffix}", "poll": f"{base}/poll{suffix}"}


# -- the board page -----------------------------------------------------------------------


@routes.route(
    "GET",
    "/boards/{board_id}",
    auth="board",
    summary="A digital board's full-screen page: the active warnings of its area, most severe and newest first; updates itself (events, else polling). The request is the board's heartbeat.",
    params=(TOKEN_PARAM, LANG_PARAM),
    response=HTML_RESPONSE,
    errors=(401, 403),
)
async def board_page(request: web.Request) -> web.Response:
    device = await _authenticated(request)
    content = await _content(request, device)
    device = await _heartbeat(request, "page", content)
    nonce = secrets.token_urlsafe(16)
    urls = _board_urls(request, device.address)
    config = {
        "events": urls["events"],
        "poll": urls["poll"],
        "poll_s": POLL_S,
        "keepalive_s": KEEPALIVE_S,
        "version": content.version,
        "lost": content.words.lost,
    }
    page = (
        environment()
        .get_template(PAGE_TEMPLATE)
        .render(
            board=device,
            content=content,
            words=content.words,
            warnings_html=Markup(content.html),  # noqa: S704 (rendered by the autoescaped list template)
            config=json.dumps(config, ensure_ascii=False).replace("<", "\\u003c"),
            nonce=nonce,
            language=content.language,
            paper=device.kind == "board_paper",
        )
    )
    return web.Response(
        text=page, content_type="text/html", charset="utf-8", headers=_page_headers(nonce)
    )


async def _authenticated(request: web.Request) -> Device:
    async with services(request).db.reader() as session:
        return await _board(session, request)


@routes.route(
    "GET",
    "/boards/{board_id}/poll",
    auth="board",
    summary="The board's content now (for boards without an event stream); a heartbeat.",
    params=(TOKEN_PARAM, LANG_PARAM),
    response={
        "200": {
            "description": "The content of the board",
            "content": {"application/json": {"schema": CONTENT_SCHEMA}},
        }
    },
    errors=(401, 403),
)
async def board_poll(request: web.Request) -> web.Response:
    device = await _authenticated(request)
    content = await _content(request, device)
    await _heartbeat(request, "poll", content)
    return web.json_response(_payload(content), headers={"Cache-Control": "no-store"})


@routes.route(
    "GET",
    "/boards/{board_id}/events",
    auth="board",
    summary="Server-sent events: a `board` event with the content whenever it changes, a `ping` every 15 s; each is a heartbeat.",
    params=(TOKEN_PARAM, LANG_PARAM),
    response={
        "200": {
            "description": "An event stream",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
    errors=(401, 403),
)
async def board_events(request: web.Request) -> web.StreamResponse:
    device = await _authenticated(request)
    svc = services(request)
    hub = request.app[HUB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
            "X-Content-Type-Options": "nosniff",
        }
    )
    await response.prepare(request)
    sent_version = ""
    try:
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        async with hub.subscribe(svc.db) as changed:
            while not hub.closed:
                try:
                    content = await _content(request, device)
                    if content.version != sent_version:
                        await _send(response, "board", _payload(content))
                        sent_version = content.version
                    else:
                        await _send(response, "ping", {"at": iso(utcnow())})
                    device = await _heartbeat(request, "events", content)
                except Problem as problem:  # the token was rotated or the board switched off
                    await _send(response, "denied", problem.as_dict())
                    break
                except (ConnectionError, asyncio.CancelledError):
                    raise
                except Exception:
                    log.warning(
                        "board stream round failed; the board keeps its content",
                        extra={"board": device.address},
                        exc_info=True,
                    )
                try:
                    await asyncio.wait_for(changed.wait(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    pass
                changed.clear()
    except ConnectionError:
        pass  # the board went away; it reconnects by itself
    return response


async def _send(response: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    await response.write(f"event: {event}\ndata: {text}\n\n".encode())


# -- paper boards -------------------------------------------------------------------------


@routes.route(
    "POST",
    "/boards/{board_id}/posted",
    auth="board",
    summary="A paper board's village contact confirms the notice of a warning is posted: its delivery becomes delivered (and acknowledged).",
    params=(TOKEN_PARAM,),
    request={
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["warning_id"],
                "properties": {
                    "warning_id": {"type": "string"},
                    "by": {"type": "string", "description": "who posted it (optional)"},
                },
            }
        }
    },
    response={
        "200": {
            "description": "Recorded (again: nothing changes)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
    errors=(400, 401, 403, 415, 422),
)
async def board_posted(request: web.Request) -> web.Response:
    svc = services(request)
    device = await _authenticated(request)
    doc = await json_object(request)
    warning_id = text_field(doc, "warning_id").strip()
    by = text_field(doc, "by", required=False).strip() or f"board:{device.address}"
    if device.kind != "board_paper":
        raise invalid(
            f"board {device.address} is a digital board: it confirms warnings by showing them; "
            "posted acknowledgements are for paper boards"
        )
    async with svc.db.reader() as session:
        live = {w.id for w in await active_warnings(session, device.area_code, utcnow())}
    if warning_id not in live:
        raise invalid(
            f"warning {warning_id!r} is not in force for board {device.address} "
            f"(area {device.area_code}); name a warning from the board's list",
        )
    now = utcnow()
    async with svc.db.session() as session:
        device = await _board(session, request)
        await heartbeat.seen(session, device, "posted", now)
        posted_at, marked = await heartbeat.posted(session, device, warning_id, by, now)
    log.info(
        "notice posted",
        extra={"board": device.address, "warning_id": warning_id, "deliveries": marked},
    )
    return web.json_response(
        {
            "board": device.address,
            "warning_id": warning_id,
            "posted_at": iso(posted_at),
            "deliveries_delivered": marked,
        }
    )


@routes.route(
    "GET",
    "/notices/{warning_id}/{area_code}",
    auth="operator or board",
    summary="The printable A4 notice of a warning for one village, with a QR code to its full text (operator token, or the token of a board in that area).",
    params=(TOKEN_PARAM, LANG_PARAM),
    response=HTML_RESPONSE,
    errors=(401, 403, 404, 409, 422),
)
async def notice(request: web.Request) -> web.Response:
    svc = services(request)
    area_code = request.match_info["area_code"]
    token = credential(request)
    async with svc.db.session() as session:
        if token.startswith(TOKEN_PREFIX + "_"):
            await _board_in_area(session, request, token, area_code)
        elif token.startswith(OPERATOR_TOKEN_PREFIX + "_"):
            require_operator(await identify(session, f"Bearer {token}"), *STAFF)
        else:
            raise unauthorized(
                "print notices with an operator token (wpt_…) or the token of a board in the "
                "village (wpb_…), in the Authorization header or as ?token="
            )
        language = _language(request)
        found = await load_notice(
            session, svc.settings, request.match_info["warning_id"], area_code, language
        )
    page = render_notice(found, language)
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:; base-uri 'none'; form-action 'none'",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


async def _board_in_area(
    session: AsyncSession, request: web.Request, token: str, area_code: str
) -> Device:
    """The board of ``token`` (any board id), which must stand in ``area_code`` or above it."""
    device = await device_for_token(session, token)
    if device is None:
        raise unauthorized(f"the board token is not valid; {fix_hint('<board>')}")
    if not device.active:
        raise forbidden(f"board {device.address} is switched off (inactive)")
    if not is_division_code(area_code):
        raise not_found(
            f"no area has the division code {area_code!r} (12 digits, e.g. 320481116200)"
        )
    if not covers(device.area_code, area_code):
        raise forbidden(
            f"board {device.address} stands in {device.area_code}; it may print notices for "
            "its own area only"
        )
    await heartbeat.seen(session, device, "notice", utcnow())
    return device
