"""Audience pages: GET/POST /console/audience/import (upload, dry run, confirm),
GET /console/people?q= (find a person), GET /console/areas/{code} (a village's contacts,
loudspeakers and boards).

Rosters are checked and imported by :func:`warnpub.audiences.importer.import_roster`, exactly
as ``warnpub audience import`` and ``POST /api/v1/audience/import`` do; the file waits between
dry run and confirmation in :mod:`warnpub.console.uploads`.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased

from warnpub.api.context import services
from warnpub.audiences.divisions import significant_prefix
from warnpub.audiences.importer import import_roster
from warnpub.audiences.needs import need_names
from warnpub.audiences.roster import ImportReport, mask_phone
from warnpub.audiences.tables import Area, Device, Person
from warnpub.console import uploads
from warnpub.console.pages import FORM_NOTE, Ctx, page
from warnpub.console.routes import HTML, SESSION, routes
from warnpub.problems import Problem, not_found

CONTACT_ROLES = ("village_contact", "town_duty_officer", "official")
PEOPLE_LIMIT = 50
LIST_LIMIT = 500
_DIGITS = re.compile(r"\D")


def _show_phone(ctx: Ctx, phone: str | None) -> str:
    """Operators see the last four digits only; supervisors and admins the whole number."""
    if not phone:
        return ""
    return mask_phone(phone) if ctx.s.operator.role == "operator" else phone


def _import_page(
    ctx: Ctx,
    *,
    report: ImportReport | None = None,
    upload_id: str = "",
    error: str = "",
    notice: str = "",
    status: int = 200,
) -> web.Response:
    return ctx.page(
        "import.html.j2",
        status=status,
        report=report,
        upload_id=upload_id,
        error=error,
        notice=notice,
        town=ctx.field("town"),
        skip_invalid=bool(ctx.field("skip_invalid")),
        ttl=round(services(ctx.request).settings.console.upload_ttl_minutes),
    )


@routes.route(
    "GET",
    "/console/audience/import",
    auth=SESSION,
    summary="Console: upload a roster (CSV or XLSX) for a dry run, then confirm the import.",
    response=HTML,
)
@page()
async def console_import_page(ctx: Ctx) -> web.StreamResponse:
    return _import_page(ctx)


@routes.route(
    "POST",
    "/console/audience/import",
    auth=SESSION,
    summary=(
        "Console: multipart form with `roster` (the file), `action` = dry_run | confirm, or "
        "`upload_id` of a file checked before; `town`, `skip_invalid`. " + FORM_NOTE
    ),
    request={"multipart/form-data": {"schema": {"type": "object"}}},
    response=HTML,
)
@page()
async def console_import(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    w = ctx.w
    action = ctx.field("action") or "dry_run"
    upload = ctx.form.get("roster")
    upload_id = ctx.field("upload_id")
    data: bytes | None = None
    filename = "roster.csv"
    if upload is not None and not isinstance(upload, str) and getattr(upload, "filename", ""):
        data = upload.file.read()
        filename = upload.filename
        if data and action == "dry_run":
            upload_id = uploads.keep(svc.settings, data, filename, ctx.s.operator.username)
    elif upload_id:
        kept = uploads.take(svc.settings, upload_id, ctx.s.operator.username)
        if kept is None:
            return _import_page(ctx, error=w["import_expired"], status=410)
        data, filename = kept.data, kept.filename
    if not data:
        return _import_page(ctx, error=w["import_no_file"], status=400)
    if action == "confirm" and not upload_id:
        upload_id = uploads.keep(svc.settings, data, filename, ctx.s.operator.username)
    try:
        report = await import_roster(
            svc.db,
            svc.settings,
            data,
            filename,
            dry_run=action != "confirm",
            skip_invalid=bool(ctx.field("skip_invalid")),
            default_town=ctx.field("town") or None,
            actor=ctx.s.actor,
        )
    except Problem as problem:
        message = problem.detail + "".join(f" {e.field}: {e.message}" for e in problem.errors)
        return _import_page(ctx, error=message, status=problem.status)
    if report.written:
        uploads.drop(svc.settings, upload_id)
        notice = w["import_done"].format(
            create=report.to_create, update=report.to_update, unchanged=report.unchanged
        )
        return _import_page(ctx, report=report, notice=notice)
    if report.blocked and action == "confirm":
        return _import_page(
            ctx, report=report, upload_id=upload_id, error=w["import_blocked"], status=422
        )
    return _import_page(ctx, report=report, upload_id=upload_id)


@routes.route(
    "GET",
    "/console/people",
    auth=SESSION,
    summary="Console: find a person by name, roster id or phone number (operators see the last four digits only).",
    params=({"name": "q", "in": "query", "required": False, "schema": {"type": "string"}},),
    response=HTML,
)
@page()
async def console_people(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    q = ctx.request.query.get("q", "").strip()[:100]
    people: list[dict[str, Any]] = []
    if q:
        relay = aliased(Person)
        conditions = [
            Person.name.contains(q, autoescape=True),
            Person.external_id == q,
        ]
        digits = _DIGITS.sub("", q)
        if len(digits) >= 4:
            conditions.append(Person.phone.contains(digits, autoescape=True))
        async with svc.db.reader() as session:
            rows = (
                await session.execute(
                    select(Person, Area.name, relay.name)
                    .outerjoin(Area, Area.code == Person.area_code)
                    .outerjoin(relay, relay.id == Person.relay_contact_id)
                    .where(or_(*conditions))
                    .order_by(Person.name, Person.id)
                    .limit(PEOPLE_LIMIT)
                )
            ).all()
        people = [
            {
                "p": p,
                "area": area or p.area_code,
                "relay": relay_name or "",
                "phone": _show_phone(ctx, p.phone),
                "needs": need_names(p.needs),
            }
            for p, area, relay_name in rows
        ]
    return ctx.page("people.html.j2", q=q, people=people, limit=PEOPLE_LIMIT)


@routes.route(
    "GET",
    "/console/areas/{code}",
    auth=SESSION,
    summary="Console: an area (village or town) with its village contacts, duty officers, loudspeakers and boards.",
    response=HTML,
)
@page()
async def console_area(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    code = ctx.request.match_info["code"]
    async with svc.db.reader() as session:
        area = await session.get(Area, code) if len(code) <= 12 else None
        if area is None:
            raise not_found(f"no area with code {code}")
        prefix = significant_prefix(code)
        inside = Person.area_code.startswith(prefix, autoescape=True)
        children = (
            await session.execute(
                select(Area).where(Area.parent_code == code).order_by(Area.code)
            )
        ).scalars().all()
        parent = await session.get(Area, area.parent_code) if area.parent_code else None
        contacts = (
            await session.execute(
                select(Person, Area.name)
                .outerjoin(Area, Area.code == Person.area_code)
                .where(inside, Person.role.in_(CONTACT_ROLES))
                .order_by(Person.area_code, Person.role, Person.name)
                .limit(LIST_LIMIT)
            )
        ).all()
        devices = (
            await session.execute(
                select(Device, Area.name)
                .outerjoin(Area, Area.code == Device.area_code)
                .where(Device.area_code.startswith(prefix, autoescape=True))
                .order_by(Device.area_code, Device.kind, Device.name)
                .limit(LIST_LIMIT)
            )
        ).all()
        people_count = (
            await session.execute(select(func.count()).select_from(Person).where(inside))
        ).scalar_one()
    return ctx.page(
        "area.html.j2",
        area=area,
        parent=parent,
        children=children,
        contacts=[
            {"p": p, "area": n or p.area_code, "phone": _show_phone(ctx, p.phone)}
            for p, n in contacts
        ],
        devices=[{"d": d, "area": n or d.area_code} for d, n in devices],
        people_count=people_count,
    )
