"""The report as plain-text tables for a terminal (``warnpub report WARNING_ID``)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

from warnpub.reports.model import Counts, Report, Row
from warnpub.reports.units import duration, local_time, percent

COUNT_HEADER = ["targeted", "sent", "delivered", "acknowledged", "unreached", "pending", "coverage"]
BREAKDOWNS = (
    ("by town", "by_town", "town"),
    ("by village", "by_village", "village"),
    ("by tier", "by_tier", "tier"),
    ("by needs group (people; one person may have several needs)", "by_needs", "needs"),
    ("by channel (a target counts under every channel it was tried on)", "by_channel", "channel"),
)


def width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [list(header), *[[("" if c is None else str(c)) for c in r] for r in rows]]
    widths = [max(width(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "  ".join(c + " " * (w - width(c)) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def count_cells(c: Counts) -> list[Any]:
    return [
        c.targeted,
        c.sent,
        c.delivered,
        c.acknowledged,
        c.unreached,
        c.pending,
        percent(c.coverage),
    ]


def breakdown(rows: Sequence[Row], key: str) -> str:
    return table(
        [[r.key, r.label, *count_cells(r.counts)] for r in rows], [key, "name", *COUNT_HEADER]
    )


def render(report: Report, zone: tzinfo) -> str:
    w = report.warning
    out: list[str] = []
    title = f"Coverage and time report — warning {w.id}"
    if w.drill:
        title = f"DRILL 演练 · {title}"
    out += [title, "=" * width(title)]
    out.append(
        f"{w.headline or '(no headline)'} · level {w.level} · hazard {w.hazard} · "
        f"{w.msg_type} · status {w.status} · state {w.state}"
    )
    out.append(f"sender {w.sender} · identifier {w.identifier}")
    out.append(f"generated {local_time(report.generated_at, zone)}")
    out += ["", "Coverage", "--------"]
    out.append(
        table(
            [
                ["all targets", *count_cells(report.totals)],
                ["people", *count_cells(report.people)],
                ["devices", *count_cells(report.devices)],
            ],
            ["", *COUNT_HEADER],
        )
    )
    out += ["", "Times", "-----"]
    out.append(
        table(
            [
                [
                    m.name,
                    local_time(m.at, zone),
                    duration(m.since_received_s),
                    duration(m.since_approved_s),
                ]
                for m in report.milestones
            ],
            ["milestone", "at", "since received", "since approved"],
        )
    )
    out += [
        "",
        "Time to reach, by tier (since approval)",
        "---------------------------------------",
    ]
    out.append(
        table(
            [
                [
                    t.tier,
                    t.name,
                    t.targeted,
                    t.delivered,
                    *(duration(m.since_approved_s) for m in t.milestones.values()),
                ]
                for t in report.tier_times
            ],
            ["tier", "group", "targeted", "delivered", "50 %", "90 %", "99 %"],
        )
    )
    out += ["", "Clocks and targets", "------------------"]
    out.append(
        table(
            [[c.status.upper(), c.name, c.target, c.measured] for c in report.checks],
            ["status", "check", "target", "measured"],
        )
    )
    for heading, attr, key in BREAKDOWNS:
        rows: list[Row] = getattr(report, attr)
        out += ["", heading[0].upper() + heading[1:], "-" * width(heading)]
        out.append(breakdown(rows, key) if rows else "(no targets)")
    if report.unreached is not None:
        out += ["", unreached_heading(report), "-" * width(unreached_heading(report))]
        out.append(
            table(
                [
                    [
                        u.kind,
                        u.external_id or u.id,
                        u.name,
                        u.role,
                        f"{u.area_name} {u.area_code}".strip(),
                        u.tier_name,
                        ",".join(u.needs),
                        u.phone,
                        u.relay_contact,
                        u.tried(),
                    ]
                    for u in report.unreached
                ],
                ["kind", "id", "name", "role", "area", "tier", "needs", "phone", "relay", "tried"],
            )
            if report.unreached
            else "(everyone was reached or is still pending)"
        )
        if report.unreached_truncated:
            out.append(
                f"… {report.unreached_total - len(report.unreached)} more; "
                "write them all with --csv DIR (unreached.csv)"
            )
    return "\n".join(out) + "\n"


def unreached_heading(report: Report) -> str:
    return f"Not reached ({report.unreached_total}) — for the after-action review"
