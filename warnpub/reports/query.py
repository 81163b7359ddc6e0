"""The report's SQL: every count is aggregated by the database (GROUP BY), never in Python.

The heart is :func:`per_target`: the deliveries of one warning grouped by target and channel,
with one flag per outcome, kept in a temporary table (:func:`condensed`) and grouped once more
by target. Every breakdown groups those rows again by its key, so a million delivery rows are
read twice and come back as a few hundred numbers. The same statements run on SQLite and
PostgreSQL: constants that appear in both the select list and GROUP BY are written inline
(bound parameters would differ and PostgreSQL would refuse the grouping), bitwise AND is ``&``
on both.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Integer,
    Select,
    String,
    TableClause,
    and_,
    case,
    cast,
    column,
    func,
    literal_column,
    not_,
    or_,
    select,
    table,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.needs import Need
from warnpub.audiences.tables import Area, Device, Person
from warnpub.dispatch.outbox import FINAL_STATES
from warnpub.reports.model import Counts
from warnpub.storage.tables import Delivery
from warnpub.storage.types import UTCDateTime

D = Delivery.__table__  # type: ignore[attr-defined]
P = Person.__table__  # type: ignore[attr-defined]
DEV = Device.__table__  # type: ignore[attr-defined]
A = Area.__table__  # type: ignore[attr-defined]

# A delivery is final once it is delivered, failed, expired or cancelled, or sent over a
# channel that gives no receipt (``sent`` with ``final_at`` set, e.g. e-mail).
FINAL = or_(D.c.state.in_(FINAL_STATES), and_(D.c.state == "sent", D.c.final_at.is_not(None)))
# A delivery reaches its target when it is delivered, or the target acknowledged it.
REACHES = or_(D.c.state == "delivered", D.c.acknowledged_at.is_not(None))
WAS_SENT = or_(D.c.sent_at.is_not(None), D.c.state.in_(("sent", "delivered")))
# When it reached: the receipt (final_at) of a delivered row, else the acknowledgement.
REACHED_AT = case(
    (D.c.state == "delivered", func.coalesce(D.c.final_at, D.c.sent_at, D.c.acknowledged_at)),
    (D.c.acknowledged_at.is_not(None), D.c.acknowledged_at),
)


def _any(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 when the condition holds for any row of the group, else 0."""
    return func.max(case((condition, 1), else_=0))


def _time(expr: ColumnElement[Any]) -> ColumnElement[datetime]:
    # MIN/MAX of a datetime come back typed, so SQLite's text is read as aware UTC.
    return type_coerce(expr, UTCDateTime)


FLAGS = ("sent", "reached", "acked", "ack_expected", "open")
# A forgotten person (warnpub.audiences.forget) has no row in ``people`` any more: its
# deliveries point at the negative of its old id and their ``route`` is ``forgotten:<needs>``,
# the only thing kept of it, so that the counts per needs group stay what they were.
FORGOTTEN_ROUTE = "forgotten:"
FORGOTTEN_NEEDS = func.max(
    case(
        (
            func.substr(D.c.route, literal_column("1"), literal_column(str(len(FORGOTTEN_ROUTE))))
            == literal_column(f"'{FORGOTTEN_ROUTE}'"),
            cast(func.substr(D.c.route, literal_column(str(len(FORGOTTEN_ROUTE) + 1))), Integer),
        ),
    )
)


def per_target(warning_id: str, *, by_channel: bool = False) -> Select[Any]:
    """One row per target (per target and channel with ``by_channel``) of one warning."""
    keys = [D.c.target_kind.label("kind"), D.c.target_id.label("tid")]
    if by_channel:
        keys.append(D.c.channel.label("channel"))
    return (
        select(
            *keys,
            func.min(D.c.tier).label("tier"),
            func.min(D.c.area_code).label("area_code"),
            _any(WAS_SENT).label("sent"),
            _any(REACHES).label("reached"),
            _any(D.c.acknowledged_at.is_not(None)).label("acked"),
            _any(D.c.ack_required).label("ack_expected"),
            _any(not_(FINAL)).label("open"),
            _time(func.min(D.c.sent_at)).label("sent_at"),
            _time(func.min(REACHED_AT)).label("reached_at"),
            _time(func.max(D.c.acknowledged_at)).label("acked_at"),
            FORGOTTEN_NEEDS.label("fneeds"),
        )
        # Notices (escalation alerts, answers to replies) are about a warning, not its targets.
        .where(D.c.warning_id == warning_id, D.c.target_kind != "notice")
        .group_by(*[D.c.target_kind, D.c.target_id] + ([D.c.channel] if by_channel else []))
    )


def regroup(tc: FromClause) -> Select[Any]:
    """Per target, from the per-target-and-channel rows (every column combines exactly)."""
    return select(
        tc.c.kind,
        tc.c.tid,
        func.min(tc.c.tier).label("tier"),
        func.min(tc.c.area_code).label("area_code"),
        *[func.max(tc.c[f]).label(f) for f in FLAGS],
        _time(func.min(tc.c.sent_at)).label("sent_at"),
        _time(func.min(tc.c.reached_at)).label("reached_at"),
        _time(func.max(tc.c.acked_at)).label("acked_at"),
        func.max(tc.c.fneeds).label("fneeds"),
    ).group_by(tc.c.kind, tc.c.tid)


def _shape(name: str, *, by_channel: bool) -> TableClause:
    keys = [column("kind", String), column("tid", Integer)]
    if by_channel:
        keys.append(column("channel", String))
    return table(
        name,
        *keys,
        column("tier", Integer),
        column("area_code", String),
        *[column(f, Integer) for f in FLAGS],
        column("sent_at", UTCDateTime),
        column("reached_at", UTCDateTime),
        column("acked_at", UTCDateTime),
        column("fneeds", Integer),
    )


@dataclass(frozen=True, slots=True)
class Sources:
    """The warning's deliveries condensed once: per target, and per target and channel."""

    targets: FromClause
    channels: FromClause


@asynccontextmanager
async def condensed(session: AsyncSession, warning_id: str) -> AsyncIterator[Sources]:
    """Temporary tables of the per-target rows, so that the deliveries are grouped twice (by
    target and channel, then by target) instead of once per breakdown, and every breakdown
    reads the same rows. They belong to the session's connection and are dropped at the end
    (PostgreSQL: when the transaction ends)."""
    conn = await session.connection()
    dialect = conn.dialect
    suffix = uuid.uuid4().hex[:12]
    by_channel = _shape(f"wp_report_tc_{suffix}", by_channel=True)
    by_target = _shape(f"wp_report_t_{suffix}", by_channel=False)
    on_commit = " ON COMMIT DROP" if dialect.name == "postgresql" else ""

    async def create(name: str, stmt: Select[Any]) -> None:
        # The statements hold no input but the warning id (a stored id, quoted by the dialect).
        body = stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        await conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name}{on_commit} AS {body}")

    await create(by_channel.name, per_target(warning_id, by_channel=True))
    try:
        await create(by_target.name, regroup(by_channel))
        yield Sources(by_target, by_channel)
    finally:
        # PostgreSQL drops them at commit (a streamed cursor may hold them until then);
        # SQLite keeps temporary tables for the connection's life.
        if dialect.name != "postgresql":
            for name in (by_target.name, by_channel.name):
                await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")


def _unreached(t: FromClause) -> ColumnElement[bool]:
    return and_(t.c.reached == 0, t.c.open == 0)


def _sums(t: FromClause) -> list[ColumnElement[Any]]:
    return [
        func.count().label("targeted"),
        func.sum(t.c.sent).label("sent"),
        func.sum(t.c.reached).label("delivered"),
        func.sum(t.c.acked).label("acknowledged"),
        func.sum(case((_unreached(t), 1), else_=0)).label("unreached"),
        func.sum(t.c.ack_expected).label("ack_expected"),
    ]


def _counts(row: Any) -> Counts:
    return Counts(
        targeted=int(row.targeted or 0),
        sent=int(row.sent or 0),
        delivered=int(row.delivered or 0),
        acknowledged=int(row.acknowledged or 0),
        unreached=int(row.unreached or 0),
        ack_expected=int(row.ack_expected or 0),
    )


@dataclass(slots=True)
class Totals:
    """Counts of one kind of target (person or device) and its first and last moments."""

    counts: Counts
    first_sent: datetime | None
    first_delivered: datetime | None
    last_delivered: datetime | None
    last_acknowledged: datetime | None


async def totals(session: AsyncSession, src: Sources) -> dict[str, Totals]:
    """By target kind ("person", "device")."""
    t = src.targets
    stmt = select(
        t.c.kind,
        *_sums(t),
        _time(func.min(t.c.sent_at)).label("first_sent"),
        _time(func.min(t.c.reached_at)).label("first_delivered"),
        _time(func.max(t.c.reached_at)).label("last_delivered"),
        _time(func.max(t.c.acked_at)).label("last_acknowledged"),
    ).group_by(t.c.kind)
    out: dict[str, Totals] = {}
    for row in await session.execute(stmt):
        out[row.kind] = Totals(
            _counts(row),
            row.first_sent,
            row.first_delivered,
            row.last_delivered,
            row.last_acknowledged,
        )
    return out


async def _grouped(session: AsyncSession, stmt: Select[Any]) -> dict[Any, Counts]:
    rows = await session.execute(stmt)
    return {row.key: _counts(row) for row in rows}


async def by_town(session: AsyncSession, src: Sources) -> dict[str, Counts]:
    """By town: the first nine digits of the target's area code, written out to 12."""
    t = src.targets
    key = func.substr(t.c.area_code, literal_column("1"), literal_column("9")).concat(
        literal_column("'000'")
    )
    stmt = select(key.label("key"), *_sums(t)).group_by(key)
    return await _grouped(session, stmt)


async def by_village(session: AsyncSession, src: Sources) -> dict[str, Counts]:
    t = src.targets
    stmt = select(t.c.area_code.label("key"), *_sums(t)).group_by(t.c.area_code)
    return await _grouped(session, stmt)


async def by_tier(session: AsyncSession, src: Sources) -> dict[int, Counts]:
    t = src.targets
    stmt = select(t.c.tier.label("key"), *_sums(t)).group_by(t.c.tier)
    return await _grouped(session, stmt)


async def by_channel(session: AsyncSession, src: Sources) -> dict[str, Counts]:
    """By channel: a target counts in the row of every channel it was tried on."""
    t = src.channels
    stmt = select(t.c.channel.label("key"), *_sums(t)).group_by(t.c.channel)
    return await _grouped(session, stmt)


NO_NEEDS = 0


async def by_needs(session: AsyncSession, src: Sources) -> dict[int, Counts]:
    """People by need flag (a person with two needs counts in both rows); 0 = no special needs.

    The flags are a small derived table (``SELECT 1 AS bit UNION ALL …``) joined with
    ``needs & bit``, so one statement counts every group. A forgotten person counts with the
    needs its deliveries kept (``fneeds``)."""
    t = src.targets
    bits = union_all(
        *(select(literal_column(str(int(b))).label("bit")) for b in (NO_NEEDS, *Need))
    ).subquery("n")
    needs = func.coalesce(P.c.needs, t.c.fneeds, type_=Integer)
    joined = t.outerjoin(P, and_(t.c.kind == "person", P.c.id == t.c.tid)).join(
        bits,
        or_(
            needs.bitwise_and(bits.c.bit) != 0,
            and_(bits.c.bit == NO_NEEDS, needs == 0),
        ),
    )
    stmt = (
        select(bits.c.bit.label("key"), *_sums(t))
        .select_from(joined)
        .where(t.c.kind == "person")
        .group_by(bits.c.bit)
    )
    return await _grouped(session, stmt)


async def area_names(session: AsyncSession, codes: Sequence[str]) -> dict[str, str]:
    if not codes:
        return {}
    rows = await session.execute(select(A.c.code, A.c.name).where(A.c.code.in_(list(codes))))
    return {code: name for code, name in rows}


@dataclass(frozen=True, slots=True)
class Ranked:
    tier: int
    rank_all: int
    rank_tier: int
    at: datetime


async def ranked_times(
    session: AsyncSession, src: Sources, ranks_all: set[int], ranks_tier: set[int]
) -> list[Ranked]:
    """The times targets were reached, at chosen ranks: overall (the k-th target reached of
    all) and within each tier. One window query; only the asked-for ranks come back."""
    if not ranks_all and not ranks_tier:
        return []
    t = src.targets
    order = (t.c.reached_at, t.c.kind, t.c.tid)
    r = (
        select(
            t.c.tier,
            t.c.reached_at,
            func.row_number().over(order_by=order).label("rank_all"),
            func.row_number().over(partition_by=t.c.tier, order_by=order).label("rank_tier"),
        )
        .where(t.c.reached_at.is_not(None))
        .subquery("r")
    )
    conditions = []
    if ranks_all:
        conditions.append(r.c.rank_all.in_(sorted(ranks_all)))
    if ranks_tier:
        conditions.append(r.c.rank_tier.in_(sorted(ranks_tier)))
    stmt = select(r.c.tier, r.c.rank_all, r.c.rank_tier, _time(r.c.reached_at).label("at")).where(
        or_(*conditions)
    )
    return [
        Ranked(int(row.tier), int(row.rank_all), int(row.rank_tier), row.at)
        for row in await session.execute(stmt)
    ]


UNREACHED_BATCH = 1000


@dataclass(frozen=True, slots=True)
class UnreachedRow:
    """One delivery of an unreached target, with the target's own columns."""

    kind: str
    target_id: int
    tier: int
    area_code: str
    area_name: str | None
    channel: str
    stage: int
    state: str
    attempts: int
    error: str
    person_name: str | None
    person_external_id: str | None
    role: str | None
    needs: int | None
    phone: str | None
    relay_name: str | None
    device_name: str | None
    device_external_id: str | None
    device_kind: str | None


async def unreached_rows(
    session: AsyncSession,
    warning_id: str,
    limit: int | None = None,
    src: Sources | None = None,
) -> AsyncIterator[UnreachedRow]:
    """The deliveries of every unreached target, target by target (ordered by area, tier,
    kind, id), streamed in batches: a drill of a million people is never held in memory.
    With ``limit``, at most that many targets; with ``src``, read from its condensed rows."""
    t = src.targets if src is not None else per_target(warning_id).subquery("t")
    targets = select(t.c.kind, t.c.tid, t.c.tier, t.c.area_code, t.c.fneeds).where(_unreached(t))
    if limit is not None:
        targets = targets.order_by(t.c.area_code, t.c.tier, t.c.kind, t.c.tid).limit(limit)
    u = targets.subquery("u")
    relay = P.alias("relay")
    stmt = (
        select(
            u.c.kind,
            u.c.tid,
            u.c.tier,
            u.c.area_code,
            A.c.name.label("area_name"),
            D.c.channel,
            D.c.stage,
            D.c.state,
            D.c.attempts,
            D.c.last_error,
            P.c.name.label("person_name"),
            P.c.external_id.label("person_external_id"),
            P.c.role,
            func.coalesce(P.c.needs, u.c.fneeds, type_=Integer).label("needs"),
            P.c.phone,
            relay.c.name.label("relay_name"),
            DEV.c.name.label("device_name"),
            DEV.c.external_id.label("device_external_id"),
            DEV.c.kind.label("device_kind"),
        )
        .select_from(
            u.join(
                D,
                and_(
                    D.c.warning_id == warning_id,
                    D.c.target_kind == u.c.kind,
                    D.c.target_id == u.c.tid,
                ),
            )
            .outerjoin(P, and_(u.c.kind == "person", P.c.id == u.c.tid))
            .outerjoin(relay, relay.c.id == P.c.relay_contact_id)
            .outerjoin(DEV, and_(u.c.kind == "device", DEV.c.id == u.c.tid))
            .outerjoin(A, A.c.code == u.c.area_code)
        )
        .order_by(u.c.area_code, u.c.tier, u.c.kind, u.c.tid, D.c.stage, D.c.channel)
    )
    result = await session.stream(stmt.execution_options(yield_per=UNREACHED_BATCH))
    try:
        async for batch in result.partitions(UNREACHED_BATCH):
            for row in batch:
                yield UnreachedRow(
                    kind=row.kind,
                    target_id=int(row.tid),
                    tier=int(row.tier),
                    area_code=row.area_code,
                    area_name=row.area_name,
                    channel=row.channel,
                    stage=int(row.stage),
                    state=row.state,
                    attempts=int(row.attempts),
                    error=row.last_error or "",
                    person_name=row.person_name,
                    person_external_id=row.person_external_id,
                    role=row.role,
                    needs=row.needs,
                    phone=row.phone,
                    relay_name=row.relay_name,
                    device_name=row.device_name,
                    device_external_id=row.device_external_id,
                    device_kind=row.device_kind,
                )
    finally:
        await result.close()
