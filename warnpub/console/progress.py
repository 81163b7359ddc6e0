"""Live progress of a warning being sent: counts per tier and per town from one GROUP BY over
its deliveries, its escalations (in words) and visit tasks (each task's state, so the table on
the page changes as contacts report); streamed by GET /console/warnings/{id}/events.

The stream reads every ``[console] progress_interval_s`` (1 s) and sends an event only when
something changed (a comment line keeps idle connections open); it ends after the warning
reaches a final state (completed, cancelled, expired, rejected) with one last event, at once
when the server shuts down (:mod:`warnpub.console.streams`), and within one interval when the
browser goes away.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy import Integer, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.api.context import services
from warnpub.config import Settings
from warnpub.console.lookups import local
from warnpub.console.pages import Ctx, needs_text, page
from warnpub.console.routes import SESSION, STREAMS, routes
from warnpub.console.streams import Streams
from warnpub.console.words import (
    DEFAULT,
    escalation_words,
    kind_name,
    tier_name,
    words,
)
from warnpub.lastkm.tables import VisitTask
from warnpub.lastkm.visit_list import visits_by_village
from warnpub.reports.build import tier_names
from warnpub.reports.query import REACHES, WAS_SENT, D, area_names
from warnpub.review import service as review
from warnpub.storage.tables import Escalation, WarningRecord

ENDED = ("completed", "cancelled", "expired", "rejected")
KEEPALIVE_S = 15.0
RETRY_MS = 3000
VISITS_LISTED = 500


def _flag(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).cast(Integer)


async def counts(
    session: AsyncSession, settings: Settings, warning_id: str, lang: str = DEFAULT
) -> dict[str, Any]:
    """Messages, sent, delivered (or acknowledged), acknowledged and failed per tier and town.

    These count *messages* (delivery rows), not people: a person tried by SMS and then by a
    voice call is two. The report (warnpub.reports) counts people and devices; the warning
    page says which is which. Counting per target would need a GROUP BY per target over every
    delivery on every read, too slow for a million deliveries each second."""
    town = func.substr(D.c.area_code, literal_column("1"), literal_column("9"))
    rows = (
        await session.execute(
            select(
                D.c.tier,
                town,
                func.count().label("total"),
                _flag(WAS_SENT),
                _flag(REACHES),
                _flag(D.c.acknowledged_at.is_not(None)),
                _flag(D.c.state.in_(("failed", "expired"))),
            )
            .where(D.c.warning_id == warning_id)
            .group_by(D.c.tier, town)
        )
    ).all()
    keys = ("total", "sent", "delivered", "acknowledged", "failed")
    totals = dict.fromkeys(keys, 0)
    tiers: dict[int, dict[str, int]] = {}
    towns: dict[str, dict[str, int]] = {}
    for tier, town_prefix, *numbers in rows:
        values = dict(zip(keys, (int(n or 0) for n in numbers), strict=True))
        for target in (totals, tiers.setdefault(int(tier), dict.fromkeys(keys, 0)),
                       towns.setdefault(str(town_prefix).ljust(12, "0"), dict.fromkeys(keys, 0))):
            for k in keys:
                target[k] += values[k]
    tnames = tier_names(settings, list(tiers))
    names = await area_names(session, sorted(towns)) if towns else {}
    return {
        "totals": totals,
        "tiers": [
            {"key": str(t), "group": tnames[t], "name": tier_name(lang, tnames[t]), **tiers[t]}
            for t in sorted(tiers)
        ],
        "towns": [{"key": c, "name": names.get(c, c), **towns[c]} for c in sorted(towns)],
    }


async def escalations(
    session: AsyncSession, settings: Settings, warning: WarningRecord, lang: str = DEFAULT
) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            select(Escalation)
            .where(Escalation.warning_id == warning.id)
            .order_by(Escalation.created_at.desc())
            .limit(100)
        )
    ).scalars()
    return [
        {
            "id": e.id,
            "kind": e.kind,
            "kind_text": kind_name(lang, e.kind),
            "text": escalation_words(lang, e.kind, warning.level, warning.headline) or e.message,
            "message": e.message,
            "at": local(settings, e.created_at),
            "open": e.resolved_at is None,
        }
        for e in rows
    ]


async def visit_tasks(
    session: AsyncSession, warning_id: str, lang: str = DEFAULT
) -> list[dict[str, Any]]:
    """Every visit task of the warning (village, person, needs, contact, state), for the table
    on the warning page; at most :data:`VISITS_LISTED`."""
    listing = await visits_by_village(session, warning_id)
    w = words(lang)
    out = []
    for village in listing["villages"]:
        for t in village["tasks"]:
            out.append(
                {
                    "number": t["number"],
                    "village": village["area_name"],
                    "name": t["name"],
                    "needs": needs_text(lang, t["needs"]),
                    "contact": t["contact_name"],
                    "state": t["state"],
                    "state_text": w.get(f"visit_state_{t['state']}", t["state"]),
                    "done_via": t["done_via"] or "",
                }
            )
            if len(out) >= VISITS_LISTED:
                return out
    return out


async def visit_counts(session: AsyncSession, warning_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(VisitTask.state, func.count())
        .where(VisitTask.warning_id == warning_id)
        .group_by(VisitTask.state)
    )
    out = {"open": 0, "done": 0, "closed": 0}
    for state, n in rows.all():
        out[str(state)] = int(n)
    return out


async def snapshot(
    session: AsyncSession, settings: Settings, warning_id: str, lang: str = DEFAULT
) -> dict[str, Any]:
    warning = await review.load(session, warning_id, lock=False)
    return {
        "warning_id": warning.id,
        "state": warning.state,
        "ended": warning.state in ENDED,
        **await counts(session, settings, warning_id, lang),
        "escalations": await escalations(session, settings, warning, lang),
        "visits": await visit_counts(session, warning_id),
        "visit_tasks": await visit_tasks(session, warning_id, lang),
    }


async def _send(response: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    await response.write(f"event: {event}\ndata: {body}\n\n".encode())


@routes.route(
    "GET",
    "/console/warnings/{warning_id}/events",
    auth=SESSION,
    summary="Console: server-sent events with the warning's live progress (event `progress`, JSON), until it is completed, cancelled or expired.",
    response={
        "200": {
            "description": "An event stream",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
@page()
async def console_warning_events(ctx: Ctx) -> web.StreamResponse:
    svc = services(ctx.request)
    warning_id = ctx.request.match_info["warning_id"]
    async with svc.db.reader() as session:
        await review.load(session, warning_id, lock=False)  # 404 before the stream starts
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(ctx.request)
    streams = ctx.request.app.get(STREAMS) or Streams()
    interval = svc.settings.console.progress_interval_s
    last: str | None = None
    idle = 0.0
    streams.open += 1
    try:
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        while not streams.closed and not _gone(ctx.request):
            async with svc.db.reader() as session:
                data = await snapshot(session, svc.settings, warning_id, ctx.lang)
            text = json.dumps(data, sort_keys=True)
            if text != last:
                await _send(response, "progress", data)
                last, idle = text, 0.0
            elif idle >= KEEPALIVE_S:
                await response.write(b": keepalive\n\n")
                idle = 0.0
            if data["ended"]:
                await _send(response, "end", {"state": data["state"]})
                break
            # Woken at once when the server shuts down; a browser that went away is noticed
            # at the next turn (its transport is closed), not only at the next write.
            if await streams.wait(interval):
                break
            idle += interval
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        streams.open -= 1
    return response


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
