"""GET /console/ (the review queue) and GET /console/escalations."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from warnpub.api.context import services
from warnpub.clock import iso, utcnow
from warnpub.console import plan_cache
from warnpub.console.lookups import agency_names, local, warning_areas
from warnpub.console.pages import Ctx, page
from warnpub.console.routes import HTML, SESSION, routes
from warnpub.console.words import escalation_words
from warnpub.review import service as review
from warnpub.review.policy import approvals_needed
from warnpub.storage.tables import Escalation, WarningRecord

OPEN_KINDS = ("review_deadline", "unacknowledged")


@routes.route(
    "GET",
    "/console/",
    auth=SESSION,
    summary="Console: pending warnings, most severe first, then the closest review deadline (live countdown).",
    response=HTML,
)
@page()
async def console_queue(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    async with svc.db.reader() as session:
        rows = await review.queue(session)
        names = await agency_names(session, [w.agency_id for w in rows])
        areas = await warning_areas(session, [w.id for w in rows])
        given = {w.id: len(await review.approvals(session, w.id)) for w in rows}
    plans = await plan_cache.counts(svc.db, svc.settings, [w.id for w in rows])
    items = [
        {
            "w": w,
            "agency": names.get(w.agency_id, ""),
            "areas": areas.get(w.id, []),
            "deadline_iso": iso(w.review_deadline) if w.review_deadline else "",
            "deadline_local": local(svc.settings, w.review_deadline),
            "overdue": bool(w.review_deadline and w.review_deadline <= utcnow()),
            "given": given[w.id],
            "needed": approvals_needed(svc.settings, w.level),
            "plan": plans.get(w.id),
        }
        for w in rows
    ]
    return ctx.page("queue.html.j2", items=items)


@routes.route(
    "GET",
    "/console/escalations",
    auth=SESSION,
    summary="Console: open escalations (review deadlines passed, people who did not acknowledge).",
    response=HTML,
)
@page()
async def console_escalations(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    async with svc.db.reader() as session:
        rows = (
            await session.execute(
                select(Escalation, WarningRecord.headline, WarningRecord.level)
                .outerjoin(WarningRecord, WarningRecord.id == Escalation.warning_id)
                .where(Escalation.resolved_at.is_(None), Escalation.kind.in_(OPEN_KINDS))
                .order_by(Escalation.created_at.desc())
                .limit(500)
            )
        ).all()
    items = [
        {
            "e": e,
            "headline": headline or "",
            "level": level or "",
            "at": local(svc.settings, e.created_at),
            "words": escalation_words(ctx.lang, e.kind, level or "", headline or ""),
        }
        for e, headline, level in rows
    ]
    return ctx.page("escalations.html.j2", items=items)
