"""``warnpub report WARNING_ID``: coverage and time of one warning, as tables, CSV and HTML."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from warnpub.cli.common import add_unmasked, database, record_unmasked, run
from warnpub.config import Settings
from warnpub.problems import invalid
from warnpub.reports import build_report
from warnpub.reports.build import display_zone, unreached_list
from warnpub.reports.privacy import EXPORT, FULL
from warnpub.reports.render_csv import write_tables, write_unreached


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="coverage and time report of a warning (tables, CSV, HTML)",
        description=(
            "Who a warning reached — targeted, sent, delivered, acknowledged, unreached — per "
            "town, village, tier, needs group and channel; how soon (submission → approval → "
            "first delivery → 50/90/99 %% delivered → last acknowledgement); and whether the "
            "county's clocks and [reports] targets were kept. A drill (CAP status Exercise) also "
            "lists everyone not reached. See docs/reports.md."
        ),
    )
    p.add_argument("warning_id", metavar="WARNING_ID", help="the warning's id")
    p.add_argument(
        "--csv", metavar="DIR", type=Path, help="also write one CSV file per table into DIR"
    )
    p.add_argument(
        "--html", metavar="FILE", type=Path, help="also write a self-contained page with charts"
    )
    p.add_argument(
        "--lang",
        choices=("en", "zh-CN"),
        default="en",
        help="language of the --html page: en (default) or zh-CN",
    )
    p.add_argument(
        "--json", action="store_true", help="print the report as JSON (as the API serves it)"
    )
    p.add_argument(
        "--unreached",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="list the people and devices not reached (default: for drills only)",
    )
    add_unmasked(p)
    p.set_defaults(handler=report_command)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse unusable output paths before reading anything."""
    if args.csv is not None and args.csv.exists() and not args.csv.is_dir():
        raise invalid(f"--csv: {args.csv} exists and is not a directory")
    if args.html is not None:
        if args.html.is_dir():
            raise invalid(f"--html: {args.html} is a directory; name a file")
        if not args.html.parent.is_dir():
            raise invalid(f"--html: the directory {args.html.parent} does not exist")


def report_command(args: argparse.Namespace, settings: Settings) -> int:
    _check_outputs(args)
    zone = display_zone(settings)

    # What the command prints or writes may travel: names masked unless --unmasked.
    privacy = FULL if args.unmasked else EXPORT

    async def body() -> int:
        async with database(settings) as db:
            if args.unmasked:
                await _check_warning(db, args.warning_id)
                await record_unmasked(
                    db,
                    "report",
                    f"warning:{args.warning_id}",
                    csv=args.csv is not None,
                    html=args.html is not None,
                )
            report = await build_report(
                db, settings, args.warning_id, unreached=args.unreached, privacy=privacy
            )
            if args.json:
                print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
            else:
                from warnpub.reports.render_text import render

                sys.stdout.write(render(report, zone))
            if args.csv is not None:
                written = write_tables(report, args.csv)
                if report.unreached is not None:
                    path = args.csv / "unreached.csv"
                    async with db.reader() as s:
                        await write_unreached(
                            unreached_list(s, settings, report.warning.id, None, privacy=privacy),
                            path,
                        )
                    written.append(path)
                print(f"wrote {len(written)} CSV files to {args.csv}", file=sys.stderr)
        if args.html is not None:
            from warnpub.reports.render_html import render as render_html

            args.html.write_text(render_html(report, zone, args.lang), encoding="utf-8")
            print(f"wrote {args.html}", file=sys.stderr)
        return 0

    return run(body)


async def _check_warning(db: Any, warning_id: str) -> None:
    """A 404 for an unknown warning before anything is written (the audit entry)."""
    from warnpub.reports.build import load_warning

    async with db.reader() as s:
        await load_warning(s, warning_id)
