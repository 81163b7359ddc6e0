"""Operator sign-in and the audit log over the API."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from warnpub.api.bodies import json_object, text_field
from warnpub.api.context import caller_of, services
from warnpub.api.routes import RouteTable
from warnpub.auth.callers import require_operator
from warnpub.auth.operators import sign_in
from warnpub.clock import iso
from warnpub.problems import Problem, unauthorized
from warnpub.storage.tables import AuditEntry

routes = RouteTable()


@routes.route(
    "POST",
    "/api/v1/auth/login",
    auth="none",
    summary="Exchange an operator's username and password for a bearer token.",
    request={
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["username", "password"],
                "properties": {"username": {"type": "string"}, "password": {"type": "string"}},
            }
        }
    },
    response={
        "200": {
            "description": "A bearer token",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "token": {"type": "string"},
                            "role": {"type": "string"},
                            "expires_in_s": {"type": "integer"},
                        },
                    }
                }
            },
        }
    },
    errors=(400, 401, 415, 422, 429),
)
async def login_operator(request: web.Request) -> web.Response:
    svc = services(request)
    cfg = svc.settings.console
    doc = await json_object(request)
    username, password = text_field(doc, "username"), text_field(doc, "password")
    async with svc.db.session() as session:
        # The console's lock-out applies here too, or the API would be the way round it.
        result = await sign_in(session, svc.settings, username, password)
    if result.locked_until is not None:
        raise Problem(
            429,
            "Too many failed sign-ins",
            f"{cfg.max_failed_logins} failed sign-ins for this username: it is locked until "
            f"{iso(result.locked_until)}; try again then, or ask an admin",
            "sign-in-locked",
        )
    if result.operator is None or result.token is None:
        raise unauthorized("wrong username or password")
    op, token = result.operator, result.token
    return web.json_response(
        {
            "token": token,
            "role": op.role,
            "username": op.username,
            "expires_in_s": svc.settings.security.token_ttl_minutes * 60,
        }
    )


@routes.route(
    "GET",
    "/api/v1/audit",
    auth="supervisor or admin",
    summary="The audit log, newest first; filter by action, subject or actor.",
    params=tuple(
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
        for n in ("action", "subject", "actor", "before_seq")
    ),
    errors=(422,),
)
async def list_audit(request: web.Request) -> web.Response:
    svc = services(request)
    require_operator(await caller_of(request), "supervisor", "admin")
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(200)
    q = request.query
    for name, column in (
        ("action", AuditEntry.action),
        ("subject", AuditEntry.subject),
        ("actor", AuditEntry.actor),
    ):
        if q.get(name):
            stmt = stmt.where(column == q[name])
    if q.get("before_seq"):
        # ASCII digits only ("²".isdigit() is true), and small enough for a 64-bit column.
        raw = q["before_seq"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise Problem(
                422,
                "Invalid input",
                "before_seq must be a whole number of at most 18 digits",
                "invalid-input",
            )
        stmt = stmt.where(AuditEntry.seq < int(raw))
    async with svc.db.session() as session:
        rows = (await session.execute(stmt)).scalars().all()
    return web.json_response(
        {
            "entries": [
                {
                    "seq": e.seq,
                    "at": iso(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "details": e.details,
                    "hash": e.hash,
                }
                for e in rows
            ]
        }
    )
