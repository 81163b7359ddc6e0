"""Audience over the operator API: POST /api/v1/audience/import (a roster file as the body)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aiohttp import web

from warnpub.api.bodies import read_body, require_type
from warnpub.api.context import caller_of, services
from warnpub.api.routes import RouteTable
from warnpub.audiences.importer import import_roster
from warnpub.audiences.roster import XLSX_TYPE, ImportReport
from warnpub.auth.callers import require_operator
from warnpub.problems import FieldError, Problem, invalid

routes = RouteTable()
ROSTER_TYPES = ("text/csv", XLSX_TYPE)
MAX_FILENAME = 255

_ERROR = {
    "type": "object",
    "properties": {
        "row": {"type": "integer", "description": "row number as the spreadsheet shows it"},
        "field": {"type": "string"},
        "column": {"type": "string", "description": "the header as the file writes it"},
        "message": {"type": "string"},
    },
}
REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["outcome", "rows_read", "valid", "errors"],
    "properties": {
        "filename": {"type": "string"},
        "outcome": {"type": "string", "enum": ["imported", "dry_run", "rejected"]},
        "written": {"type": "boolean"},
        "dry_run": {"type": "boolean"},
        "skip_invalid": {"type": "boolean"},
        "rows_read": {"type": "integer"},
        "valid": {"type": "integer"},
        "rows_with_errors": {"type": "integer"},
        "skipped_rows": {"type": "array", "items": {"type": "integer"}},
        "to_create": {"type": "integer"},
        "to_update": {"type": "integer"},
        "unchanged": {"type": "integer"},
        "ignored_columns": {"type": "array", "items": {"type": "string"}},
        "errors": {"type": "array", "items": _ERROR},
    },
}
_FLAG = {"type": "string", "enum": ["1", "0", "true", "false", "yes", "no"]}


@routes.route(
    "POST",
    "/api/v1/audience/import",
    auth="operator, supervisor or admin",
    summary=(
        "Import a roster (the CSV or XLSX file is the body). 200 with the report; 422 when rows "
        "with errors kept the file out (each error names its row and column)."
    ),
    request={
        "text/csv": {
            "schema": {"type": "string", "description": "UTF-8 (with or without BOM) or GB18030"}
        },
        XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
    },
    response={
        "200": {
            "description": "Imported, or checked (dry_run=1); rows skipped with skip_invalid=1 are listed",
            "content": {"application/json": {"schema": REPORT_SCHEMA}},
        }
    },
    errors=(400, 409, 413, 415, 422),
    params=(
        {"name": "dry_run", "in": "query", "required": False, "schema": _FLAG},
        {"name": "skip_invalid", "in": "query", "required": False, "schema": _FLAG},
        {
            "name": "town",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "town for rows that name their village without a town (code or name)",
        },
        {
            "name": "X-Filename",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": MAX_FILENAME},
            "description": "the roster's file name for the report and audit log (percent-encoded)",
        },
    ),
)
async def import_audience(request: web.Request) -> web.Response:
    svc = services(request)
    caller = await caller_of(request)
    require_operator(caller, "operator", "supervisor", "admin")
    kind = require_type(request, ROSTER_TYPES)
    dry_run, skip_invalid = _flag(request, "dry_run"), _flag(request, "skip_invalid")
    town = request.query.get("town", "").strip() or None
    data = await read_body(request, svc.settings.server.max_upload_bytes)
    report = await import_roster(
        svc.db,
        svc.settings,
        data,
        _filename(request, kind),
        dry_run=dry_run,
        skip_invalid=skip_invalid,
        default_town=town,
        actor=caller.actor,
    )
    if report.blocked:
        raise rejected(report)
    return web.json_response(report.as_dict())


def rejected(report: ImportReport) -> Problem:
    """422 naming each bad row and column; the whole report rides along as ``report``."""
    problem = invalid(
        f"{len(report.bad_rows)} row(s) of {report.filename} have errors, so nothing was imported; "
        "fix them and send the file again, or send skip_invalid=1 to import the valid rows only",
        [FieldError(f"row {e.row}: {e.column}", e.message) for e in report.errors],
        kind="roster-invalid",
    )
    problem.extra["report"] = report.as_dict()
    return problem


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise invalid(f"{name} must be 1 or 0", [FieldError(name, f"got {value!r}; use 1 or 0")])


def _filename(request: web.Request, kind: str) -> str:
    raw = unquote(request.headers.get("X-Filename", "").strip())
    if len(raw) > MAX_FILENAME:
        raise invalid(
            f"X-Filename is longer than {MAX_FILENAME} characters",
            [FieldError("X-Filename", "shorten it")],
        )
    return raw or ("roster.xlsx" if kind == XLSX_TYPE else "roster.csv")
