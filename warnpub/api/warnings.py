"""Agency intake and warning status: POST/GET /api/v1/warnings."""

from __future__ import annotations

import asyncio
from datetime import timedelta, timezone
from typing import Any

from aiohttp import web
from sqlalchemy import select

from warnpub.api.bodies import CAP_TYPES, JSON_TYPES, parse_json_object, read_body, require_type
from warnpub.api.context import caller_of, services
from warnpub.api.routes import RouteTable
from warnpub.auth.callers import Caller
from warnpub.cap import Alert, parse_alert_json, parse_cap_xml
from warnpub.clock import iso, new_id, utcnow
from warnpub.intake.service import Submission, body_hash, submit
from warnpub.intake.signatures import signature_problem
from warnpub.intake.views import warning_summary
from warnpub.problems import Problem, not_found
from warnpub.storage.tables import (
    Operator,
    ReviewDecision,
    WarningArea,
    WarningRecord,
    WarningReference,
)

routes = RouteTable()
BEIJING = timezone(timedelta(hours=8))
WARNING_OUT = {"application/json": {"schema": {"$ref": "#/components/schemas/WarningSummary"}}}
MAX_IDEMPOTENCY_KEY = 200
PARSE_ON_THREAD_BYTES = 64 * 1024  # CAP documents larger than this are parsed on a thread


def _defaults_for_json(doc: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """JSON submissions may leave out what the server can fill in: sender, identifier, sent."""
    if caller.agency is not None:
        doc.setdefault("sender", caller.agency.sender)
    doc.setdefault("identifier", f"warnpub-{new_id()}")
    doc.setdefault("sent", utcnow().astimezone(BEIJING).replace(microsecond=0).isoformat())
    return doc


@routes.route(
    "POST",
    "/api/v1/warnings",
    auth="agency or operator",
    summary="Submit a warning (JSON or CAP 1.2 XML). 202 when stored; 200 when it was already stored.",
    request={
        "application/json": {"schema": {"$ref": "#/components/schemas/Alert"}},
        "application/cap+xml": {
            "schema": {"type": "string", "description": "An OASIS CAP 1.2 alert"}
        },
    },
    response={
        "202": {
            "description": "Stored and waiting for review (or released by the green channel)",
            "content": WARNING_OUT,
        },
        "200": {
            "description": "The same warning was already stored (replay or duplicate identifier)",
            "content": WARNING_OUT,
        },
    },
    errors=(400, 409, 413, 415, 422),
    params=(
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
        },
    ),
)
async def submit_warning(request: web.Request) -> web.Response:
    svc = services(request)
    caller = await caller_of(request)
    kind = require_type(request, JSON_TYPES + CAP_TYPES)
    raw = await read_body(request, svc.settings.server.max_body_bytes)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_IDEMPOTENCY_KEY):
        raise Problem(
            400,
            "Bad Idempotency-Key",
            f"use a key of 1 to {MAX_IDEMPOTENCY_KEY} characters",
            "malformed",
        )
    alert: Alert
    cap_xml = None
    if kind in JSON_TYPES:
        alert = parse_alert_json(_defaults_for_json(parse_json_object(raw), caller))
    else:
        # A large document can take a few hundred milliseconds to parse and refuse (a hostile
        # one: tests/security/test_attack_files.py): on a thread, so the event loop — the
        # dispatcher, the other callers — goes on. An everyday warning (a few kB, under a
        # millisecond) is parsed here: a thread's round trip would cost more than it saves.
        if len(raw) > PARSE_ON_THREAD_BYTES:
            alert = await asyncio.to_thread(parse_cap_xml, raw)
        else:
            alert = parse_cap_xml(raw)
        # Outside the write transaction: verifying a signature takes milliseconds.
        if alert.has_signature and (problem := signature_problem(raw, svc.settings)) is not None:
            raise problem
        cap_xml = raw
    outcome = await submit(
        svc.db, svc.settings, caller, Submission(alert, body_hash(kind, raw), cap_xml, key)
    )
    if outcome.body.get("state") == "approved":
        svc.released(outcome.body["id"])
    headers = {"Location": outcome.body["status_url"], **outcome.headers}
    return web.json_response(outcome.body, status=outcome.status, headers=headers)


def _visible(caller: Caller, warning: WarningRecord) -> bool:
    return caller.operator is not None or (
        caller.agency is not None and warning.agency_id == caller.agency.id
    )


@routes.route(
    "GET",
    "/api/v1/warnings",
    auth="agency or operator",
    summary="List warnings (an agency sees only its own), newest first.",
    params=(
        {"name": "state", "in": "query", "required": False, "schema": {"type": "string"}},
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
        },
    ),
    errors=(422,),
)
async def list_warnings(request: web.Request) -> web.Response:
    svc = services(request)
    caller = await caller_of(request)
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 500:
        raise Problem(
            422, "Invalid input", "limit must be an integer from 1 to 500", "invalid-input"
        )
    stmt = select(WarningRecord).order_by(WarningRecord.created_at.desc()).limit(limit)
    if state := request.query.get("state"):
        stmt = stmt.where(WarningRecord.state == state)
    if caller.agency is not None:
        stmt = stmt.where(WarningRecord.agency_id == caller.agency.id)
    async with svc.db.session() as session:
        rows = (await session.execute(stmt)).scalars().all()
    return web.json_response({"warnings": [warning_summary(svc.settings, w) for w in rows]})


@routes.route(
    "GET",
    "/api/v1/warnings/{warning_id}",
    auth="agency or operator",
    summary="A warning's state, review decisions, areas, references and full CAP content.",
    response={
        "200": {
            "description": "The warning",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
    errors=(404,),
)
async def get_warning(request: web.Request) -> web.Response:
    svc = services(request)
    caller = await caller_of(request)
    async with svc.db.session() as session:
        warning = await session.get(WarningRecord, request.match_info["warning_id"])
        if warning is None or not _visible(caller, warning):
            raise not_found(
                f"no warning with id {request.match_info['warning_id']} is visible to you"
            )
        decisions = (
            await session.execute(
                select(ReviewDecision, Operator.username)
                .join(Operator, Operator.id == ReviewDecision.operator_id)
                .where(ReviewDecision.warning_id == warning.id)
                .order_by(ReviewDecision.at)
            )
        ).all()
        areas = (
            (
                await session.execute(
                    select(WarningArea.code).where(WarningArea.warning_id == warning.id)
                )
            )
            .scalars()
            .all()
        )
        refs = (
            (
                await session.execute(
                    select(WarningReference.referenced_id).where(
                        WarningReference.warning_id == warning.id
                    )
                )
            )
            .scalars()
            .all()
        )
    body = warning_summary(
        svc.settings,
        warning,
        areas=sorted(areas),
        references=list(refs),
        approvals_given=sum(1 for d, _ in decisions if d.decision == "approve"),
        post_reviewed=iso(warning.post_reviewed_at),
        decisions=[
            {
                "decision": d.decision,
                "reason": d.reason,
                "at": iso(d.at),
                **({"by": username} if caller.operator else {}),
            }
            for d, username in decisions
        ],
        alert=warning.alert,
    )
    return web.json_response(body)
