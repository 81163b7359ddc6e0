"""Admin pages: GET /console/admin (agencies: list, add, revoke keys; operators: list, add)
through :mod:`warnpub.auth.agencies` and :mod:`warnpub.auth.operators`, and
GET /console/audit?q= (the audit log, newest first, searchable, paged by sequence number)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy import or_, select

from warnpub.api.context import services
from warnpub.auth.agencies import add_agency, list_agencies, revoke_keys
from warnpub.auth.operators import ROLES, add_operator, list_operators
from warnpub.console.lookups import local
from warnpub.console.pages import FORM_NOTE, Ctx, page
from warnpub.console.routes import FORM, HTML, SESSION, routes
from warnpub.console.session import ADMIN, AUDIT_ROLES
from warnpub.problems import Problem
from warnpub.storage.tables import AuditEntry


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.replace("，", ",").split(",") if p.strip()]


def _problem_text(problem: Problem) -> str:
    return problem.detail + "".join(f" {e.field}: {e.message}" for e in problem.errors)


async def _admin_page(
    ctx: Ctx, *, error: str = "", notice: str = "", new_key: str = "", status: int = 200
) -> web.Response:
    svc = services(ctx.request)
    async with svc.db.reader() as session:
        agencies = await list_agencies(session)
        operators = await list_operators(session)
    return ctx.page(
        "admin.html.j2",
        status=status,
        agencies=[{"a": a, "live": n} for a, n in agencies],
        operators=operators,
        roles=ROLES,
        hazards=sorted(svc.settings.cap.hazards),
        error=error,
        notice=notice,
        new_key=new_key,
        form=ctx.form,
    )


@routes.route(
    "GET",
    "/console/admin",
    auth=SESSION + ", admin",
    summary="Console (admin): agencies and operator accounts.",
    response=HTML,
)
@page(*ADMIN)
async def console_admin(ctx: Ctx) -> web.StreamResponse:
    return await _admin_page(ctx)


@routes.route(
    "POST",
    "/console/admin/agencies",
    auth=SESSION + ", admin",
    summary="Console (admin): add an agency (`code`, `name`, `sender`, `hazards`, `areas`, comma-separated); its API key is shown once. "
    + FORM_NOTE,
    request=FORM,
    response=HTML,
)
@page(*ADMIN)
async def console_add_agency(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    try:
        async with svc.db.session() as session:
            added = await add_agency(
                session,
                svc.settings,
                code=ctx.field("code"),
                name=ctx.field("name"),
                sender=ctx.field("sender"),
                hazards=_split(ctx.field("hazards")),
                areas=_split(ctx.field("areas")),
                actor=ctx.s.actor,
            )
            code, key = added.agency.code, added.key.key
    except Problem as problem:
        return await _admin_page(ctx, error=_problem_text(problem), status=problem.status)
    return await _admin_page(ctx, notice=ctx.w["agency_added"].format(code=code), new_key=key)


@routes.route(
    "POST",
    "/console/admin/agencies/{code}/revoke",
    auth=SESSION + ", admin",
    summary="Console (admin): revoke every API key of an agency. " + FORM_NOTE,
    request=FORM,
    response=HTML,
)
@page(*ADMIN)
async def console_revoke_agency(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    code = ctx.request.match_info["code"]
    try:
        async with svc.db.session() as session:
            n = await revoke_keys(session, code, actor=ctx.s.actor)
    except Problem as problem:
        return await _admin_page(ctx, error=_problem_text(problem), status=problem.status)
    return await _admin_page(ctx, notice=ctx.w["keys_revoked"].format(code=code, n=n))


@routes.route(
    "POST",
    "/console/admin/operators",
    auth=SESSION + ", admin",
    summary="Console (admin): add an operator account (`username`, `display_name`, `role`, `password`). "
    + FORM_NOTE,
    request=FORM,
    response=HTML,
)
@page(*ADMIN)
async def console_add_operator(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    password = ctx.form.get("password", "")
    try:
        async with svc.db.session() as session:
            op = await add_operator(
                session,
                username=ctx.field("username"),
                display_name=ctx.field("display_name"),
                role=ctx.field("role"),
                password=password if isinstance(password, str) else "",
                actor=ctx.s.actor,
            )
            username = op.username
    except Problem as problem:
        return await _admin_page(ctx, error=_problem_text(problem), status=problem.status)
    return await _admin_page(ctx, notice=ctx.w["operator_added"].format(username=username))


@routes.route(
    "GET",
    "/console/audit",
    auth=SESSION + ", supervisor or admin",
    summary="Console: the audit log, newest first; `q` searches action, subject and actor; `before` pages by sequence number.",
    params=(
        {"name": "q", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "before", "in": "query", "required": False, "schema": {"type": "integer"}},
    ),
    response=HTML,
)
@page(*AUDIT_ROLES)
async def console_audit(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    size = svc.settings.console.audit_page_size
    q = ctx.request.query.get("q", "").strip()[:100]
    before_raw = ctx.request.query.get("before", "")
    # ASCII digits only ("²".isdigit() is true), and small enough for a 64-bit column.
    usable = before_raw.isascii() and before_raw.isdigit() and len(before_raw) <= 18
    before = int(before_raw) if usable else None
    stmt = select(AuditEntry)
    if q:
        stmt = stmt.where(
            or_(
                AuditEntry.action.contains(q, autoescape=True),
                AuditEntry.subject.contains(q, autoescape=True),
                AuditEntry.actor.contains(q, autoescape=True),
            )
        )
    if before is not None:
        stmt = stmt.where(AuditEntry.seq < before)
    async with svc.db.reader() as session:
        rows = list(
            (await session.execute(stmt.order_by(AuditEntry.seq.desc()).limit(size + 1))).scalars()
        )
    more = len(rows) > size
    rows = rows[:size]
    entries: list[dict[str, Any]] = [
        {
            "e": e,
            "at": local(svc.settings, e.at),
            "details": json.dumps(e.details, ensure_ascii=False, sort_keys=True) if e.details else "",
        }
        for e in rows
    ]
    return ctx.page(
        "audit.html.j2",
        q=q,
        entries=entries,
        older=rows[-1].seq if more and rows else None,
        paged=before is not None,
    )
