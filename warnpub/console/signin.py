"""Sign-in and sign-out: GET/POST /console/login, POST /console/logout.

A failed attempt is audited (``login.failed``) by :func:`warnpub.auth.operators.login`; too
many of them lock the username for a while (``[console]``), and attempts while locked are
audited as ``login.locked`` without checking the password.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from aiohttp import web

from warnpub.api.context import services
from warnpub.auth.operators import sign_in
from warnpub.console.pages import Ctx, page, read_form, render, see_other
from warnpub.console.routes import FORM, HTML, SESSION, routes
from warnpub.console.security import (
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    csrf_ok,
    csrf_token,
    new_pre_session,
    set_cookie,
)
from warnpub.console.session import SignInNeeded, current, language, revoke
from warnpub.console.words import words

PURPOSE = "login"


def _next(raw: str) -> str:
    """Where to go after signing in: only a console path of this site."""
    if raw.startswith("/console/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return "/console/"


def _form_page(
    request: web.Request, lang: str, *, error: str = "", username: str = "", status: int = 200
) -> web.Response:
    settings = services(request).settings
    pre = request.cookies.get(PRE_SESSION_COOKIE) or new_pre_session()
    response = render(
        request,
        "login.html.j2",
        lang,
        None,
        status=status,
        csrf=csrf_token(settings, pre, PURPOSE),
        error=error,
        username=username,
        next=_next(request.query.get("next", "")),
    )
    if request.cookies.get(PRE_SESSION_COOKIE) != pre:
        set_cookie(response, settings, PRE_SESSION_COOKIE, pre)
    return response


@routes.route(
    "GET", "/console/login", auth="none", summary="Console: the sign-in page.", response=HTML
)
async def console_login_page(request: web.Request) -> web.StreamResponse:
    try:
        await current(request)
    except SignInNeeded:
        return _form_page(request, language(request))
    except Exception:  # signed in but refused a role: show the form anyway
        return _form_page(request, language(request))
    return see_other("/console/")


@routes.route(
    "POST",
    "/console/login",
    auth="none",
    summary="Console: sign in with username and password (a session cookie on success; 303 to /console/).",
    request=FORM,
    response={"303": {"description": "Signed in"}} | HTML,
)
async def console_login(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    cfg = svc.settings.console
    lang = language(request)
    w = words(lang)
    form = await read_form(request)
    username = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))
    if not csrf_ok(svc.settings, request.cookies.get(PRE_SESSION_COOKIE), str(form.get("csrf", "")), PURPOSE):
        return _form_page(request, lang, error=w["login_csrf"], username=username, status=403)
    async with svc.db.session() as session:
        result = await sign_in(session, svc.settings, username, password)
    if (until := result.locked_until) is not None:
        local = until.astimezone(ZoneInfo(svc.settings.reports.display_timezone))
        message = w["login_locked"].format(
            until=local.strftime("%H:%M:%S"), minutes=round(cfg.lockout_minutes)
        )
        return _form_page(request, lang, error=message, username=username, status=429)
    if result.token is None:
        return _form_page(request, lang, error=w["login_failed"], username=username, status=401)
    token = result.token
    response = see_other(_next(str(form.get("next", ""))))
    set_cookie(
        response,
        svc.settings,
        SESSION_COOKIE,
        token,
        max_age=int(svc.settings.security.token_ttl_minutes * 60),
    )
    clear_cookie(response, svc.settings, PRE_SESSION_COOKIE)
    return response


@routes.route(
    "POST",
    "/console/logout",
    auth=SESSION,
    summary="Console: sign out (the session's token is revoked).",
    request=FORM,
    response={"303": {"description": "Signed out"}},
)
@page()
async def console_logout(ctx: Ctx) -> web.StreamResponse:
    await revoke(ctx.request, ctx.s)
    response = see_other("/console/login")
    clear_cookie(response, services(ctx.request).settings, SESSION_COOKIE)
    return response
