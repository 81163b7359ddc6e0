"""Operator review over the API: the queue, approve, reject, cancel, escalations."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from warnpub.api.bodies import json_object, text_field
from warnpub.api.context import caller_of, services
from warnpub.api.routes import RouteTable
from warnpub.audiences.plan import preview, preview_json
from warnpub.audiences.targeting import Scope
from warnpub.auth.callers import require_operator
from warnpub.clock import iso
from warnpub.intake.views import warning_summary
from warnpub.render.templates import sms_preview
from warnpub.review import service as review
from warnpub.storage.tables import Escalation

routes = RouteTable()
STAFF = ("operator", "supervisor", "admin")
SUMMARY = {"application/json": {"schema": {"$ref": "#/components/schemas/WarningSummary"}}}
REASON = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["reason"],
            "properties": {"reason": {"type": "string", "minLength": 1}},
        }
    }
}


@routes.route(
    "GET",
    "/api/v1/review/queue",
    auth="operator",
    summary="Pending warnings, most severe first, then by review deadline.",
)
async def review_queue(request: web.Request) -> web.Response:
    svc = services(request)
    require_operator(await caller_of(request), *STAFF)
    async with svc.db.session() as session:
        rows = await review.queue(session)
        body = []
        for w in rows:
            given = await review.approvals(session, w.id)
            body.append(warning_summary(svc.settings, w, approvals_given=len(given)))
    return web.json_response({"warnings": body})


@routes.route(
    "POST",
    "/api/v1/warnings/{warning_id}/approve",
    auth="operator",
    summary="Approve (red and orange need two different approvers; never the submitter).",
    response={"200": {"description": "The approval was recorded", "content": SUMMARY}},
    errors=(404, 409),
)
async def approve_warning(request: web.Request) -> web.Response:
    svc = services(request)
    op = require_operator(await caller_of(request), *STAFF)
    async with svc.db.session() as session:
        warning = await review.approve(session, svc.settings, request.match_info["warning_id"], op)
        given = len(await review.approvals(session, warning.id))
    svc.released(warning.id)
    return web.json_response(warning_summary(svc.settings, warning, approvals_given=given))


@routes.route(
    "POST",
    "/api/v1/warnings/{warning_id}/reject",
    auth="operator",
    summary="Reject a pending warning with a reason.",
    request=REASON,
    response={"200": {"description": "Rejected", "content": SUMMARY}},
    errors=(400, 404, 409, 415, 422),
)
async def reject_warning(request: web.Request) -> web.Response:
    svc = services(request)
    op = require_operator(await caller_of(request), *STAFF)
    reason = text_field(await json_object(request), "reason")
    async with svc.db.session() as session:
        warning = await review.reject(session, request.match_info["warning_id"], op, reason)
    return web.json_response(warning_summary(svc.settings, warning))


@routes.route(
    "POST",
    "/api/v1/warnings/{warning_id}/cancel",
    auth="operator",
    summary="Cancel a pending or released warning with a reason.",
    request=REASON,
    response={"200": {"description": "Cancelled", "content": SUMMARY}},
    errors=(400, 404, 409, 415, 422),
)
async def cancel_warning(request: web.Request) -> web.Response:
    svc = services(request)
    op = require_operator(await caller_of(request), *STAFF)
    reason = text_field(await json_object(request), "reason")
    async with svc.db.session() as session:
        warning = await review.cancel(session, request.match_info["warning_id"], op, reason)
    svc.released(warning.id)
    return web.json_response(warning_summary(svc.settings, warning))


@routes.route(
    "GET",
    "/api/v1/escalations",
    auth="operator",
    summary="Escalations raised (e.g. review deadlines passed), newest first.",
)
async def list_escalations(request: web.Request) -> web.Response:
    svc = services(request)
    require_operator(await caller_of(request), *STAFF)
    async with svc.db.session() as session:
        rows = (
            (
                await session.execute(
                    select(Escalation).order_by(Escalation.created_at.desc()).limit(500)
                )
            )
            .scalars()
            .all()
        )
    return web.json_response(
        {
            "escalations": [
                {
                    "id": e.id,
                    "warning_id": e.warning_id,
                    "kind": e.kind,
                    "message": e.message,
                    "created_at": iso(e.created_at),
                    "resolved_at": iso(e.resolved_at),
                }
                for e in rows
            ]
        }
    )


@routes.route(
    "GET",
    "/api/v1/warnings/{warning_id}/plan",
    auth="operator",
    summary="Plan preview: targets per tier, channel, town and needs group, who has no working route, and the SMS as it will be sent (encoding and part count per language).",
    errors=(404,),
)
async def plan_preview(request: web.Request) -> web.Response:
    svc = services(request)
    require_operator(await caller_of(request), *STAFF)
    async with svc.db.reader() as session:
        warning = await review.load(session, request.match_info["warning_id"], lock=False)
        plan = await preview(session, svc.settings, await Scope.of(session, warning))
        body = await preview_json(session, plan, svc.settings.audiences.tiers)
    sms = sms_preview(warning, svc.settings)
    return web.json_response({"warning_id": warning.id, "level": warning.level, **body, "sms": sms})
