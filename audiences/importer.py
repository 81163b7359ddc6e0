"""Roster import: check a roster, match its rows to people already stored, write them.

Matching on re-import (so that importing the same roster twice never duplicates anyone):

1. a row with an external id (编号) updates the stored person with that external id, wherever
   they lived before;
2. otherwise it updates the stored person with the same name, phone and village (no phone
   matches no phone) — one without an external id, or, for a row without an external id,
   any such person; a row with an external id gives it to the person it matched;
3. otherwise it creates a person.

On update, columns the file does not have leave stored values alone; an empty cell in a
column it has clears the value (back to the default). An empty external id never removes a
stored one.

Nothing is written from a file with errors unless ``skip_invalid`` (then the valid rows only),
and nothing at all on a dry run. Everything is written in ONE transaction, in statements of
:data:`CHUNK` rows: people first, then the relay contacts that point at people created by the
same import, then one audit entry.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.roster import (
    AreaIndex,
    Columns,
    ImportReport,
    ParsedRoster,
    PersonRow,
    Progress,
    RowError,
    StoredPerson,
    parse_roster,
    resolve_relays,
)
from warnpub.audiences.tables import Area, Person
from warnpub.audit.log import append
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.problems import conflict
from warnpub.storage.engine import Database

log = logging.getLogger("warnpub.audiences.import")

CHUNK = 1000
ACTION = "audience.import"
# Person columns a roster column fills directly (besides name and the village's area_code).
SIMPLE = (
    "role",
    "phone",
    "email",
    "language",
    "needs",
    "needs_note",
    "lat",
    "lon",
    "opt_out",
    "drill_consent",
)
STORED_COLUMNS = tuple(f.name for f in fields(StoredPerson))


@dataclass(slots=True)
class Plan:
    """What the import would do with the rows that passed every check."""

    people: list[PersonRow]
    errors: list[RowError]
    matched: dict[int, StoredPerson]
    creates: list[PersonRow] = field(default_factory=list)
    updates: list[PersonRow] = field(default_factory=list)
    unchanged: int = 0


async def import_roster(
    db: Database,
    settings: Settings,
    data: bytes,
    filename: str,
    *,
    dry_run: bool = False,
    skip_invalid: bool = False,
    default_town: str | None = None,
    actor: str,
    progress: Progress | None = None,
) -> ImportReport:
    """Check and (unless refused or a dry run) import a roster; the report says which.

    ``progress(done, total)`` is called from time to time: each row counts once when checked
    and once when written (or passed over), so ``total`` is twice the number of rows.
    """
    areas = await _area_index(db)
    parsed = await asyncio.to_thread(
        parse_roster, data, filename, settings.audiences, areas, default_town, progress
    )
    report = ImportReport(
        parsed.filename,
        rows_read=parsed.rows_read,
        ignored_columns=list(parsed.columns.ignored),
        dry_run=dry_run,
        skip_invalid=skip_invalid,
    )
    tick = _Ticker(progress, parsed.rows_read)
    try:
        async with db.session() as session:
            stored = await load_stored(session, parsed.people)
            plan = await asyncio.to_thread(plan_import, parsed, stored, areas)
            _fill(report, parsed, plan)
            if report.blocked or dry_run:
                tick.finish()
                return report
            tick.skip(parsed.rows_read - len(plan.creates) - len(plan.updates))
            await write_plan(session, plan, parsed.columns, tick.advance)
            await append(session, actor, ACTION, report.filename, **_audit_details(report))
            report.written = True
    except IntegrityError:
        raise conflict(
            "people in this roster were changed by someone else while it was imported "
            "(another import at the same time?); nothing was imported, run the import again"
        ) from None
    tick.finish()
    # LogRecord reserves some names ("created" among them): the figures go under "roster".
    log.info("roster imported", extra={"roster": _audit_details(report)})
    return report


def _fill(report: ImportReport, parsed: ParsedRoster, plan: Plan) -> None:
    report.errors = sorted(parsed.errors + plan.errors, key=lambda e: e.row)
    report.valid = len(plan.people)
    report.to_create, report.to_update = len(plan.creates), len(plan.updates)
    report.unchanged = plan.unchanged


def _audit_details(report: ImportReport) -> dict[str, Any]:
    return {
        "file": report.filename,
        "rows_read": report.rows_read,
        "created": report.to_create,
        "updated": report.to_update,
        "unchanged": report.unchanged,
        "skipped_rows": len(report.bad_rows),
        "ignored_columns": report.ignored_columns,
    }


class _Ticker:
    """Progress in rows: the first half while checking (in parse_roster), the second here."""

    def __init__(self, progress: Progress | None, rows: int) -> None:
        self.progress, self.total, self.done = progress, 2 * rows, rows

    def skip(self, rows: int) -> None:
        self.advance(rows)

    def advance(self, rows: int) -> None:
        self.done = min(self.total, self.done + rows)
        if self.progress is not None:
            self.progress(self.done, self.total)

    def finish(self) -> None:
        self.advance(self.total - self.done)


# ---------------------------------------------------------------------------- loading


async def _area_index(db: Database) -> AreaIndex:
    async with db.session() as session:
        rows = (await session.execute(select(Area.code, Area.name, Area.parent_code))).all()
    return AreaIndex((code, name, parent) for code, name, parent in rows)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def load_stored(session: AsyncSession, people: Sequence[PersonRow]) -> list[StoredPerson]:
    """People the roster may touch: those in its villages, and those its ids or relays name."""
    table = Person.__table__
    columns = [table.c[name] for name in STORED_COLUMNS]
    found: dict[int, StoredPerson] = {}

    async def fetch(column: Any, values: list[str]) -> None:
        for chunk in chunks(values):
            for row in await session.execute(select(*columns).where(column.in_(chunk))):
                found.setdefault(row[0], StoredPerson(*row))

    await fetch(table.c.area_code, sorted({p.area_code for p in people}))
    # Usually everyone is found in their village; look up by id only those who are not.
    known = {s.external_id for s in found.values()}
    wanted = {p.external_id for p in people if p.external_id}
    wanted |= {p.relay_contact for p in people if p.relay_contact}
    await fetch(table.c.external_id, sorted(wanted - known))
    return list(found.values())


# ---------------------------------------------------------------------------- planning


def plan_import(parsed: ParsedRoster, stored: list[StoredPerson], areas: AreaIndex) -> Plan:
    """Match rows to stored people, resolve relay contacts, and sort rows into create/update."""
    matched, errors = match_people(parsed.people, stored, parsed.columns, areas)
    bad = {e.row for e in errors}
    alive = [p for p in parsed.people if p.row not in bad]
    rejected = parsed.rejected + [p for p in parsed.people if p.row in bad]
    matched = {row: s for row, s in matched.items() if row not in bad}
    relay_errors = resolve_relays(alive, rejected, stored, matched, parsed.columns)
    errors += relay_errors
    bad |= {e.row for e in relay_errors}
    plan = Plan([p for p in alive if p.row not in bad], errors, matched)
    for p in plan.people:
        s = matched.get(p.row)
        if s is None:
            plan.creates.append(p)
        elif changed(p, s, parsed.columns):
            plan.updates.append(p)
        else:
            plan.unchanged += 1
    return plan


def match_people(
    people: Sequence[PersonRow], stored: Sequence[StoredPerson], columns: Columns, areas: AreaIndex
) -> tuple[dict[int, StoredPerson], list[RowError]]:
    """The stored person each row updates (by external id, else by name + phone + village)."""
    by_id = {s.external_id: s for s in stored if s.external_id}
    by_identity: dict[tuple[str, str, str | None], list[StoredPerson]] = defaultdict(list)
    for s in stored:
        by_identity[(s.area_code, s.name, s.phone)].append(s)
    matched: dict[int, StoredPerson] = {}
    claimed: dict[int, int] = {}
    errors: list[RowError] = []
    label = columns.label("name")
    for p in people:
        found = by_id.get(p.external_id) if p.external_id else None
        if found is None:
            same = [
                s
                for s in by_identity.get((p.area_code, p.name, p.phone), [])
                if s.external_id is None or p.external_id is None
            ]
            if len(same) > 1:
                ids = ", ".join(str(s.id) for s in same)
                errors.append(
                    RowError(
                        p.row,
                        "name",
                        label,
                        f"matches {len(same)} people already stored with the same name and phone in "
                        f"{areas.describe(p.area_code)} (ids {ids}); give the row the "
                        f"{columns.label('external_id')} of the right one",
                    )
                )
                continue
            found = same[0] if same else None
        if found is None:
            continue
        if found.id in claimed:
            errors.append(
                RowError(
                    p.row,
                    "name",
                    label,
                    f"updates the same stored person as row {claimed[found.id]}; "
                    f"remove one, or give each its own {columns.label('external_id')}",
                )
            )
            continue
        claimed[found.id] = p.row
        matched[p.row] = found
    return matched, errors


def changed(p: PersonRow, s: StoredPerson, columns: Columns) -> bool:
    """Whether importing ``p`` over ``s`` changes anything stored."""
    if p.name != s.name or p.area_code != s.area_code:
        return True
    if p.external_id is not None and p.external_id != s.external_id:
        return True
    if any(getattr(p, f) != getattr(s, f) for f in SIMPLE if columns.present(f)):
        return True
    if columns.present("relay_contact"):
        return p.relay_row is not None or p.relay_id != s.relay_contact_id
    return False


# ---------------------------------------------------------------------------- writing


def _insert_values(p: PersonRow, now: datetime) -> dict[str, Any]:
    values = {f: getattr(p, f) for f in SIMPLE}
    values.update(
        external_id=p.external_id,
        name=p.name,
        area_code=p.area_code,
        relay_contact_id=p.relay_id,
        created_at=now,
        updated_at=now,
    )
    return values


def _update_keys(columns: Columns) -> list[str]:
    keys = ["name", "area_code", "external_id", "updated_at"]
    keys += [f for f in SIMPLE if columns.present(f)]
    if columns.present("relay_contact"):
        keys.append("relay_contact_id")
    return keys


def _update_values(p: PersonRow, s: StoredPerson, keys: list[str], now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": p.name,
        "area_code": p.area_code,
        "external_id": p.external_id or s.external_id,
        "updated_at": now,
        "relay_contact_id": p.relay_id,
    }
    values.update({f: getattr(p, f) for f in SIMPLE})
    return {"b_id": s.id, **{f"v_{k}": values[k] for k in keys}}


async def write_plan(
    session: AsyncSession, plan: Plan, columns: Columns, advance: Callable[[int], None]
) -> None:
    """People in chunks, then relay contacts that point at people this import created."""
    table = Person.__table__
    now = utcnow()
    created: dict[int, int] = {}
    # RETURNING without asking for parameter order lets both databases insert a chunk in one
    # statement; rows are told apart by (external id, village, name, phone), which
    # find_duplicates keeps unique within a file.
    key = (table.c.external_id, table.c.area_code, table.c.name, table.c.phone)
    stmt = insert(table).returning(table.c.id, *key)
    for chunk in chunks(plan.creates):
        rows = {(p.external_id, p.area_code, p.name, p.phone): p.row for p in chunk}
        result = await session.execute(stmt, [_insert_values(p, now) for p in chunk])
        created.update((rows[tuple(r[1:])], r[0]) for r in result)
        advance(len(chunk))
    keys = _update_keys(columns)
    change = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({k: bindparam(f"v_{k}") for k in keys})
    )
    for chunk in chunks(plan.updates):
        params = [_update_values(p, plan.matched[p.row], keys, now) for p in chunk]
        await session.execute(change, params)
        advance(len(chunk))
    await _point_at_created(session, plan, created)


async def _point_at_created(session: AsyncSession, plan: Plan, created: dict[int, int]) -> None:
    table = Person.__table__
    pending = [
        {"b_id": created.get(p.row) or plan.matched[p.row].id, "v_relay": created[p.relay_row]}
        for p in plan.people
        if p.relay_row is not None
    ]
    relay = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(relay_contact_id=bindparam("v_relay"))
    )
    for chunk in chunks(pending):
        await session.execute(relay, list(chunk))
