"""GET /console/drills: the drills (warnings with status Exercise), newest first, with their
coverage and links to their report pages.

Coverage is one cheap GROUP BY over the drills' deliveries (targets as the report counts them:
one per person or device, notices left out; reached = delivered or acknowledged), not a full
report per drill; the report page has the rest.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import Integer, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.api.context import services
from warnpub.console.lookups import agency_names, local, warning_areas
from warnpub.console.pages import Ctx, page
from warnpub.console.routes import HTML, SESSION, routes
from warnpub.reports.query import REACHES, D, _any
from warnpub.storage.tables import WarningRecord

LISTED = 100


async def coverage(session: AsyncSession, warning_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per warning: targeted, reached and unreached targets (two GROUP BYs, one statement)."""
    if not warning_ids:
        return {}
    per_target = (
        select(D.c.warning_id, _any(REACHES).label("reached"))
        .where(D.c.warning_id.in_(warning_ids), D.c.target_kind != "notice")
        .group_by(D.c.warning_id, D.c.target_kind, D.c.target_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            per_target.c.warning_id,
            func.count(),
            func.coalesce(func.sum(per_target.c.reached), 0).cast(Integer),
        ).group_by(per_target.c.warning_id)
    )
    out = {wid: {"targeted": 0, "reached": 0, "unreached": 0} for wid in warning_ids}
    for wid, targeted, reached in rows.all():
        out[wid] = {
            "targeted": int(targeted),
            "reached": int(reached or 0),
            "unreached": int(targeted) - int(reached or 0),
        }
    return out


@routes.route(
    "GET",
    "/console/drills",
    auth=SESSION,
    summary="Console: drills (status Exercise), newest first, with targeted / reached / unreached and links to their reports.",
    response=HTML,
)
@page()
async def console_drills(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    async with svc.db.reader() as session:
        drills = list(
            (
                await session.execute(
                    select(WarningRecord)
                    .where(WarningRecord.status == "Exercise")
                    .order_by(WarningRecord.created_at.desc(), WarningRecord.id.desc())
                    .limit(LISTED)
                )
            ).scalars()
        )
        ids = [d.id for d in drills]
        names = await agency_names(session, [d.agency_id for d in drills])
        areas = await warning_areas(session, ids)
        cover = await coverage(session, ids)
    items: list[dict[str, Any]] = []
    for d in drills:
        c = cover[d.id]
        items.append(
            {
                "w": d,
                "agency": names.get(d.agency_id, ""),
                "areas": areas.get(d.id, []),
                "at": local(svc.settings, d.created_at),
                **c,
                "percent": f"{100 * c['reached'] / c['targeted']:.1f}%" if c["targeted"] else "–",
            }
        )
    return ctx.page("drills.html.j2", items=items)
