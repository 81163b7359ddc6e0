"""The outbox: every SQL statement that writes or claims delivery rows.

Persist, then send: plan rows are committed before any worker can claim them; a claim leases
rows to one worker in one statement; results are recorded only for rows still leased to the
recording worker and still ``sending`` (a cancelled or re-leased row is left alone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.targeting import Target
from warnpub.clock import utcnow
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery

# Channels that reach one person; speaker and board reach a village through its devices.
PERSON_CHANNELS = frozenset({"sms", "email", "voice", "relay"})
DEVICE_CHANNELS = frozenset({"speaker", "board"})
OPEN_STATES = ("planned", "queued", "sending")
FINAL_STATES = ("delivered", "failed", "expired", "cancelled")

TABLE = Delivery.__table__  # type: ignore[attr-defined]


def route_text(route: Sequence[Sequence[str]]) -> str:
    return "|".join("+".join(stage) for stage in route)


def parse_route(text: str) -> list[tuple[str, ...]]:
    return [tuple(stage.split("+")) for stage in text.split("|")] if text else []


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
    """Rows for the first step at or after ``start`` that reaches this target directly.

    For a person, steps made only of village devices (speaker, board) are covered by the
    devices' own deliveries and skipped; for a device, its one channel is the step. A channel
    with no configured instance (not in ``available``) gets a ``failed`` row saying so, and
    when a whole step is unavailable the next step is planned at once.
    """
    allowed = DEVICE_CHANNELS if kind == "device" else PERSON_CHANNELS
    text = route_text(route)
    rows: list[dict[str, Any]] = []
    for stage in range(start, len(route)):
        channels = [c for c in route[stage] if c in allowed]
        live = [c for c in channels if available is None or c in available]
        for c in channels:
            missing = c not in live
            rows.append(
                {
                    "warning_id": warning_id,
                    "target_kind": kind,
                    "target_id": target_id,
                    "channel": c,
                    "stage": stage,
                    "route": text,
                    "tier": tier,
                    "priority": priority,
                    "area_code": area_code,
                    "language": language,
                    "ack_required": ack,
                    "state": "failed" if missing else "queued",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "last_error": f"no {c} channel is configured" if missing else "",
                    "created_at": now,
                    "final_at": now if missing else None,
                }
            )
        if live:
            break
    return rows


def plan_rows(
    warning_id: str,
    targets: Iterable[Target],
    now: datetime,
    available: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for t in targets:
        rows += stage_rows(
            warning_id,
            t.kind,
            t.id,
            t.route,
            0,
            tier=t.tier,
            priority=t.priority,
            area_code=t.area_code,
            language=t.language,
            ack=t.ack_required,
            now=now,
            available=available,
        )
    return rows


async def insert_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert delivery rows, skipping any that exist (a resumed plan writes each row once)."""
    if not rows:
        return
    dialect = session.bind.dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(TABLE).on_conflict_do_nothing(
        index_elements=["warning_id", "target_kind", "target_id", "channel"]
    )
    await session.execute(stmt, rows)


@dataclass(frozen=True, slots=True)
class Claimed:
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


CLAIM_COLUMNS = [getattr(Delivery, f) for f in Claimed.__slots__]  # type: ignore[attr-defined]


async def claim(
    db: Database, channel: str, owner: str, gateway: str, limit: int, lease_s: float
) -> list[Claimed]:
    """Lease up to ``limit`` due rows of ``channel`` to ``owner``, highest priority first."""
    now = utcnow()
    due = (
        select(Delivery.id)
        .where(
            Delivery.channel == channel, Delivery.state == "queued", Delivery.next_attempt_at <= now
        )
        .order_by(Delivery.priority, Delivery.id)
        .limit(limit)
    )
    if db.dialect == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(Delivery)
        .where(Delivery.id.in_(due.scalar_subquery()))
        .values(
            state="sending",
            lease_owner=owner,
            gateway=gateway,
            lease_until=now + timedelta(seconds=lease_s),
            attempts=Delivery.attempts + 1,
        )
        .returning(*CLAIM_COLUMNS)
    )
    async with db.session() as session:
        rows = (await session.execute(stmt)).all()
    return sorted((Claimed(*r) for r in rows), key=lambda c: (c.priority, c.id))


async def update_many(session: AsyncSession, owner: str, changes: list[dict[str, Any]]) -> int:
    """Apply per-row changes to rows still leased to ``owner`` and still sending.

    Every dict has ``b_id`` and the same keys. Returns how many rows changed."""
    if not changes:
        return 0
    keys = [k for k in changes[0] if k != "b_id"]
    stmt = (
        update(TABLE)
        .where(
            and_(
                TABLE.c.id == bindparam("b_id"),
                TABLE.c.lease_owner == owner,
                TABLE.c.state == "sending",
            )
        )
        .values({k: bindparam(f"v_{k}") for k in keys})
    )
    params = [{"b_id": c["b_id"], **{f"v_{k}": c[k] for k in keys}} for c in changes]
    result = await session.execute(stmt, params)
    return result.rowcount if result.rowcount is not None and result.rowcount >= 0 else len(params)


async def release_expired_leases(db: Database) -> int:
    """Rows whose worker died (lease ran out) go back to the queue; the gateway's idempotency
    key (the delivery id) makes a second send harmless."""
    now = utcnow()
    async with db.session() as session:
        result = await session.execute(
            update(Delivery)
            .where(Delivery.state == "sending", Delivery.lease_until < now)
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
