"""GET /console/warnings/{id}: the warning, every channel's message, the plan preview, approvals,
live progress; POST …/approve, …/reject, …/cancel through :mod:`warnpub.review.service`."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy import select

from warnpub.api.context import services
from warnpub.audiences.plan import preview, preview_json
from warnpub.audiences.targeting import Scope
from warnpub.clock import iso
from warnpub.console import plan_cache, progress, update
from warnpub.console.lookups import agency_names, local, warning_areas
from warnpub.console.pages import FORM_NOTE, Ctx, page, see_other
from warnpub.console.routes import FORM, HTML, SESSION, routes
from warnpub.problems import Problem
from warnpub.render.templates import render
from warnpub.render.view import WarningView
from warnpub.review import service as review
from warnpub.review.policy import approvals_needed
from warnpub.storage.tables import Operator, ReviewDecision, WarningRecord, WarningReference

log = logging.getLogger("warnpub.console")
PLAN_STATES = ("pending",)
DONE = {
    "approved": "done_approved",
    "rejected": "done_rejected",
    "cancelled": "done_cancelled",
    "update_sent": "done_update_sent",
}


def messages(warning: WarningRecord, settings: Any) -> list[dict[str, Any]]:
    """Every channel's message, per language of the warning's info blocks."""
    view = WarningView.from_record(warning, settings)
    languages = list(dict.fromkeys(i.language for i in view.alert.infos)) or [
        view.default_language
    ]
    out = []
    for lang in languages:
        entry: dict[str, Any] = {"language": lang, "channels": []}
        for channel in ("sms", "email", "speaker", "board"):
            try:
                r = render(channel, view, lang)
            except Exception as exc:  # a template problem must not hide the page
                log.exception("console render failed", extra={"warning_id": warning.id})
                entry["channels"].append({"channel": channel, "error": str(exc)})
                continue
            entry["channels"].append(
                {
                    "channel": channel,
                    "text": r.text,
                    "subject": r.subject,
                    "sms": r.sms,
                    "cut": r.cut,
                }
            )
        out.append(entry)
    return out


async def _plan(session: Any, settings: Any, warning: WarningRecord) -> dict[str, Any]:
    try:
        plan = await preview(session, settings, await Scope.of(session, warning))
        # The queue shows these counts too: keep them for the warning's row.
        plan_cache.remember(warning.id, await plan_cache.roster_version(session), plan)
        return {"ok": True, **await preview_json(session, plan, settings.audiences.tiers)}
    except Problem as problem:
        return {"ok": False, "why": problem.detail}


async def _referenced(session: Any, warning_id: str) -> list[WarningRecord]:
    rows = await session.execute(
        select(WarningRecord)
        .join(WarningReference, WarningReference.referenced_id == WarningRecord.id)
        .where(WarningReference.warning_id == warning_id)
    )
    return list(rows.scalars())


async def warning_page(
    ctx: Ctx,
    warning_id: str,
    *,
    error: str = "",
    status: int = 200,
    reason: str = "",
    update_values: dict[str, str] | None = None,
) -> web.Response:
    svc = services(ctx.request)
    settings = svc.settings
    async with svc.db.reader() as session:
        warning = await review.load(session, warning_id, lock=False)
        agency = (await agency_names(session, [warning.agency_id])).get(warning.agency_id, "")
        areas = (await warning_areas(session, [warning.id]))[warning.id]
        decisions = (
            await session.execute(
                select(ReviewDecision, Operator)
                .join(Operator, Operator.id == ReviewDecision.operator_id)
                .where(ReviewDecision.warning_id == warning.id)
                .order_by(ReviewDecision.at)
            )
        ).all()
        submitter = (
            await session.get(Operator, warning.submitted_by_operator_id)
            if warning.submitted_by_operator_id
            else None
        )
        plan = await _plan(session, settings, warning) if warning.state in PLAN_STATES else None
        live = await progress.snapshot(session, settings, warning.id, ctx.lang)
        referenced = await _referenced(session, warning.id)
    given = sum(1 for d, _ in decisions if d.decision == "approve")
    done = ctx.request.query.get("done", "")
    first = update.defaults(warning, settings)
    form = {**first, **(update_values or {})} if first else {}
    return ctx.page(
        "warning.html.j2",
        status=status,
        wr=warning,
        agency=agency,
        areas=areas,
        submitter=submitter,
        decisions=[
            {"d": d, "op": op, "at": local(settings, d.at)} for d, op in decisions
        ],
        given=given,
        needed=approvals_needed(settings, warning.level),
        times={
            "sent": local(settings, warning.sent),
            "received": local(settings, warning.created_at),
            "expires": local(settings, warning.expires_at),
            "deadline": local(settings, warning.review_deadline),
            "deadline_iso": iso(warning.review_deadline) or "",
        },
        messages=messages(warning, settings),
        plan=plan,
        live=live,
        error=error,
        reason=reason,
        notice=ctx.w[DONE[done]] if done in DONE else "",
        events_url=f"/console/warnings/{warning.id}/events",
        referenced=referenced,
        update_form=form,
        update_zone=settings.reports.display_timezone,
        update_levels=update.LEVELS,
    )


@routes.route(
    "GET",
    "/console/warnings/{warning_id}",
    auth=SESSION,
    summary="Console: one warning — its messages per channel, plan preview, approvals, review forms and live progress.",
    response=HTML,
)
@page()
async def console_warning(ctx: Ctx) -> web.StreamResponse:
    return await warning_page(ctx, ctx.request.match_info["warning_id"])


async def _decide(ctx: Ctx, action: str) -> web.StreamResponse:
    svc = services(ctx.request)
    warning_id = ctx.request.match_info["warning_id"]
    reason = ctx.field("reason")
    try:
        async with svc.db.session() as session:
            if action == "approve":
                warning = await review.approve(session, svc.settings, warning_id, ctx.s.operator)
            elif action == "reject":
                warning = await review.reject(session, warning_id, ctx.s.operator, reason)
            else:
                warning = await review.cancel(session, warning_id, ctx.s.operator, reason)
    except Problem as problem:
        if problem.status == 404:
            raise
        message = problem.detail + "".join(f" {e.field}: {e.message}" for e in problem.errors)
        return await warning_page(ctx, warning_id, error=message, status=problem.status, reason=reason)
    if action != "reject":
        svc.released(warning.id)
    done = {"approve": "approved", "reject": "rejected", "cancel": "cancelled"}[action]
    return see_other(f"/console/warnings/{warning_id}?done={done}")


@routes.route(
    "POST",
    "/console/warnings/{warning_id}/approve",
    auth=SESSION,
    summary="Console: approve (four eyes for red/orange; never the submitter). " + FORM_NOTE,
    request=FORM,
    response={"303": {"description": "Recorded; back to the warning page"}} | HTML,
)
@page()
async def console_approve(ctx: Ctx) -> web.StreamResponse:
    return await _decide(ctx, "approve")


@routes.route(
    "POST",
    "/console/warnings/{warning_id}/reject",
    auth=SESSION,
    summary="Console: reject a pending warning with a reason. " + FORM_NOTE,
    request=FORM,
    response={"303": {"description": "Rejected; back to the warning page"}} | HTML,
)
@page()
async def console_reject(ctx: Ctx) -> web.StreamResponse:
    return await _decide(ctx, "reject")


@routes.route(
    "POST",
    "/console/warnings/{warning_id}/cancel",
    auth=SESSION,
    summary="Console: cancel a warning with a reason (stops every delivery not yet sent). " + FORM_NOTE,
    request=FORM,
    response={"303": {"description": "Cancelled; back to the warning page"}} | HTML,
)
@page()
async def console_cancel(ctx: Ctx) -> web.StreamResponse:
    return await _decide(ctx, "cancel")
