"""Coverage-and-time reports over the API: GET /api/v1/warnings/{id}/report (operators)."""

from __future__ import annotations

from aiohttp import web

from warnpub.api.context import caller_of, services
from warnpub.api.routes import RouteTable
from warnpub.auth.callers import require_operator
from warnpub.problems import FieldError, invalid
from warnpub.reports import build_report

routes = RouteTable()
STAFF = ("operator", "supervisor", "admin")
_BOOL = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

_COUNTS = {
    "type": "object",
    "properties": {
        k: {"type": "integer"}
        for k in (
            "targeted",
            "sent",
            "delivered",
            "acknowledged",
            "unreached",
            "pending",
            "ack_expected",
        )
    }
    | {"coverage": {"type": ["number", "null"]}},
}
_ROWS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"key": {"type": "string"}, "label": {"type": "string"}}
        | _COUNTS["properties"],
    },
}
_MILESTONE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "at": {"type": ["string", "null"], "format": "date-time"},
        "since_received_s": {"type": ["number", "null"]},
        "since_approved_s": {"type": ["number", "null"]},
    },
}
REPORT_SCHEMA = {
    "type": "object",
    "description": "Coverage and time of one warning; every number is defined in docs/reports.md",
    "required": ["warning", "totals", "milestones", "checks"],
    "properties": {
        "warning": {"type": "object"},
        "generated_at": {"type": "string", "format": "date-time"},
        "totals": _COUNTS,
        "people": _COUNTS,
        "devices": _COUNTS,
        "by_town": _ROWS,
        "by_village": _ROWS,
        "by_tier": _ROWS,
        "by_needs": _ROWS,
        "by_channel": _ROWS,
        "milestones": {"type": "array", "items": _MILESTONE},
        "tier_times": {"type": "array", "items": {"type": "object"}},
        "chart_origin": {"type": "string", "format": "date-time"},
        "series": {"type": "array", "items": {"type": "object"}},
        "checks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "kind": {"type": "string", "enum": ["clock", "time", "coverage"]},
                    "target": {"type": "string"},
                    "status": {
                        "type": "string",
                        "enum": ["met", "missed", "pending", "not_applicable"],
                    },
                    "measured": {"type": "string"},
                    "value": {"type": ["number", "null"]},
                    "limit": {"type": ["number", "null"]},
                },
            },
        },
        "unreached": {"type": ["array", "null"], "items": {"type": "object"}},
        "unreached_total": {"type": "integer"},
        "unreached_truncated": {"type": "boolean"},
    },
}


def _flag(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    value = _BOOL.get(raw.strip().lower())
    if value is None:
        raise invalid(
            f"{name} must be true or false",
            [FieldError(name, f"got {raw[:40]!r}; use true or false")],
        )
    return value


@routes.route(
    "GET",
    "/api/v1/warnings/{warning_id}/report",
    auth="operator",
    summary=(
        "Coverage and time of a warning: counts per town, village, tier, needs group and "
        "channel; milestones; clocks and targets; for drills, everyone not reached."
    ),
    params=(
        {
            "name": "unreached",
            "in": "query",
            "required": False,
            "description": "include the unreached list (default: for drills only)",
            "schema": {"type": "boolean"},
        },
    ),
    response={
        "200": {
            "description": "The report",
            "content": {"application/json": {"schema": REPORT_SCHEMA}},
        }
    },
    errors=(404, 422),
)
async def warning_report(request: web.Request) -> web.Response:
    svc = services(request)
    require_operator(await caller_of(request), *STAFF)
    unreached = _flag(request, "unreached")
    report = await build_report(
        svc.db, svc.settings, request.match_info["warning_id"], unreached=unreached
    )
    return web.json_response(report.as_dict())
