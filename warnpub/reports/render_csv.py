"""The report as CSV files, one per table (UTF-8 with a byte-order mark, so that spreadsheet
programs show Chinese names correctly). Times are UTC (RFC 3339); durations in seconds."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

from warnpub.clock import iso
from warnpub.reports.model import Counts, Report, Row, Unreached

COUNT_COLUMNS = [
    "targeted",
    "sent",
    "delivered",
    "acknowledged",
    "unreached",
    "pending",
    "ack_expected",
    "coverage",
]
UNREACHED_COLUMNS = [
    "kind",
    "id",
    "external_id",
    "name",
    "role",
    "area_code",
    "area_name",
    "tier",
    "tier_name",
    "needs",
    "phone",
    "relay_contact",
    "tried",
]
# A cell a spreadsheet would run as a formula gets a leading apostrophe.
_FORMULA_START = ("=", "+", "@", "\t", "\r", "-")


def cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START) and value != "-":
        return "'" + value
    return "" if value is None else value


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        for row in rows:
            out.writerow([cell(v) for v in row])
    return path


def _counts(c: Counts) -> list[Any]:
    d = c.as_dict()
    return [d[k] for k in COUNT_COLUMNS]


def _rows(rows: Sequence[Row]) -> Iterable[list[Any]]:
    return ([r.key, r.label, *_counts(r.counts)] for r in rows)


def write_tables(report: Report, directory: Path) -> list[Path]:
    """summary, milestones, tier_times, checks and the five breakdowns; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    w = report.warning
    written = [
        _write(
            directory / "summary.csv",
            ["warning_id", "status", "drill", "level", "scope", *COUNT_COLUMNS],
            (
                [w.id, w.status, w.drill, w.level, scope, *_counts(c)]
                for scope, c in (
                    ("all", report.totals),
                    ("people", report.people),
                    ("devices", report.devices),
                )
            ),
        ),
        _write(
            directory / "milestones.csv",
            ["milestone", "at_utc", "since_received_s", "since_approved_s"],
            (
                [m.name, iso(m.at), m.since_received_s, m.since_approved_s]
                for m in report.milestones
            ),
        ),
        _write(
            directory / "tier_times.csv",
            ["tier", "group", "targeted", "delivered", "milestone", "at_utc", "since_approved_s"],
            (
                [t.tier, t.name, t.targeted, t.delivered, name, iso(m.at), m.since_approved_s]
                for t in report.tier_times
                for name, m in t.milestones.items()
            ),
        ),
        _write(
            directory / "checks.csv",
            ["kind", "check", "target", "status", "measured", "value", "limit"],
            (
                [c.kind, c.name, c.target, c.status, c.measured, c.value, c.limit]
                for c in report.checks
            ),
        ),
    ]
    for name, key in (
        ("by_town", "town"),
        ("by_village", "village"),
        ("by_tier", "tier"),
        ("by_needs", "needs"),
        ("by_channel", "channel"),
    ):
        written.append(
            _write(
                directory / f"{name}.csv",
                [key, "name", *COUNT_COLUMNS],
                _rows(getattr(report, name)),
            )
        )
    return written


def unreached_cells(u: Unreached) -> list[Any]:
    return [
        u.kind,
        u.id,
        u.external_id,
        u.name,
        u.role,
        u.area_code,
        u.area_name,
        u.tier,
        u.tier_name,
        ";".join(u.needs),
        u.phone,
        u.relay_contact,
        u.tried(),
    ]


async def write_unreached(rows: AsyncIterator[Unreached], path: Path) -> int:
    """Every unreached target, streamed from the database; how many were written."""
    n = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(UNREACHED_COLUMNS)
        async for u in rows:
            out.writerow([cell(v) for v in unreached_cells(u)])
            n += 1
    return n
