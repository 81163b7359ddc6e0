"""Rendering console pages: the shared context, security headers, and the ``page`` decorator
that signs in, checks the role and (for POST) the CSRF token before a handler runs.

Templates are ``templates/console/*.html.j2`` in the project's sandboxed environment
(:func:`warnpub.render.templates.environment`), autoescaped like every ``*.html.j2``: text from
agencies, rosters and operators is always text. Each page may run inline scripts only with its
own nonce.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web
from markupsafe import Markup
from multidict import MultiDictProxy

from warnpub.api.context import services
from warnpub.boards.look import look_of
from warnpub.cap.model import Level
from warnpub.console.security import LANG_COOKIE, csrf_ok, csrf_token, set_cookie
from warnpub.console.session import RoleRefused, Session, SignInNeeded, current, language
from warnpub.console.words import (
    channel_name,
    code_name,
    hazard_name,
    need_name,
    role_name,
    state_name,
    tier_name,
    words,
)
from warnpub.problems import Problem
from warnpub.render.templates import environment
from warnpub.render.words import words_for

STATES = ("pending", "approved", "dispatching", "completed", "rejected", "cancelled", "expired")
FORM_NOTE = "The form carries `csrf`; a missing or wrong one is refused with 403."


def headers(nonce: str) -> dict[str, str]:
    csp = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


@dataclass(frozen=True, slots=True)
class LevelBadge:
    code: str
    name: str
    shape: str
    background: str
    foreground: str
    icon: Markup


def level_badge(level: str, lang: str) -> LevelBadge:
    """A level as text, icon shape and colour together (never colour alone)."""
    try:
        lv: Level | None = Level(level)
    except ValueError:
        lv = None
    look = look_of(lv)
    name = words_for("en" if lang == "en" else "zh-CN").level_name(lv)
    return LevelBadge(
        level or "none",
        name,
        look.shape,
        look.background,
        look.foreground,
        Markup(look.icon),  # noqa: S704 (a fixed SVG from warnpub.boards.look, no user text)
    )


def render(
    request: web.Request,
    template: str,
    lang: str,
    s: Session | None,
    *,
    status: int = 200,
    csrf: str | None = None,
    **ctx: Any,
) -> web.Response:
    settings = services(request).settings
    nonce = secrets.token_urlsafe(16)
    other = "en" if lang == "zh" else "zh"
    html = (
        environment()
        .get_template(f"console/{template}")
        .render(
            w=words(lang),
            lang=lang,
            html_lang="zh-CN" if lang == "zh" else "en",
            me=s.operator if s else None,
            role_label=role_name(lang, s.operator.role) if s else "",
            csrf=csrf if csrf is not None else (csrf_token(settings, s.token) if s else ""),
            nonce=nonce,
            path=request.path,
            other_lang=other,
            other_lang_url=f"{quote(request.path)}?lang={other}",
            level=lambda code: level_badge(code, lang),
            state_name=lambda code: state_name(lang, code),
            hazard_name=lambda code: hazard_name(settings, lang, code or ""),
            tier_name=lambda code: tier_name(lang, code),
            need_name=lambda code: need_name(lang, code),
            needs_text=lambda codes: needs_text(lang, codes),
            channel_name=lambda code: channel_name(lang, code),
            person_role=lambda code: code_name(lang, "prole", code),
            device_kind=lambda code: code_name(lang, "dkind", code),
            fmt=lambda text, **kw: text.format(**kw),
            state_names={code: state_name(lang, code) for code in STATES},
            **ctx,
        )
    )
    response = web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=headers(nonce)
    )
    remember_language(request, response, lang)
    return response


def needs_text(lang: str, codes: Any) -> str:
    """Need codes in words, joined as the language writes a list."""
    names = [need_name(lang, str(c)) for c in codes or ()]
    return ("、" if lang != "en" else ", ").join(names)


def remember_language(request: web.Request, response: web.StreamResponse, lang: str) -> None:
    if request.query.get("lang") and request.cookies.get(LANG_COOKIE) != lang:
        set_cookie(response, services(request).settings, LANG_COOKIE, lang, max_age=365 * 86400)


def error_page(
    request: web.Request, lang: str, s: Session | None, status: int, message: str
) -> web.Response:
    return render(request, "error.html.j2", lang, s, status=status, message=message)


@dataclass(slots=True)
class Ctx:
    """What a console handler gets: the request, the session, the language, the POST form."""

    request: web.Request
    s: Session
    lang: str
    form: Mapping[str, Any] = field(default_factory=dict)

    @property
    def w(self) -> Mapping[str, str]:
        return words(self.lang)

    def page(self, template: str, *, status: int = 200, **ctx: Any) -> web.Response:
        return render(self.request, template, self.lang, self.s, status=status, **ctx)

    def field(self, name: str) -> str:
        value = self.form.get(name, "")
        return value.strip() if isinstance(value, str) else ""


Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]


def see_other(location: str) -> web.Response:
    """303 to ``location`` (after a form, and to the sign-in page)."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def sign_in_redirect(request: web.Request) -> web.Response:
    target = request.path_qs if request.method == "GET" else "/console/"
    return see_other(f"/console/login?next={quote(target, safe='')}")


def page(*roles: str) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Wrap a console handler: sign-in, role and (for POST) CSRF checks, HTML error pages."""

    def wrap(fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(fn)
        async def handler(request: web.Request) -> web.StreamResponse:
            lang = language(request)
            try:
                s = await current(request, *roles)
            except SignInNeeded:
                return sign_in_redirect(request)
            except RoleRefused as refused:
                w = words(lang)
                message = w["forbidden"].format(
                    role=role_name(lang, refused.role),
                    roles=" / ".join(role_name(lang, r) for r in refused.roles),
                )
                return error_page(request, lang, None, 403, message)
            form: Mapping[str, Any] = {}
            if request.method == "POST":
                form = await read_form(request)
                given = form.get("csrf", "")
                if not csrf_ok(
                    services(request).settings, s.token, given if isinstance(given, str) else ""
                ):
                    return error_page(request, lang, s, 403, words(lang)["csrf_failed"])
            try:
                return await fn(Ctx(request, s, lang, form))
            except Problem as problem:
                if problem.status in (404, 403, 400, 409, 422):
                    return error_page(request, lang, s, problem.status, problem.detail)
                raise

        return handler

    return wrap


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """The form (url-encoded or multipart). Roster uploads may be as large as
    ``[server] max_upload_bytes``; the application's client_max_size enforces that."""
    return await request.post()
