"""The outbox: every SQL statement that writes or claims delivery rows.

Persist, then send: plan rows are committed before any worker can claim them; a claim leases
rows to one worker in one statement; results are recorded only for rows still leased to the
recording worker and still ``sending`` (a cancelled or re-leased row is left alone).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from warnpub.audiences.targeting import Target, partner_id  # noqa: F401 (re-exported)
from warnpub.clock import utcnow
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery, WarningRecord

# Channels that reach one person; speaker and board reach a village through its devices.
PERSON_CHANNELS = frozenset({"sms", "email", "voice", "relay"})
DEVICE_CHANNELS = frozenset({"speaker", "board"})
# Partner systems (TV, radio, messaging bridges, neighbouring counties) get every warning.
PARTNER_CHANNELS = frozenset({"webhook"})


OPEN_STATES = ("planned", "queued", "sending")
FINAL_STATES = ("delivered", "failed", "expired", "cancelled")

TABLE = Delivery.__table__  # type: ignore[attr-defined]


def route_text(route: Sequence[Sequence[str]]) -> str:
    return "|".join("+".join(stage) for stage in route)


def parse_route(text: str) -> list[tuple[str, ...]]:
    return [tuple(stage.split("+")) for stage in text.split("|")] if text else []


class Step(NamedTuple):
    """One row of a route step: its channel, and whether it can be sent at all."""

    channel: str
    stage: int
    state: str  # "queued", or "failed" when no instance of the channel is configured
    error: str


def first_steps(
    kind: str,
    route: Sequence[Sequence[str]],
    start: int = 0,
    available: frozenset[str] | None = None,
) -> tuple[Step, ...]:
    """The rows of the first step at or after ``start`` that reaches this target directly.

    For a person, steps made only of village devices (speaker, board) are covered by the
    devices' own deliveries and skipped; for a device, its one channel is the step. A channel
    with no configured instance (not in ``available``) gets a ``failed`` row saying so, and
    when a whole step is unavailable the next step is planned at once.
    """
    return _first_steps(kind, tuple(tuple(stage) for stage in route), start, available)


@lru_cache(maxsize=4096)
def _first_steps(
    kind: str, route: tuple[tuple[str, ...], ...], start: int, available: frozenset[str] | None
) -> tuple[Step, ...]:
    allowed = (
        DEVICE_CHANNELS
        if kind == "device"
        else PARTNER_CHANNELS
        if kind == "partner"
        else PERSON_CHANNELS
    )
    steps: list[Step] = []
    for stage in range(start, len(route)):
        channels = [c for c in route[stage] if c in allowed]
        live = [c for c in channels if available is None or c in available]
        for c in channels:
            if c in live:
                steps.append(Step(c, stage, "queued", ""))
            else:
                steps.append(Step(c, stage, "failed", f"no {c} channel is configured"))
        if live:
            break
    return tuple(steps)


@lru_cache(maxsize=4096)
def _route_text(route: tuple[tuple[str, ...], ...]) -> str:
    return route_text(route)


# The columns a new delivery row is written with (the others start out NULL), and the same
# without the target id: the "shape" that the rows of one group share.
INSERT_COLUMNS = (
    "warning_id", "target_kind", "target_id", "channel", "stage", "route", "tier", "priority",
    "area_code", "language", "ack_required", "state", "attempts", "next_attempt_at",
    "last_error", "created_at", "final_at",
)  # fmt: skip
SHAPE_COLUMNS = tuple(c for c in INSERT_COLUMNS if c != "target_id")
_CHANNEL, _STATE = SHAPE_COLUMNS.index("channel"), SHAPE_COLUMNS.index("state")
_TIER, _PRIORITY = SHAPE_COLUMNS.index("tier"), SHAPE_COLUMNS.index("priority")
Shape = tuple[Any, ...]


def shape_of(
    warning_id: str,
    kind: str,
    step: Step,
    route: str,
    *,
    tier: int,
    priority: int,
    area_code: str,
    language: str,
    ack: bool,
    now: datetime,
) -> Shape:
    """Every column of a new row but its target id, in :data:`SHAPE_COLUMNS` order."""
    failed = step.state == "failed"
    return (
        warning_id, kind, step.channel, step.stage, route, tier, priority, area_code, language,
        ack, step.state, 0, now, step.error, now, now if failed else None,
    )  # fmt: skip


class PlannedRows:
    """New delivery rows, grouped by everything but the target id.

    The rows of a plan differ in little but their target: the targets of one chunk share a
    few dozen shapes (tier, route, village, language, …). Each group is written with one
    statement whose target ids the database expands itself (``json_each`` on SQLite,
    ``unnest`` on PostgreSQL), so no row is ever built, bound or sent one by one in Python.
    """

    __slots__ = ("groups", "rows")

    def __init__(self) -> None:
        self.groups: dict[Shape, list[int]] = {}
        self.rows = 0

    def add(self, shape: Shape, ids: list[int]) -> None:
        group = self.groups.get(shape)
        if group is None:
            self.groups[shape] = list(ids)
        else:
            group.extend(ids)
        self.rows += len(ids)

    @property
    def channels(self) -> set[str]:
        return {shape[_CHANNEL] for shape in self.groups}

    @property
    def queued_channels(self) -> set[str]:
        """Channels with rows to send (the others are rows that failed at once)."""
        return {shape[_CHANNEL] for shape in self.groups if shape[_STATE] == "queued"}

    @property
    def ranks(self) -> set[tuple[int, int]]:
        """The (tier, priority) of the rows: what orders them for sending."""
        return {(shape[_TIER], shape[_PRIORITY]) for shape in self.groups}

    def __len__(self) -> int:
        return self.rows

    def __bool__(self) -> bool:
        return self.rows > 0

    def dicts(self) -> list[dict[str, Any]]:
        """The rows one by one (for tests and for databases without a grouped insert)."""
        return [
            {**dict(zip(SHAPE_COLUMNS, shape, strict=True)), "target_id": target_id}
            for shape, ids in self.groups.items()
            for target_id in ids
        ]


def stage_rows(
    warning_id: str,
    kind: str,
    target_id: int,
    route: Sequence[Sequence[str]],
    start: int,
    *,
    tier: int,
    priority: int,
    area_code: str,
    language: str,
    ack: bool,
    now: datetime,
    available: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """Rows (as dicts) for the first step at or after ``start`` that reaches this target
    directly; see :func:`first_steps`."""
    text = route_text(route)
    return [
        {
            **dict(
                zip(
                    SHAPE_COLUMNS,
                    shape_of(
                        warning_id, kind, step, text, tier=tier, priority=priority,
                        area_code=area_code, language=language, ack=ack, now=now,
                    ),
                    strict=True,
                )
            ),
            "target_id": target_id,
        }
        for step in first_steps(kind, route, start, available)
    ]  # fmt: skip


def plan_rows(
    warning_id: str,
    targets: Iterable[Target],
    now: datetime,
    available: frozenset[str] | None = None,
    into: PlannedRows | None = None,
) -> PlannedRows:
    """The first-step rows of ``targets``, grouped (added to ``into`` when given)."""
    out = PlannedRows() if into is None else into
    # Group the targets first by what decides their rows: a million targets come with a few
    # thousand route choices (shared objects), so the per-target work is one small tuple.
    by_situation: dict[tuple[Any, ...], list[int]] = {}
    choices: dict[int, Any] = {}
    for t in targets:
        choice = t.choice
        key = (id(choice), t.kind, t.area_code, t.tier, t.priority, t.language, t.ack_required)
        ids = by_situation.get(key)
        if ids is None:
            by_situation[key] = ids = []
            choices[id(choice)] = choice
        ids.append(t.id)
    for (choice_id, kind, area_code, tier, prio, language, ack), ids in by_situation.items():
        route = choices[choice_id].route
        text = _route_text(route)
        for step in _first_steps(kind, route, 0, available):
            shape = shape_of(
                warning_id, kind, step, text, tier=tier, priority=prio, area_code=area_code,
                language=language, ack=ack, now=now,
            )  # fmt: skip
            out.add(shape, ids)
    return out


UNIQUE_TARGET = ("warning_id", "target_kind", "target_id", "channel")


def _grouped_insert(dialect: str, *, skip_existing: bool = True) -> Any:
    """INSERT … SELECT <the shape>, <each id> FROM <the ids> ON CONFLICT DO NOTHING (without
    the ON CONFLICT clause when not ``skip_existing``: PostgreSQL's fresh-rows path)."""
    if dialect == "postgresql":
        ids = (
            func.unnest(bindparam("ids", type_=ARRAY(BigInteger)))
            .table_valued("value")
            .render_derived()
        )
        insert = pg_insert
    else:
        ids = func.json_each(bindparam("ids", type_=String)).table_valued("value")
        insert = sqlite_insert

    def value(column: str) -> Any:
        if column == "target_id":
            return ids.c.value
        param = bindparam(column, type_=TABLE.c[column].type)
        # PostgreSQL types the parameters of a SELECT list only when told; a CAST in SQLite
        # would apply its own affinities (a DATETIME string cast to a number), so none there.
        return cast(param, TABLE.c[column].type) if dialect == "postgresql" else param

    columns = [value(c) for c in INSERT_COLUMNS]
    # SQLite parses "INSERT … SELECT … ON CONFLICT" only when the SELECT has a WHERE.
    rows = select(*columns).select_from(ids).where(true())
    stmt = insert(TABLE).from_select(list(INSERT_COLUMNS), rows)
    if not skip_existing:
        return stmt
    return stmt.on_conflict_do_nothing(index_elements=list(UNIQUE_TARGET))


_IDS = len(SHAPE_COLUMNS)  # where a group's ids follow its shape
_GROUPED_SQL: dict[tuple[str, str, bool], tuple[str, list[int], list[tuple[int, Any]]]] = {}


class UnsupportedDriver(RuntimeError):
    """The database driver binds parameters by name; the outbox's precompiled statements
    need one that binds by position (aiosqlite and asyncpg, the two warnpub supports, do)."""


def require_positional(dialect: Any, compiled: Any) -> None:
    """Refuse a driver whose parameters are not positional, saying which drivers work."""
    if not dialect.positional or compiled.positiontup is None:
        raise UnsupportedDriver(
            f"{dialect.name}+{dialect.driver} binds parameters by name; warnpub's outbox needs "
            "a positional driver: use sqlite+aiosqlite:// or postgresql+asyncpg://"
        )


def _grouped_insert_sql(
    dialect: Any, *, skip_existing: bool = True
) -> tuple[str, list[int], list[tuple[int, Any]]]:
    """The grouped insert compiled for ``dialect``: its text, where each of its parameters
    comes from in ``shape + (ids,)``, and the converters of the parameters that have one."""
    key = (dialect.name, dialect.driver, skip_existing)
    found = _GROUPED_SQL.get(key)
    if found is not None:
        return found
    name = "postgresql" if dialect.name == "postgresql" else "sqlite"
    compiled = _grouped_insert(name, skip_existing=skip_existing).compile(dialect=dialect)
    require_positional(dialect, compiled)
    where = {c: i for i, c in enumerate(SHAPE_COLUMNS)} | {"ids": _IDS}
    order = [where[p] for p in compiled.positiontup]
    processors: list[tuple[int, Any]] = []
    for position, param in enumerate(compiled.positiontup):
        if param == "ids":
            continue
        column_type = TABLE.c[param].type
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((position, process))
    found = _GROUPED_SQL[key] = (compiled.string, order, processors)
    return found


async def insert_planned(session: AsyncSession, planned: PlannedRows) -> None:
    """Insert grouped rows, skipping any that exist (a resumed plan writes each row once)."""
    if not planned:
        return
    conn = await session.connection()
    sql, params = grouped_insert(conn.dialect, planned)
    await conn.exec_driver_sql(sql, params)


def grouped_insert(
    dialect: Any, planned: PlannedRows, *, skip_existing: bool = True
) -> tuple[str, list[tuple[Any, ...]]]:
    """The grouped insert for ``dialect`` and its parameters: one statement per group, all run
    by the driver at once (executemany). The few distinct values that need converting (times,
    flags) are converted once."""
    sql, order, processors = _grouped_insert_sql(dialect, skip_existing=skip_existing)
    encode: Any = list if dialect.name == "postgresql" else _json_ids
    converted: dict[tuple[int, Any], Any] = {}
    params: list[tuple[Any, ...]] = []
    for shape, ids in planned.groups.items():
        values = (*shape, encode(ids))
        row = [values[i] for i in order]
        for position, process in processors:
            raw = row[position]
            memo = (position, raw)
            if memo not in converted:
                converted[memo] = process(raw)
            row[position] = converted[memo]
        params.append(tuple(row))
    return sql, params


UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE for a duplicate key


async def insert_new_planned(session: AsyncSession, planned: PlannedRows) -> bool:
    """PostgreSQL, the planner's bulk path: insert rows that should not exist yet.

    ``ON CONFLICT DO NOTHING`` makes PostgreSQL insert every row speculatively (a look-up in
    the unique index first, then the row and its index entries, then a confirmation written to
    the WAL) and costs the server more than a plain insert (measured on 1.05M rows, the
    backend's CPU: 23–25 s against 16–17 s; 21–26 s against 18–23 s with the cluster's notify
    trigger on ``deliveries``). COPY into a staging table and one INSERT … SELECT … ON
    CONFLICT from it was no faster (24.9 s), and COPY straight into ``deliveries`` cost the
    server about what the plain insert does while the client built and encoded every row
    (2–3 s more of the planning process's CPU). A plan's rows are new unless the plan
    is being resumed, so each chunk is first inserted plainly inside a savepoint; a row that
    exists after all (a resumed plan, or another process writing the same warning) fails the
    whole statement, which is then rolled back to the savepoint and run again with ON CONFLICT
    DO NOTHING. Either way every row ends up written once. Returns False when it had to fall
    back."""
    if not planned:
        return True
    try:
        async with session.begin_nested():
            conn = await session.connection()  # (this emits the SAVEPOINT)
            sql, params = grouped_insert(conn.dialect, planned, skip_existing=False)
            await conn.exec_driver_sql(sql, params)
        return True
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) != UNIQUE_VIOLATION:
            raise
    await insert_planned(session, planned)
    return False


def sqlite_chunk_insert(
    dialect: Any, planned: PlannedRows, *, if_warning: str, in_states: Sequence[str]
) -> tuple[str, tuple[Any, ...]]:
    """SQLite: every group of a chunk in ONE statement and one parameter (a JSON document of
    ``[shape…, [ids…]]`` per group): the driver steps it once, with the interpreter lock
    released throughout, instead of once per group. Nothing is inserted unless the warning
    ``if_warning`` is in one of ``in_states`` (checked in the same statement)."""
    _, order, processors = _grouped_insert_sql(dialect)
    by_column = {order[position]: process for position, process in processors}
    converted: dict[tuple[int, Any], Any] = {}
    doc: list[list[Any]] = []
    for shape, ids in planned.groups.items():
        group: list[Any] = list(shape)
        for column, process in by_column.items():
            raw = group[column]
            memo = (column, raw)
            if memo not in converted:
                converted[memo] = process(raw)
            group[column] = converted[memo]
        group.append(ids)
        doc.append(group)
    states = tuple(in_states)
    sql = _SQLITE_CHUNK_INSERT.replace("IN (?)", f"IN ({', '.join('?' * len(states))})")
    return sql, (json.dumps(doc, separators=(",", ":"), ensure_ascii=False), if_warning, *states)


_G = ", ".join(f"s.value ->> {i} AS c{i}" for i in range(len(SHAPE_COLUMNS)))
_ROWS = ", ".join(
    "t.value" if c == "target_id" else f"g.c{SHAPE_COLUMNS.index(c)}" for c in INSERT_COLUMNS
)
# Built from this module's column names only; the data is the one bound parameter.
_SQLITE_CHUNK_INSERT = (
    f"WITH g AS MATERIALIZED (SELECT {_G}, s.value -> {len(SHAPE_COLUMNS)} AS ids "  # noqa: S608
    f"FROM json_each(?) AS s) INSERT INTO {TABLE.name} ({', '.join(INSERT_COLUMNS)}) "
    f"SELECT {_ROWS} FROM g, json_each(g.ids) AS t "
    "WHERE EXISTS (SELECT 1 FROM warnings WHERE id = ? AND state IN (?)) "
    f"ON CONFLICT ({', '.join(UNIQUE_TARGET)}) DO NOTHING"
)


def _json_ids(ids: list[int]) -> str:
    return json.dumps(ids, separators=(",", ":"))


async def insert_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert delivery rows given one by one (as :func:`stage_rows` makes them), grouped."""
    if not rows:
        return
    planned = PlannedRows()
    for row in rows:
        planned.add(tuple(row[c] for c in SHAPE_COLUMNS), [row["target_id"]])
    await insert_planned(session, planned)


class Claimed(NamedTuple):
    """A delivery row leased to a worker: what sending and recording it need."""

    id: int
    warning_id: str
    target_kind: str
    target_id: int
    channel: str
    stage: int
    route: str
    tier: int
    priority: int
    area_code: str
    language: str
    ack_required: bool
    attempts: int
    created_at: datetime


CLAIM_COLUMNS = [getattr(Delivery, f) for f in Claimed._fields]
# What a claim reports about the warning of its rows: (state, expires_at).
WarningStop = tuple[str, datetime | None]


async def claim(
    session: AsyncSession,
    channel: str,
    owner: str,
    gateway: str,
    limit: int,
    lease_s: float,
    now: datetime | None = None,
    pin: int | None = None,
) -> tuple[list[Claimed], dict[str, WarningStop]]:
    """Lease up to ``limit`` due rows of ``channel`` to ``owner`` in ``session``'s transaction.

    ``pin`` (a partner's id, :func:`partner_id`) takes only that partner's rows: a webhook row
    belongs to one partner instance, unlike an SMS that any gateway may carry.

    Highest priority first; within one priority the longest due first (the order of the claim
    index, so the database stops after ``limit`` rows instead of sorting every due row of a
    big tier). Returns the rows in priority order, then by id, and the state and expiry of
    their warnings, read in the same statement."""
    now = now or utcnow()
    conn = await session.connection()
    sql, order, processors = _claim_statement(conn.dialect, pinned=pin is not None)
    values = {
        "b_pin": pin,
        "b_channel": channel,
        "b_now": now,
        "b_limit": limit,
        "b_offset": 0,
        "b_owner": owner,
        "b_gateway": gateway,
        "b_lease_until": now + timedelta(seconds=lease_s),
    }
    params = tuple(
        processors[name](values[name]) if name in processors else values[name] for name in order
    )
    rows = await _fetch(conn, sql, params)
    created, ack, expires = _CLAIM_RESULT[conn.dialect.name, conn.dialect.driver]
    claimed: list[Claimed] = []
    for r in rows:
        flag, at = r[11], r[13]
        claimed.append(
            Claimed(*r[:11], ack(flag) if ack else flag, r[12], created(at) if created else at)
        )
    claimed.sort(key=_claim_order)
    # The rows of one round come from a warning or two: each is read once (reading it in
    # the claim, once per row, costs more than the claim itself).
    warnings: dict[str, WarningStop] = {}
    for warning_id in {c.warning_id for c in claimed}:
        found = await _fetch(
            conn, _CLAIM_WARNING[conn.dialect.name, conn.dialect.driver], (warning_id,)
        )
        if found:
            state, at = found[0]
            warnings[warning_id] = (state, expires(at) if expires else at)
    return claimed, warnings


def _claim_order(c: Claimed) -> tuple[int, int]:
    return c.priority, c.id


_CLAIMS: dict[tuple[str, str, bool], tuple[str, list[str], dict[str, Any]]] = {}
_CLAIM_RESULT: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
_CLAIM_WARNING: dict[tuple[str, str], str] = {}


def _claim_statement(
    dialect: Any, *, pinned: bool = False
) -> tuple[str, list[str], dict[str, Any]]:
    """The claim as one statement compiled for ``dialect``: its text, the order of its
    parameters and their converters (results' converters go to ``_CLAIM_RESULT``)."""
    key = (dialect.name, dialect.driver)
    found = _CLAIMS.get((*key, pinned))
    if found is not None:
        return found
    conditions = [
        TABLE.c.channel == bindparam("b_channel"),
        TABLE.c.state == literal_column("'queued'"),
        TABLE.c.next_attempt_at <= bindparam("b_now", type_=TABLE.c.next_attempt_at.type),
    ]
    if pinned:
        conditions += [
            TABLE.c.target_kind == literal_column("'partner'"),
            TABLE.c.target_id == bindparam("b_pin", type_=Integer()),
        ]
    due = (
        select(TABLE.c.id)
        .where(*conditions)
        .order_by(TABLE.c.priority, TABLE.c.next_attempt_at, TABLE.c.id)
        .limit(bindparam("b_limit", type_=Integer()))
        .offset(bindparam("b_offset", type_=Integer()))
    )
    if dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    warnings = WarningRecord.__table__  # type: ignore[attr-defined]
    stmt = (
        update(TABLE)
        .where(TABLE.c.id.in_(due.scalar_subquery()))
        .values(
            state=literal_column("'sending'"),
            lease_owner=bindparam("b_owner"),
            gateway=bindparam("b_gateway"),
            lease_until=bindparam("b_lease_until", type_=TABLE.c.lease_until.type),
            attempts=TABLE.c.attempts + literal_column("1"),
        )
        .returning(*(TABLE.c[f] for f in Claimed._fields))
    )
    compiled = stmt.compile(dialect=dialect)
    require_positional(dialect, compiled)
    order = list(compiled.positiontup)
    processors: dict[str, Any] = {}
    for name, column_type in (
        ("b_now", TABLE.c.next_attempt_at.type),
        ("b_lease_until", TABLE.c.lease_until.type),
    ):
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process

    def result(column_type: Any) -> Any:
        return column_type.dialect_impl(dialect).result_processor(dialect, None)

    _CLAIM_WARNING[key] = (
        select(warnings.c.state, warnings.c.expires_at)
        .where(warnings.c.id == bindparam("b_warning"))
        .compile(dialect=dialect)
        .string
    )
    _CLAIM_RESULT[key] = (
        result(TABLE.c.created_at.type),
        result(TABLE.c.ack_required.type),
        result(warnings.c.expires_at.type),
    )
    found = _CLAIMS[(*key, pinned)] = (compiled.string, order, processors)
    return found


async def _fetch(conn: AsyncConnection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """Rows of one statement, run by the driver. On SQLite the statement is handed to the
    connection's thread in one step (SQLAlchemy's adapter takes four: cursor, execute,
    fetch, close), which matters while the event loop is busy sending."""
    if conn.dialect.name == "sqlite":
        driver = (await conn.get_raw_connection()).driver_connection
        return list(await driver.execute_fetchall(sql, params))
    return list((await conn.exec_driver_sql(sql, params)).all())


async def _run_many(conn: AsyncConnection, sql: str, params: list[tuple[Any, ...]]) -> int:
    """Run one statement for every parameter tuple (executemany); rows changed, or -1."""
    if conn.dialect.name == "sqlite":
        driver = (await conn.get_raw_connection()).driver_connection
        if len(params) == 1:
            cursor = await driver.execute(sql, params[0])
        else:
            cursor = await driver.executemany(sql, params)
        rowcount = cursor.rowcount
        await cursor.close()
        return int(rowcount)
    result = await conn.exec_driver_sql(sql, params if len(params) > 1 else params[0])
    return int(result.rowcount)


async def update_many(session: AsyncSession, owner: str, changes: list[dict[str, Any]]) -> int:
    """Apply per-row changes to rows still leased to ``owner`` and still sending.

    Every dict has ``b_id`` and the same keys. Returns how many rows changed."""
    if not changes:
        return 0
    keys = [k for k in changes[0] if k != "b_id"]
    return await update_rows(
        session,
        owner,
        [c["b_id"] for c in changes],
        each={k: [c[k] for c in changes] for k in keys},
    )


async def update_rows(
    session: AsyncSession,
    owner: str,
    ids: Sequence[int],
    *,
    same: Mapping[str, Any] | None = None,
    each: Mapping[str, Sequence[Any]] | None = None,
) -> int:
    """Set columns of the rows ``ids`` that are still leased to ``owner`` and still sending:
    ``same`` gives a value for every row, ``each`` one value per row (in ``ids`` order).

    One prepared statement is run for every row by the driver (executemany); a value that is
    the same for every row is converted for the database once. Returns how many rows changed."""
    n = len(ids)
    if not n:
        return 0
    same, each = same or {}, each or {}
    conn = await session.connection()
    dialect = conn.dialect
    if dialect.name == "sqlite":
        return await _update_rows_sqlite(conn, owner, ids, same, each)
    sql, order, processors = _sending_update(dialect, tuple(sorted(same)), tuple(sorted(each)))
    columns: list[Sequence[Any]] = []
    for name in order:
        if name == "b_id":
            columns.append(ids)
        elif name == "b_owner":
            columns.append([owner] * n)
        else:
            key = name[2:]
            process = processors.get(name)
            if key in same:
                value = same[key]
                columns.append([process(value) if process else value] * n)
            else:
                values = each[key]
                columns.append([process(v) for v in values] if process else values)
    rowcount = await _run_many(conn, sql, list(zip(*columns, strict=True)))
    return rowcount if rowcount >= 0 else n


async def _update_rows_sqlite(
    conn: AsyncConnection,
    owner: str,
    ids: Sequence[int],
    same: Mapping[str, Any],
    each: Mapping[str, Sequence[Any]],
) -> int:
    """:func:`update_rows` on SQLite: one statement for all rows, their ids and per-row values
    passed as one JSON array (``UPDATE … FROM json_each``). An executemany would hand the
    connection's thread back and forth with the event loop once per row."""
    dialect = conn.dialect
    same_keys, each_keys = tuple(sorted(same)), tuple(sorted(each))
    sql, processors = _sqlite_update(dialect, same_keys, each_keys)
    params: list[Any] = []
    for key in same_keys:
        process = processors.get(key)
        params.append(process(same[key]) if process else same[key])
    columns: list[Sequence[Any]] = [ids]
    for key in each_keys:
        process = processors.get(key)
        columns.append([process(v) for v in each[key]] if process else each[key])
    rows = list(zip(*columns, strict=True)) if each_keys else [[i] for i in ids]
    params += [json.dumps(rows, separators=(",", ":")), owner]
    driver = (await conn.get_raw_connection()).driver_connection
    cursor = await driver.execute(sql, params)
    rowcount = cursor.rowcount
    await cursor.close()
    return int(rowcount) if rowcount >= 0 else len(ids)


_SQLITE_UPDATES: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[str, dict[str, Any]]] = {}


def _sqlite_update(
    dialect: Any, same: tuple[str, ...], each: tuple[str, ...]
) -> tuple[str, dict[str, Any]]:
    found = _SQLITE_UPDATES.get((same, each))
    if found is not None:
        return found
    for key in same + each:
        if key not in TABLE.c or key == "id":
            raise ValueError(f"{key!r} is not a column that can be set")
    sets = [f"{key} = ?" for key in same]
    sets += [f"{key} = json_extract(j.value, '$[{i}]')" for i, key in enumerate(each, start=1)]
    # Column names come from the table definition (checked above), never from data.
    sql = (
        f"UPDATE deliveries SET {', '.join(sets)} FROM json_each(?) AS j "  # noqa: S608
        "WHERE deliveries.id = json_extract(j.value, '$[0]') "
        "AND deliveries.lease_owner = ? AND deliveries.state = 'sending'"
    )
    processors: dict[str, Any] = {}
    for key in same + each:
        process = TABLE.c[key].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[key] = process
    found = _SQLITE_UPDATES[(same, each)] = (sql, processors)
    return found


_SENDING_UPDATES: dict[tuple[Any, ...], tuple[str, list[str], dict[str, Any]]] = {}


def _sending_update(
    dialect: Any, same: tuple[str, ...], each: tuple[str, ...]
) -> tuple[str, list[str], dict[str, Any]]:
    """``UPDATE deliveries SET <columns> WHERE id = ? AND lease_owner = ? AND state = 'sending'``
    compiled for ``dialect``: its text, the order of its parameters, and their converters."""
    keys = same + each
    cache_key = (dialect.name, dialect.driver, same, each)
    found = _SENDING_UPDATES.get(cache_key)
    if found is not None:
        return found
    stmt = (
        update(TABLE)
        .where(
            and_(
                TABLE.c.id == bindparam("b_id"),
                TABLE.c.lease_owner == bindparam("b_owner"),
                TABLE.c.state == literal_column("'sending'"),
            )
        )
        .values({k: bindparam(f"v_{k}") for k in keys})
    )
    compiled = stmt.compile(dialect=dialect)
    require_positional(dialect, compiled)
    order = list(compiled.positiontup)
    processors: dict[str, Any] = {}
    for name in order:
        if name.startswith("v_"):
            column_type = TABLE.c[name[2:]].type
            process = column_type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
    found = _SENDING_UPDATES[cache_key] = (compiled.string, order, processors)
    return found


# Sent rows still waiting for a receipt: the terms of the partial index ix_deliveries_awaiting,
# as literals (a bound parameter would not let SQLite use the index).
AWAITING_RECEIPT = and_(Delivery.state == literal_column("'sent'"), Delivery.final_at.is_(None))


async def release_expired_leases(db: Database) -> int:
    """Rows whose worker died (lease ran out) go back to the queue; the gateway's idempotency
    key (the delivery id) makes a second send harmless."""
    now = utcnow()
    async with db.session() as session:
        result = await session.execute(
            update(Delivery)
            # A literal state, so that the partial index ix_deliveries_leased applies.
            .where(Delivery.state == literal_column("'sending'"), Delivery.lease_until < now)
            .values(state="queued", lease_owner=None, lease_until=None, next_attempt_at=now)
        )
        return result.rowcount or 0


async def stop_open(session: AsyncSession, warning_id: str, state: str, reason: str) -> int:
    """Stop every delivery of a warning that has not left yet (cancel or expiry)."""
    result = await session.execute(
        update(Delivery)
        .where(Delivery.warning_id == warning_id, Delivery.state.in_(("planned", "queued")))
        .values(state=state, final_at=utcnow(), last_error=reason, lease_owner=None)
    )
    return result.rowcount or 0


async def open_count(session: AsyncSession, warning_id: str) -> int:
    q = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.warning_id == warning_id, Delivery.state.in_(OPEN_STATES))
    )
    return int((await session.execute(q)).scalar_one())
