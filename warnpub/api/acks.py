"""GET/POST /a/{token}: the acknowledgement link's page (warnpub.lastkm.link_page); a warning's
visit tasks per village for the staff."""

from __future__ import annotations

from aiohttp import web

from warnpub.api.bodies import too_large
from warnpub.api.context import caller_of, services
from warnpub.api.routes import RouteTable
from warnpub.auth.callers import require_operator
from warnpub.lastkm import texts
from warnpub.lastkm.link_page import LinkExpired, LinkInvalid, LinkView, confirm, view
from warnpub.lastkm.visit_list import visits_by_village
from warnpub.problems import FieldError, bad_request
from warnpub.render.templates import environment
from warnpub.render.words import primary

routes = RouteTable()
TEMPLATE = "ack/page.html.j2"
MAX_FORM_BYTES = 4096
HTML = {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The link's token: a delivery id in base 36, a dot, a 12-character signature",
    "schema": {"type": "string"},
}
WORDS = {
    "zh": {
        "title": "确认收到预警",
        "hello": "您好，",
        "button": "我已收到（并已告知勾选的人员）",
        "checklist": "请勾选已上门告知的人员",
        "told": "已告知",
        "acknowledged": "已确认收到，谢谢！",
        "closed": "此预警已解除或已结束，无需再确认。",
        "code": "短信确认代码：",
        "invalid": "链接无效。请使用短信中的原始链接，或直接回复短信中的代码。",
        "expired": "链接已过期。请直接回复短信中的代码确认。",
    },
    "en": {
        "title": "Confirm the warning",
        "hello": "Hello,",
        "button": "I have received it (and told the people ticked)",
        "checklist": "Tick the people you told in person",
        "told": "told",
        "acknowledged": "Confirmed. Thank you!",
        "closed": "This warning is over or was cancelled; nothing to confirm.",
        "code": "SMS reply code:",
        "invalid": "This link is not valid. Use the link in the message, or reply with its code.",
        "expired": "This link has expired. Please reply to the SMS with its code.",
    },
}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(
    v: LinkView | None, *, language: str, error: str = "", recorded: str = "", status: int = 200
) -> web.Response:
    lang = primary(language) if primary(language) in WORDS else "zh"
    open_tasks = bool(v and any(t["open"] for t in v.tasks))
    html = environment().get_template(TEMPLATE).render(
        v=v, w=WORDS[lang], lang=language, error=error, recorded=recorded, open_tasks=open_tasks
    )
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=HEADERS
    )


def _refusal(exc: Exception) -> web.Response:
    if isinstance(exc, LinkExpired):
        return _page(None, language="zh-CN", error=WORDS["zh"]["expired"], status=410)
    return _page(None, language="zh-CN", error=WORDS["zh"]["invalid"], status=404)


@routes.route(
    "GET",
    "/a/{token}",
    auth="signed link",
    summary="An acknowledgement link's page: the warning, a confirm button and, for a village contact, the checklist of people to tell in person. Opening it records nothing.",
    params=(TOKEN,),
    response={"200": HTML},
    errors=(404, 410),
)
async def ack_page(request: web.Request) -> web.Response:
    svc = services(request)
    try:
        async with svc.db.reader() as session:
            v = await view(session, request.match_info["token"])
    except (LinkInvalid, LinkExpired) as exc:
        return _refusal(exc)
    return _page(v, language=v.person.language or "zh-CN")


@routes.route(
    "POST",
    "/a/{token}",
    auth="signed link",
    summary="The confirm button: records the acknowledgement (channel `link`) and the people ticked as told in person.",
    params=(TOKEN,),
    request={
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"reached": {"type": "array", "items": {"type": "integer"}}},
                }
            }
        },
    },
    response={"200": HTML},
    errors=(400, 404, 410, 413),
)
async def ack_confirm(request: web.Request) -> web.Response:
    svc = services(request)
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise too_large(request.content_length, MAX_FORM_BYTES)
    form = await request.post()
    try:
        numbers = sorted({int(str(n)) for n in form.getall("reached", [])})
    except ValueError:
        raise bad_request(
            "reached: give the numbers on your list", [FieldError("reached", "whole numbers")]
        ) from None
    token = request.match_info["token"]
    try:
        async with svc.db.session() as session:
            report = await confirm(session, token, numbers)
        async with svc.db.reader() as session:
            v = await view(session, token)
    except (LinkInvalid, LinkExpired) as exc:
        return _refusal(exc)
    language = v.person.language or "zh-CN"
    recorded = WORDS[primary(language) if primary(language) in WORDS else "zh"]["acknowledged"]
    if report is not None:
        recorded = texts.visits_recorded(report.done + report.already, report.left, report.unknown, language)
    if svc.dispatcher is not None:
        svc.dispatcher.poke()
    return _page(v, language=language, recorded=recorded)


@routes.route(
    "GET",
    "/api/v1/warnings/{warning_id}/visits",
    auth="operator",
    summary="The warning's visit tasks per village: each person's needs, their village contact, open / done (how and when) / closed.",
    response={
        "200": {
            "description": "Visit tasks per village",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "warning_id": {"type": "string"},
                            "counts": {"type": "object"},
                            "villages": {"type": "array", "items": {"type": "object"}},
                        },
                    }
                }
            },
        }
    },
    errors=(401, 403, 404),
)
async def warning_visits(request: web.Request) -> web.Response:
    svc = services(request)
    require_operator(await caller_of(request), "operator", "supervisor", "admin")
    async with svc.db.reader() as session:
        listing = await visits_by_village(session, request.match_info["warning_id"])
    return web.json_response(listing)
