"""Targeting: who must be reached for a warning, in priority order, each with a route.

:meth:`Targeter.batches` streams targets tier by tier (devices first by default, then special
needs, village contacts, rural and urban residents), one SQL query per tier read in chunks,
so the first targets arrive at once and memory stays bounded however large the population.
Batches, not single targets, cross the async boundary: a city of a million people is a few
hundred hand-offs instead of a million. :func:`resolve` flattens them for callers that want
one target at a time.

Drills (CAP status ``Exercise``) reach only their drill audience (:mod:`warnpub.drills.audience`):
everyone in the areas, only the people who consented (and the areas' devices), or a list of
people. Partner systems get no drills. With ``[dispatch] priority_order = "fifo"`` there are
no tiers first: every target of a warning gets the same priority and people are read in one
query, in area order (targets still carry their tier, so reports can compare the two).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from warnpub import gc_tuning
from warnpub.audiences.divisions import significant_prefix
from warnpub.audiences.priority import (
    MAX_LISTED,
    PERSON_GROUPS,
    RURAL_CLASSES,
    AreaSplit,
    priority,
    tier_of,
    tier_sql,
)
from warnpub.audiences.routes import Reach, Route, RouteChoice, RoutePolicy
from warnpub.audiences.tables import Area, Device, Person
from warnpub.config import Settings
from warnpub.drills.audience import DrillAudience, from_stored
from warnpub.review.policy import LEVEL_RANK
from warnpub.storage.tables import WarningArea, WarningRecord

DEVICE_CHANNEL = {"speaker_group": "speaker", "board_digital": "board", "board_paper": "board"}
STREAM_CHUNK = 5000
# The first read of each query is small, so the first targets of a tier (the special-needs
# people at the head of a plan) are handed on before thousands more are read.
FIRST_FETCH = 256
PARTNER = RouteChoice("partner", (("webhook",),), True)


def partner_id(name: str) -> int:
    """The target id of a partner system's deliveries: a stable number from its instance
    name (the dispatcher refuses two partners whose numbers collide)."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


class Target(NamedTuple):
    """One person or device to reach, with its tier and route.

    A named tuple rather than a frozen dataclass: a city makes a million of these, and a
    tuple is built several times faster.
    """

    kind: str  # "person" | "device"
    id: int
    area_code: str
    tier: int
    tier_name: str
    priority: int
    choice: RouteChoice
    ack_required: bool = False
    needs: int = 0
    role: str = ""
    language: str = "zh-CN"

    @property
    def rule(self) -> str:
        return self.choice.rule

    @property
    def route(self) -> Route:
        return self.choice.route

    @property
    def works(self) -> bool:
        return self.choice.works


@dataclass(frozen=True, slots=True)
class Scope:
    """What a warning targets: division codes, its level and, for a drill, its audience."""

    codes: tuple[str, ...]
    level: str
    # None: not a drill. A drill's audience with kind None takes [drills] audience.
    drill: DrillAudience | None = None

    @classmethod
    async def of(cls, session: AsyncSession, warning: WarningRecord) -> Scope:
        query = select(WarningArea.code).where(WarningArea.warning_id == warning.id)
        codes = tuple(sorted((await session.execute(query)).scalars()))
        return cls(codes, warning.level, from_stored(warning.status, warning.alert))


def merged_prefixes(codes: Iterable[str]) -> list[str]:
    """Significant prefixes, dropping any already covered by a shorter one."""
    out: list[str] = []
    for prefix in sorted({significant_prefix(c) for c in codes}, key=len):
        if not any(prefix.startswith(p) for p in out):
            out.append(prefix)
    return sorted(out)


def in_areas(column: Any, prefixes: list[str]) -> Any:
    """``column`` lies under one of ``prefixes``: index-friendly ranges, not LIKE."""
    return or_(*[and_(column >= p.ljust(12, "0"), column <= p.ljust(12, "9")) for p in prefixes])


class Targeter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tiers = settings.audiences.tiers
        self.policy = RoutePolicy(settings.audiences.routes)
        self.ack_roles = frozenset(settings.audiences.ack_required.roles)
        self.ack_levels = frozenset(settings.audiences.ack_required.levels)
        self.fifo = settings.dispatch.priority_order == "fifo"

    async def batches(self, session: AsyncSession, scope: Scope) -> AsyncIterator[list[Target]]:
        """Lists of targets in priority order; never empty lists."""
        prefixes = merged_prefixes(scope.codes)
        if not prefixes:
            return
        with gc_tuning.bulk_allocation():
            async for batch in self._batches(session, scope, prefixes):
                yield batch

    async def _batches(
        self, session: AsyncSession, scope: Scope, prefixes: list[str]
    ) -> AsyncIterator[list[Target]]:
        rank = LEVEL_RANK[scope.level]
        drill = scope.drill.resolved(self.settings.drills.audience) if scope.drill else None
        if drill is not None and drill.kind == "list" and not drill.people:
            return
        # Partner systems broadcast to many: a drill stays within its audience.
        partners = self._partners(prefixes[0].ljust(12, "0"), rank) if drill is None else []
        if partners:
            yield partners
        # A listed drill reaches the listed people only: no devices, and no route step that
        # counts on the village's devices playing.
        listed = drill is not None and drill.kind == "list"
        devices = [] if listed else await self._devices(session, prefixes)
        kinds_in: dict[str, set[str]] = {}
        for d in devices:
            kinds_in.setdefault(d.area_code, set()).add(DEVICE_CHANNEL.get(d.kind, d.kind))
        opt_out = scope.level in self.settings.audiences.opt_out_levels
        # Who is asked to acknowledge: the configured roles, at the configured levels.
        ack_roles = self.ack_roles if scope.level in self.ack_levels else frozenset()
        people = _drill_filter(drill)
        if self.fifo:
            if devices:
                index = self.tiers.index("devices")
                yield [self._device_target(d, index, rank, fifo=True) for d in devices]
            async for batch in self._everyone(
                session, prefixes, rank, kinds_in, opt_out, people, ack_roles
            ):
                yield batch
            return
        split = await self._split(session, prefixes)
        for index, group in enumerate(self.tiers):
            if group == "devices":
                if devices:
                    yield [self._device_target(d, index, rank) for d in devices]
                continue
            async for batch in self._people(
                session, prefixes, split, index, rank, kinds_in, opt_out, people, ack_roles
            ):
                yield batch

    def _partners(self, area_code: str, rank: int) -> list[Target]:
        """One target per configured partner system (``[[channels.webhook]]``): TV, radio and
        messaging bridges pass a warning on to many people at once, so they go first."""
        names = [str(e.get("name", "")) for e in self.settings.channels.get("webhook", [])]
        return [
            Target("partner", partner_id(n), area_code, 0, "partners", priority(0, rank), PARTNER)
            for n in names
            if n
        ]

    def _device_target(self, d: Device, index: int, rank: int, *, fifo: bool = False) -> Target:
        channel = DEVICE_CHANNEL.get(d.kind, d.kind)
        choice = RouteChoice(d.kind, ((channel,),), True)
        prio = priority(0, rank) if fifo else priority(index, rank)
        return Target("device", d.id or 0, d.area_code, index, "devices", prio, choice)

    async def _split(self, session: AsyncSession, prefixes: list[str]) -> AreaSplit:
        codes = (
            await session.execute(
                select(Area.code, Area.urban_rural).where(in_areas(Area.code, prefixes))
            )
        ).all()
        if len(codes) > MAX_LISTED:
            return AreaSplit()
        rural = tuple(c for c, ur in codes if ur in RURAL_CLASSES)
        return AreaSplit(rural, tuple(c for c, ur in codes if ur not in RURAL_CLASSES))

    async def _devices(self, session: AsyncSession, prefixes: list[str]) -> list[Device]:
        stmt = (
            select(Device)
            .where(Device.active.is_(True), in_areas(Device.area_code, prefixes))
            .order_by(Device.area_code, Device.id)
        )
        return list((await session.execute(stmt)).scalars())

    async def _people(
        self,
        session: AsyncSession,
        prefixes: list[str],
        split: AreaSplit,
        index: int,
        rank: int,
        kinds_in: dict[str, set[str]],
        honour_opt_out: bool,
        only: Any = None,
        ack_roles: frozenset[str] = frozenset(),
    ) -> AsyncIterator[list[Target]]:
        group = self.tiers[index]
        assert group in PERSON_GROUPS
        stmt = (
            select(
                Person.id,
                Person.area_code,
                Person.needs,
                Person.role,
                Person.language,
                Person.phone.is_not(None),
                Person.email.is_not(None),
                Person.relay_contact_id.is_not(None),
            )
            .where(in_areas(Person.area_code, prefixes), tier_sql(self.tiers, index, split))
            .order_by(Person.area_code)
        )
        if honour_opt_out:
            stmt = stmt.where(Person.opt_out.is_(False))
        if only is not None:
            stmt = stmt.where(only)
        prio, choose = priority(index, rank), self.policy.choose
        # A million people fall into a few thousand distinct situations: choose each route
        # once, and build each target from its situation's shared fields (tuple.__new__
        # straight away: the named tuple's own constructor costs a Python call per person).
        chosen: dict[tuple[object, ...], tuple[RouteChoice, bool]] = {}
        new = tuple.__new__
        async for rows in prefetched(session, stmt):
            batch = []
            append = batch.append
            for pid, area, needs, role, language, phone, email, relay in rows:
                key = (needs, role, phone, email, relay, area)
                found = chosen.get(key)
                if found is None:
                    kinds = kinds_in.get(area, ())
                    reach = Reach(
                        bool(phone), bool(email), bool(relay), "speaker" in kinds, "board" in kinds
                    )
                    found = chosen[key] = (choose(needs, role, reach), role in ack_roles)
                append(
                    new(
                        Target,
                        (
                            "person", pid, area, index, group, prio, found[0], found[1], needs,
                            role, language,
                        ),
                    )
                )  # fmt: skip
            yield batch

    async def _everyone(
        self,
        session: AsyncSession,
        prefixes: list[str],
        rank: int,
        kinds_in: dict[str, set[str]],
        honour_opt_out: bool,
        only: Any = None,
        ack_roles: frozenset[str] = frozenset(),
    ) -> AsyncIterator[list[Target]]:
        """First come, first served (``priority_order = "fifo"``): every person in one query,
        in area order, all with the same priority; each still labelled with their tier."""
        classes = dict(
            (
                await session.execute(
                    select(Area.code, Area.urban_rural).where(in_areas(Area.code, prefixes))
                )
            ).all()
        )
        stmt = (
            select(
                Person.id,
                Person.area_code,
                Person.needs,
                Person.role,
                Person.language,
                Person.phone.is_not(None),
                Person.email.is_not(None),
                Person.relay_contact_id.is_not(None),
            )
            .where(in_areas(Person.area_code, prefixes))
            .order_by(Person.area_code)
        )
        if honour_opt_out:
            stmt = stmt.where(Person.opt_out.is_(False))
        if only is not None:
            stmt = stmt.where(only)
        prio, choose, tiers = priority(0, rank), self.policy.choose, self.tiers
        chosen: dict[tuple[object, ...], tuple[RouteChoice, bool, int]] = {}
        new = tuple.__new__
        async for rows in prefetched(session, stmt):
            batch = []
            append = batch.append
            for pid, area, needs, role, language, phone, email, relay in rows:
                key = (needs, role, phone, email, relay, area)
                found = chosen.get(key)
                if found is None:
                    kinds = kinds_in.get(area, ())
                    reach = Reach(
                        bool(phone), bool(email), bool(relay), "speaker" in kinds, "board" in kinds
                    )
                    tier = tier_of(tiers, needs=needs, role=role, urban_rural=classes.get(area))
                    found = chosen[key] = (choose(needs, role, reach), role in ack_roles, tier)
                tier = found[2]
                append(
                    new(
                        Target,
                        (
                            "person", pid, area, tier, tiers[tier], prio, found[0], found[1],
                            needs, role, language,
                        ),
                    )
                )  # fmt: skip
            yield batch


def _drill_filter(drill: DrillAudience | None) -> Any:
    """The people of a drill audience, as a condition over ``people`` (None: no condition)."""
    if drill is None or drill.kind == "area":
        return None
    if drill.kind == "consent":
        return Person.drill_consent.is_(True)
    return Person.external_id.in_(drill.people)


async def prefetched(session: AsyncSession, stmt: Select[Any]) -> AsyncIterator[Sequence[Any]]:
    """Chunks of rows (tuples), the next one read by the driver while the caller works on
    this one."""
    conn = await session.connection()
    if conn.dialect.name == "sqlite":
        async for rows in _prefetched_sqlite(conn, stmt):
            yield rows
        return
    result = await conn.stream(stmt.execution_options(yield_per=STREAM_CHUNK))
    pending = asyncio.ensure_future(result.fetchmany(FIRST_FETCH))
    try:
        while rows := await pending:
            pending = asyncio.ensure_future(result.fetchmany(STREAM_CHUNK))
            await asyncio.sleep(0)  # let the next read start before this chunk is worked on
            yield rows
    finally:
        if not pending.done():
            pending.cancel()
        await result.close()


async def _prefetched_sqlite(conn: AsyncConnection, stmt: Select[Any]) -> AsyncIterator[Any]:
    """:func:`prefetched` straight through the driver's cursor, on the session's own
    connection (so in its snapshot). SQLAlchemy's result rows cost more than the scan itself
    for a million people; the columns read here (integers and strings) need no conversion."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    positional = tuple(params[name] for name in compiled.positiontup or ())
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    cursor = await driver.execute(str(compiled), positional)
    pending = asyncio.ensure_future(cursor.fetchmany(FIRST_FETCH))
    try:
        while rows := await pending:
            pending = asyncio.ensure_future(cursor.fetchmany(STREAM_CHUNK))
            await asyncio.sleep(0)
            yield rows
    finally:
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
        await cursor.close()


async def resolve(
    session: AsyncSession, settings: Settings, warning: WarningRecord
) -> AsyncIterator[Target]:
    """Every target of ``warning``, one at a time, in priority order."""
    scope = await Scope.of(session, warning)
    async for batch in Targeter(settings).batches(session, scope):
        for target in batch:
            yield target
