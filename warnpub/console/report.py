"""GET /console/warnings/{id}/report: the coverage-and-time report inside the console.

The charts and tables are :func:`warnpub.reports.render_html.render`'s page (its body and its
CSS, scoped to the report's element so it cannot restyle the console), in the console's
language (zh-CN by default, en with ``?lang=en``); the unreached list is the console's own, with
what to do next for each person or device, its roles, needs and attempts in words.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from aiohttp import web
from markupsafe import Markup

from warnpub.api.context import services
from warnpub.console.pages import Ctx, page
from warnpub.console.routes import HTML, SESSION, routes
from warnpub.console.words import channel_name, code_name, hazard_name
from warnpub.reports import build_report
from warnpub.reports.build import display_zone
from warnpub.reports.model import Unreached
from warnpub.reports.render_html import render

_STYLE = re.compile(r"<style>(.*?)</style>", re.S)
_BODY = re.compile(r"<body>(.*)</body>", re.S)
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
SCOPE = ".report-embed"


def scoped_css(css: str) -> str:
    """Every selector of the report's (flat) stylesheet prefixed with the report's element."""

    def one(m: re.Match[str]) -> str:
        selectors = []
        for sel in m.group(1).split(","):
            sel = sel.strip()
            selectors.append(SCOPE if sel == "body" else f"{SCOPE} {sel}")
        return f"{', '.join(selectors)} {{{m.group(2)}}}\n"

    return _RULE.sub(one, css)


def embedded(report_html: str) -> tuple[str, str]:
    """(scoped CSS, body HTML) of the report page."""
    style = _STYLE.search(report_html)
    body = _BODY.search(report_html)
    return (scoped_css(style.group(1)) if style else "", body.group(1) if body else report_html)


def tried(u: Unreached, lang: str) -> str:
    """The attempts in the page's language: ``短信 失败（unknown number）；语音电话 超时``."""
    parts = []
    for a in u.attempts:
        text = f"{channel_name(lang, a.channel)} {code_name(lang, 'dstate', a.state)}"
        if a.error:
            text += f" ({a.error})" if lang == "en" else f"（{a.error}）"
        parts.append(text)
    return ("; " if lang == "en" else "；").join(parts)


def next_step(u: Unreached, w: Any) -> str:
    if u.kind == "device":
        return str(w["next_device"])
    if u.relay_contact:
        return str(w["next_relay"]).format(contact=u.relay_contact)
    if u.phone:
        return str(w["next_call"]).format(phone=u.phone[-4:])
    return str(w["next_visit"])


@routes.route(
    "GET",
    "/console/warnings/{warning_id}/report",
    auth=SESSION,
    summary="Console: the warning's coverage-and-time report with charts, and the unreached list with the next step for each.",
    response=HTML,
)
@page()
async def console_report(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    report = await build_report(
        svc.db, svc.settings, ctx.request.match_info["warning_id"], unreached=True
    )
    listed = report.unreached or []
    charts = dataclasses.replace(report, unreached=None)
    lang = "en" if ctx.lang == "en" else "zh-CN"
    hazard = hazard_name(svc.settings, ctx.lang, report.warning.hazard or "")
    css, body = embedded(render(charts, display_zone(svc.settings), lang, hazard=hazard))
    return ctx.page(
        "report.html.j2",
        r=report,
        report_css=Markup(css),  # noqa: S704 (the report template's own stylesheet)
        report_body=Markup(body),  # noqa: S704 (rendered by the autoescaped report template)
        unreached=[
            {"u": u, "next": next_step(u, ctx.w), "tried": tried(u, ctx.lang)} for u in listed
        ],
        truncated=report.unreached_truncated,
    )
