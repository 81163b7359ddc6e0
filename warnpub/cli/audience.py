"""Audience commands: ``warnpub audience import FILE`` (rosters as village offices keep them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from warnpub.audiences.importer import import_roster
from warnpub.audiences.roster import ImportReport
from warnpub.cli.common import CLI_ACTOR, database, run, table
from warnpub.config import Settings
from warnpub.problems import invalid

# A progress bar is drawn on stderr when it is a terminal, or for files with more rows.
PROGRESS_ROWS = 2000
# The verdict line names at most this many skipped rows (the table above lists them all).
SHOW_SKIPPED = 50


def register(sub: Any) -> None:
    au = sub.add_parser("audience", help="people to reach: roster import").add_subparsers(
        dest="audience_command", metavar="ACTION", required=True
    )
    imp = au.add_parser(
        "import",
        help="import a roster (CSV or XLSX) of people, their villages, needs and contacts",
        description=(
            "Read a roster as village offices keep it (columns named as in "
            "[audiences.roster_columns], e.g. 姓名, 手机号码, 所属村/社区, 特殊人群类别, 联络员). "
            "Every bad row is listed with its row number; nothing is imported from a file with "
            "errors unless --skip-invalid. Re-importing updates people by their external id."
        ),
    )
    imp.add_argument("file", type=Path, metavar="FILE", help="a .csv or .xlsx roster")
    imp.add_argument("--dry-run", action="store_true", help="check and report only; write nothing")
    imp.add_argument(
        "--skip-invalid",
        action="store_true",
        help="import the valid rows and list the rows skipped (default: any bad row stops the import)",
    )
    imp.add_argument(
        "--town",
        metavar="CODE",
        help="town or subdistrict (code or name) for rows that name their village without a town",
    )
    imp.set_defaults(handler=audience_import)

    fg = au.add_parser(
        "forget",
        help="remove a person completely (name, numbers, replies); delivery counts are kept",
        description=(
            "Delete a person and every copy of their name, phone number and e-mail address "
            "(routes, acknowledgements, visit tasks, notices, the replies they sent), in one "
            "transaction. Their deliveries stay, pointing at no one, so every report counts "
            "what it counted before. The audit log records the id only. Forgetting the same id "
            "again changes nothing."
        ),
    )
    fg.add_argument(
        "person_id", metavar="ID", help="the person's id (as reports and the console show it)"
    )
    fg.set_defaults(handler=audience_forget)


def audience_forget(args: argparse.Namespace, settings: Settings) -> int:
    from warnpub.audiences.forget import forget_person
    from warnpub.cli.common import cli_actor, transaction

    raw = str(args.person_id).strip()
    if not raw.isascii() or not raw.isdigit() or int(raw) <= 0:
        raise invalid(f"{args.person_id!r} is not a person id; give the number (e.g. 1234)")
    person_id = int(raw)

    async def body() -> int:
        async with transaction(settings) as s:
            done = await forget_person(s, person_id, actor=cli_actor())
        if done.already:
            print(f"person {person_id} was already forgotten; nothing changed")
            return 0
        kept = done.counts.get("deliveries", 0)
        print(
            f"person {person_id} forgotten: {kept} delivery row(s) kept for the statistics, "
            + ", ".join(
                f"{k.replace('_', ' ')} {v}"
                for k, v in done.counts.items()
                if v and k != "deliveries"
            )
        )
        return 0

    return run(body)


def audience_import(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise invalid(f"cannot read {path}: {exc.strerror or exc}") from None

    async def body() -> int:
        bar = ProgressBar(sys.stderr, path.name)
        try:
            async with database(settings) as db:
                report = await import_roster(
                    db,
                    settings,
                    data,
                    path.name,
                    dry_run=args.dry_run,
                    skip_invalid=args.skip_invalid,
                    default_town=args.town,
                    actor=CLI_ACTOR,
                    progress=bar.update,
                )
        finally:
            bar.close()
        print(render_report(report))
        return 2 if report.blocked else 0

    return run(body)


class ProgressBar:
    """A tqdm bar on ``stream``, opened at the first update once the size of the file is known."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream, self.label = stream, label
        self.bar: Any = None
        self.decided = False

    def update(self, done: int, total: int) -> None:
        if not self.decided:
            self.decided = True
            if self.stream.isatty() or total // 2 > PROGRESS_ROWS:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=total,
                    file=self.stream,
                    desc=f"{self.label} ({total // 2} rows)",
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
                    leave=False,
                )
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def render_report(report: ImportReport) -> str:
    """The report as people read it: bad rows first, then the counts, then what happened."""
    lines: list[str] = []
    if report.errors:
        lines.append(
            table(
                [[e.row, e.column, e.message] for e in report.errors],
                ["row", "column", "reason"],
            )
        )
        lines.append("")
    bad = len(report.bad_rows)
    lines.append(
        f"{report.filename}: {report.rows_read} rows read, {report.valid} valid, {bad} with errors"
    )
    verb = "" if report.written else "would "
    lines.append(
        f"people: {verb}create {report.to_create}, {verb}update {report.to_update}, "
        f"unchanged {report.unchanged}"
    )
    if report.ignored_columns:
        lines.append(f"ignored columns: {', '.join(report.ignored_columns)}")
    lines.append(_verdict(report))
    return "\n".join(lines)


def _verdict(report: ImportReport) -> str:
    if report.blocked:
        return (
            f"NOT IMPORTED: {len(report.bad_rows)} row(s) have errors. Fix them and import again, "
            "or use --skip-invalid to import the valid rows only."
        )
    skipped = ""
    if report.skip_invalid and report.bad_rows:
        shown = ", ".join(str(r) for r in report.bad_rows[:SHOW_SKIPPED])
        more = len(report.bad_rows) - SHOW_SKIPPED
        skipped = f"; skipped rows: {shown}" + (f" and {more} more" if more > 0 else "")
    if report.dry_run:
        return f"dry run: nothing was written{skipped}"
    return f"imported{skipped}"
