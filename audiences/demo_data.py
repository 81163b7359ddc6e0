"""Synthetic demo and benchmark data over Liyang's real towns (``warnpub demo-data``).

Everything generated is marked: the villages are ``synthetic`` areas named ``…合成村07`` /
``…合成社区03`` with codes that real divisions rarely use (communities x101-x199, villages
x301-x399, skipping any code already stored), every person has the external id
``demo-NNNNNNN`` and the phone number ``+86 1700 NNN NNNN`` with the same sequence number, and
e-mail addresses are at ``example.com`` (RFC 2606). ``docs/demo-data.md`` gives the shares and
their basis.

Generation is deterministic: each village draws from its own random stream seeded by the seed
and the village code, so the same seed gives the same rows whatever the database holds.
People are written in chunks inside the one transaction (SQLite: the driver's ``executemany``
while the next chunk is being generated; PostgreSQL: ``COPY``), so memory stays bounded and a
million people take well under a minute.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from time import perf_counter
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.areas import liyang_csv, load_areas
from warnpub.audiences.needs import NEED_NAMES, Need
from warnpub.audiences.tables import Area, Device, Person
from warnpub.clock import utcnow
from warnpub.problems import Problem, invalid

Box = tuple[float, float, float, float]
"""West, south, east, north in degrees."""

CITY = "320481000000"  # 溧阳市
TOWN_LEVELS = ("subdistrict", "town", "township")
# A box around Liyang that the village grid fills.
BBOX: Box = (119.1, 31.2, 119.6, 31.7)
# Each village polygon leaves this fraction of its grid cell free on every side, so that
# neighbouring villages never touch; people and devices keep this fraction of the polygon's
# width and height away from its edge.
CELL_INSET = 0.04
POINT_MARGIN = 0.05
# No range of Chinese mobile numbers is reserved for tests or fiction (see docs/demo-data.md);
# demo numbers are +86 1700 followed by the person's 7-digit sequence number.
PHONE_BLOCK = "1700"
EMAIL_DOMAIN = "example.com"
EXTERNAL_PREFIX = "demo-"
MAX_PEOPLE = 10_000_000  # the 7 digits after the phone block
MAX_UNITS_PER_TOWN = 99
DEFAULT_VILLAGES_PER_TOWN = 16
PEOPLE_PER_CONTACT = 150  # one village contact per ~50 households of ~3 people
CHUNK_ROWS = 20_000

PEOPLE = cast(Table, Person.__table__)
DEVICES = cast(Table, Device.__table__)
AREAS = cast(Table, Area.__table__)
ELDERLY, HEARING, VISUAL, NO_PHONE, MOBILITY, FOREIGN = (
    int(n)
    for n in (
        Need.ELDERLY_ALONE,
        Need.HEARING_IMPAIRED,
        Need.VISUALLY_IMPAIRED,
        Need.NO_PHONE,
        Need.LIMITED_MOBILITY,
        Need.NON_CHINESE_SPEAKER,
    )
)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢史"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华霞平刚桂兰玉珍凤红梅建国志文斌国庆海燕荣春雪松"


@dataclass(frozen=True)
class Shares:
    """Shares of the generated population; the basis of each is in docs/demo-data.md."""

    rural: float = 0.62  # people living in rural villages (urban-rural class 210/220)
    elderly_alone_rural: float = 0.08
    elderly_alone_urban: float = 0.05
    hearing_impaired: float = 0.015
    visually_impaired: float = 0.010
    no_phone: float = 0.030
    limited_mobility: float = 0.020
    non_chinese_speaker: float = 0.003
    email: float = 0.15  # of people with a phone
    contact_email: float = 0.30
    opt_out: float = 0.02
    drill_consent: float = 0.30
    digital_board: float = 0.30  # villages whose notice board is digital
    # Among the elderly living alone the other needs are more common than the shares above;
    # the rest of the population gets the rate that keeps the overall share on target.
    elderly_hearing: float = 0.06
    elderly_visual: float = 0.03
    elderly_no_phone: float = 0.15
    elderly_mobility: float = 0.10

    @property
    def elderly_alone(self) -> float:
        return self.rural * self.elderly_alone_rural + (1 - self.rural) * self.elderly_alone_urban

    def need_rates(self, elderly: bool) -> tuple[float, float, float, float]:
        """Rates of hearing, visual, no phone, limited mobility for one group."""
        pairs = (
            (self.hearing_impaired, self.elderly_hearing),
            (self.visually_impaired, self.elderly_visual),
            (self.no_phone, self.elderly_no_phone),
            (self.limited_mobility, self.elderly_mobility),
        )
        e = self.elderly_alone
        h, v, p, m = (old if elderly else (overall - e * old) / (1 - e) for overall, old in pairs)
        return h, v, p, m


SHARES = Shares()


@dataclass(frozen=True)
class DemoOptions:
    people: int
    seed: int = 1
    villages_per_town: int = DEFAULT_VILLAGES_PER_TOWN
    replace: bool = False


@dataclass(frozen=True)
class Town:
    code: str
    name: str
    level: str

    @property
    def short(self) -> str:
        for suffix in ("街道", "镇", "乡"):
            if self.name.endswith(suffix) and len(self.name) > len(suffix):
                return self.name[: -len(suffix)]
        return self.name


@dataclass(frozen=True)
class Unit:
    """One synthetic village or community and its rectangle (west, south, east, north)."""

    code: str
    name: str
    level: str
    town: str
    urban_rural: str
    seat: bool
    box: Box

    @property
    def rural(self) -> bool:
        return self.urban_rural.startswith("2")

    def geometry(self) -> dict[str, Any]:
        """The GeoJSON polygon (``[lon, lat]``, counter-clockwise)."""
        w, s, e, n = self.box
        return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}

    def point(self, rand: random.Random) -> tuple[float, float]:
        """A random ``(lat, lon)`` well inside the polygon."""
        w, s, e, n = self.box
        span = 1 - 2 * POINT_MARGIN
        lat = s + (n - s) * (POINT_MARGIN + span * rand.random())
        lon = w + (e - w) * (POINT_MARGIN + span * rand.random())
        return round(lat, 6), round(lon, 6)


@dataclass(frozen=True)
class Households:
    """Who lives in one unit: sequence numbers ``start`` … ``start + size - 1``."""

    unit: Unit
    start: int
    size: int
    officer: bool
    contacts: int

    @property
    def staff(self) -> int:
        return int(self.officer) + self.contacts


@dataclass
class DemoSummary:
    towns: int = 0
    communities: int = 0
    villages: int = 0
    people: int = 0
    special_needs: int = 0
    village_contacts: int = 0
    duty_officers: int = 0
    rural_residents: int = 0
    urban_residents: int = 0
    needs: Counter[str] = field(default_factory=Counter)
    with_phone: int = 0
    with_email: int = 0
    opt_outs: int = 0
    drill_consent: int = 0
    speakers: int = 0
    digital_boards: int = 0
    paper_boards: int = 0
    replaced: bool = False
    seconds: float = 0.0

    def lines(self) -> list[str]:
        def pct(n: int) -> str:
            return f"{n:,} ({100 * n / self.people:.1f}%)" if self.people else "0"

        needs = ", ".join(f"{name} {pct(self.needs[name])}" for _, (name, _) in NEED_NAMES.items())
        return [
            f"areas: {self.communities + self.villages} synthetic units under {self.towns} towns "
            f"({self.communities} communities, {self.villages} villages)",
            f"people: {self.people:,}",
            f"  special needs (any): {pct(self.special_needs)}",
            f"    {needs}",
            f"  village contacts: {self.village_contacts:,}; town duty officers: {self.duty_officers}",
            f"  other rural residents: {pct(self.rural_residents)}; "
            f"other urban residents: {pct(self.urban_residents)}",
            f"  phone: {pct(self.with_phone)}; e-mail: {pct(self.with_email)}; "
            f"opt-outs: {pct(self.opt_outs)}; drill consent: {pct(self.drill_consent)}",
            f"devices: {self.speakers} loudspeaker groups, {self.digital_boards} digital boards, "
            f"{self.paper_boards} paper boards",
            f"{'replaced earlier demo data; ' if self.replaced else ''}took {self.seconds:.1f} s",
        ]


# --- planning -------------------------------------------------------------------------------


def check_options(options: DemoOptions) -> None:
    if not 1 <= options.people <= MAX_PEOPLE:
        raise invalid(f"--people must be between 1 and {MAX_PEOPLE:,}, not {options.people}")
    if not 2 <= options.villages_per_town <= MAX_UNITS_PER_TOWN:
        raise invalid(
            f"--villages-per-town must be between 2 and {MAX_UNITS_PER_TOWN}, "
            f"not {options.villages_per_town}"
        )


class Draft(NamedTuple):
    """A unit before it has its place on the grid."""

    code: str
    name: str
    level: str
    town: str
    urban_rural: str
    seat: bool


def plan_units(towns: Sequence[Town], taken: set[str], per_town: int, seed: int) -> list[Unit]:
    """``per_town`` synthetic units under each town, laid on a grid over :data:`BBOX`.

    Subdistricts get mostly communities (urban 111/112) and a few villages; towns get one
    or two seat communities (121, then 122) and villages (220, some 210).
    """
    drafts: list[Draft] = []
    for town in sorted(towns, key=lambda t: t.code):
        drafts += _town_units(town, taken, per_town, random.Random(f"{seed}:plan:{town.code}"))
    cells = grid_cells(len(drafts), BBOX)
    return [Unit(*draft, box=box) for draft, box in zip(drafts, cells, strict=True)]


def _town_units(town: Town, taken: set[str], per_town: int, rand: random.Random) -> list[Draft]:
    if town.level == "subdistrict":
        communities = math.ceil(0.6 * per_town)
        urban = ["111" if rand.random() < 0.75 else "112" for _ in range(communities)]
    else:
        communities = 1 if per_town < 8 else 2
        urban = ["121", "122"][:communities]
    rural = ["220" if rand.random() < 0.85 else "210" for _ in range(per_town - communities)]
    codes = _free_codes(town.code, 101, communities, taken)
    drafts = [
        Draft(code, f"{town.short}合成社区{n:02d}", "community", town.code, ur, n == 1)
        for n, (code, ur) in enumerate(zip(codes, urban, strict=True), 1)
    ]
    codes = _free_codes(town.code, 301, len(rural), taken)
    drafts += [
        Draft(code, f"{town.short}合成村{n:02d}", "village", town.code, ur, False)
        for n, (code, ur) in enumerate(zip(codes, rural, strict=True), 1)
    ]
    return drafts


def _free_codes(town_code: str, first: int, count: int, taken: set[str]) -> list[str]:
    prefix = town_code[:9]
    free = [
        code
        for code in (f"{prefix}{n:03d}" for n in range(first, first + MAX_UNITS_PER_TOWN))
        if code not in taken
    ]
    if len(free) < count:
        raise invalid(f"town {town_code} has no room for {count} more synthetic units")
    return free[:count]


def grid_cells(count: int, bbox: Box) -> list[Box]:
    """``count`` rectangles from a grid over ``bbox``, row by row in a serpentine, inset."""
    west, south, east, north = bbox
    cols = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / cols))
    width, height = (east - west) / cols, (north - south) / rows
    cells = []
    for i in range(count):
        row, col = divmod(i, cols)
        if row % 2:
            col = cols - 1 - col
        w, n = west + col * width, north - row * height
        cells.append(
            (
                round(w + CELL_INSET * width, 6),
                round(n - height + CELL_INSET * height, 6),
                round(w + width - CELL_INSET * width, 6),
                round(n - CELL_INSET * height, 6),
            )
        )
    return cells


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder; sums exactly)."""
    if not weights:
        return []
    scale = total / sum(weights)
    quotas = [w * scale for w in weights]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: counts[i] - quotas[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def populations(units: Sequence[Unit], people: int, seed: int) -> list[int]:
    """People per unit: :attr:`Shares.rural` of them in rural units, each unit weighted 0.6-1.4."""
    rand = random.Random(f"{seed}:population")
    weights = [rand.uniform(0.6, 1.4) for _ in units]
    rural = [i for i, u in enumerate(units) if u.rural]
    urban = [i for i, u in enumerate(units) if not u.rural]
    rural_total = round(people * SHARES.rural) if rural and urban else (people if rural else 0)
    counts = [0] * len(units)
    for group, total in ((rural, rural_total), (urban, people - rural_total)):
        for i, n in zip(group, allocate(total, [weights[i] for i in group]), strict=True):
            counts[i] = n
    return counts


def households(units: Sequence[Unit], sizes: Sequence[int]) -> list[Households]:
    """Sequence ranges, the duty officer (in each town's seat) and the contacts per unit."""
    plans, start = [], 0
    for unit, size in zip(units, sizes, strict=True):
        officer = unit.seat and size > 0
        others = size - int(officer)
        contacts = min(others, max(1, round(others / PEOPLE_PER_CONTACT)))
        plans.append(Households(unit, start, size, officer, contacts))
        start += size
    return plans


# --- rows -----------------------------------------------------------------------------------

PEOPLE_COLUMNS = (
    "external_id", "name", "area_code", "role", "phone", "email", "language", "needs",
    "needs_note", "relay_contact_id", "lat", "lon", "opt_out", "drill_consent", "created_at",
    "updated_at",
)  # fmt: skip


def _name(rand: random.Random) -> str:
    r = rand.random
    given = GIVEN[int(r() * len(GIVEN))]
    if r() < 0.75:
        given += GIVEN[int(r() * len(GIVEN))]
    return SURNAMES[int(r() * len(SURNAMES))] + given


def phone_number(sequence: int) -> str:
    return f"+86{PHONE_BLOCK}{sequence:07d}"


def _email(sequence: int) -> str:
    return f"demo{sequence:07d}@{EMAIL_DOMAIN}"


def staff_rows(h: Households, seed: int, now: object) -> list[tuple[Any, ...]]:
    """The town duty officer (first, in a seat unit) and the village contacts of one unit."""
    rand = random.Random(f"{seed}:{h.unit.code}:staff")
    rows = []
    for k in range(h.staff):
        i = h.start + k
        officer = h.officer and k == 0
        role = "town_duty_officer" if officer else "village_contact"
        email = _email(i) if officer or rand.random() < SHARES.contact_email else None
        lat, lon = h.unit.point(rand)
        rows.append(
            (f"{EXTERNAL_PREFIX}{i:07d}", _name(rand), h.unit.code, role, phone_number(i), email,
             "zh-CN", 0, "", None, lat, lon, False, True, now, now)
        )  # fmt: skip
    return rows


def resident_rows(
    h: Households, contact_ids: Sequence[int], seed: int, now: object
) -> Iterator[tuple[Any, ...]]:
    """The residents of one unit, each with needs drawn from :data:`SHARES`."""
    rand = random.Random(f"{seed}:{h.unit.code}:residents")
    r = rand.random
    elderly = SHARES.elderly_alone_rural if h.unit.rural else SHARES.elderly_alone_urban
    old_rates, young_rates = SHARES.need_rates(True), SHARES.need_rates(False)
    code, contacts = h.unit.code, len(contact_ids)
    w, s, e, n = h.unit.box
    lon0, lat0 = w + (e - w) * POINT_MARGIN, s + (n - s) * POINT_MARGIN
    dlon, dlat = (e - w) * (1 - 2 * POINT_MARGIN), (n - s) * (1 - 2 * POINT_MARGIN)
    for i in range(h.start + h.staff, h.start + h.size):
        if r() < elderly:
            needs, (hear, see, nophone, mobility) = ELDERLY, old_rates
        else:
            needs, (hear, see, nophone, mobility) = 0, young_rates
        if r() < hear:
            needs |= HEARING
        if r() < see:
            needs |= VISUAL
        if r() < mobility:
            needs |= MOBILITY
        foreign = r() < SHARES.non_chinese_speaker
        if foreign:
            needs |= FOREIGN
        phone = None
        if r() < nophone:
            needs |= NO_PHONE
        else:
            phone = phone_number(i)
        email = _email(i) if phone and r() < SHARES.email else None
        yield (
            f"{EXTERNAL_PREFIX}{i:07d}", _name(rand), code, "resident", phone, email,
            "en" if foreign else "zh-CN", needs, "",
            contact_ids[int(r() * contacts)] if contacts else None,
            round(lat0 + dlat * r(), 6), round(lon0 + dlon * r(), 6),
            r() < SHARES.opt_out, r() < SHARES.drill_consent, now, now,
        )  # fmt: skip


def device_rows(unit: Unit, seed: int, now: datetime) -> list[dict[str, Any]]:
    """A loudspeaker group and one notice board (digital or paper) in ``unit``."""
    rand = random.Random(f"{seed}:{unit.code}:devices")
    digital = rand.random() < SHARES.digital_board
    rows = []
    for kind, name, address in (
        ("speaker_group", f"{unit.name}应急广播", f"warnpub/speakers/{unit.code}"),
        (
            "board_digital" if digital else "board_paper",
            f"{unit.name}{'电子显示屏' if digital else '公告栏'}",
            f"board-{unit.code}",
        ),
    ):
        lat, lon = unit.point(rand)
        rows.append(
            {"external_id": f"{EXTERNAL_PREFIX}{kind}-{unit.code}", "kind": kind, "name": name,
             "area_code": unit.code, "address": address, "lat": lat, "lon": lon, "active": True,
             "created_at": now}
        )  # fmt: skip
    return rows


# --- writing --------------------------------------------------------------------------------


class PeopleWriter:
    """Bulk inserts of people rows (tuples in :data:`PEOPLE_COLUMNS` order), one chunk in flight.

    Every way writes on the session's own connection, inside the session's transaction:
    SQLite through the driver's ``executemany`` (aiosqlite runs it on its thread while the next
    chunk is built), PostgreSQL through asyncpg's ``COPY`` (``copy_records_to_table``), any
    other database through a Core ``insert`` with ``executemany``.
    """

    def __init__(self, session: AsyncSession, driver: Any, dialect: Dialect, now: datetime) -> None:
        self.session, self.driver, self.dialect = session, driver, dialect.name
        self._pending: asyncio.Future[None] | None = None
        self.now: object = now
        if self.dialect == "sqlite":
            # The stored form of the timestamp, as SQLAlchemy would bind it.
            process = PEOPLE.c.created_at.type.bind_processor(dialect)
            self.now = process(now) if process else now
            compiled = insert(PEOPLE).compile(dialect=dialect, column_keys=list(PEOPLE_COLUMNS))
            if tuple(compiled.positiontup or ()) != PEOPLE_COLUMNS:
                raise RuntimeError(f"people columns are bound as {compiled.positiontup}")
            self.sql = str(compiled)

    @classmethod
    async def open(cls, session: AsyncSession, now: datetime) -> PeopleWriter:
        connection = await session.connection()  # begins the transaction (BEGIN IMMEDIATE)
        # Any statement makes SQLAlchemy open the transaction on the driver's connection too.
        await connection.execute(select(1))
        driver = (await connection.get_raw_connection()).driver_connection
        if connection.dialect.name == "postgresql" and not driver.is_in_transaction():
            raise RuntimeError("the demo data must be copied inside the session's transaction")
        return cls(session, driver, connection.dialect, now)

    async def write(self, rows: list[tuple[Any, ...]]) -> None:
        """Start writing ``rows`` once the previous chunk is written."""
        await self.flush()
        self._pending = asyncio.ensure_future(self._execute(rows))

    async def flush(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending

    async def _execute(self, rows: list[tuple[Any, ...]]) -> None:
        if self.dialect == "sqlite":
            cursor = await self.driver.executemany(self.sql, rows)
            await cursor.close()
        elif self.dialect == "postgresql":
            await self.driver.copy_records_to_table(
                PEOPLE.name, records=rows, columns=list(PEOPLE_COLUMNS)
            )
        else:
            await self.session.execute(
                insert(PEOPLE), [dict(zip(PEOPLE_COLUMNS, row, strict=True)) for row in rows]
            )


def tally(summary: DemoSummary, rows: Sequence[tuple[Any, ...]], rural: set[str]) -> None:
    """Count one chunk of people rows into ``summary``; ``rural`` are the rural unit codes."""
    summary.people += len(rows)
    flags = Counter(row[7] for row in rows)
    roles = Counter(row[3] for row in rows)
    for value, n in flags.items():
        for need, (name, _) in NEED_NAMES.items():
            if value & need:
                summary.needs[name] += n
    plain_rural = sum(1 for row in rows if row[2] in rural and row[7] == 0 and row[3] == "resident")
    plain = flags[0] - roles["village_contact"] - roles["town_duty_officer"]
    summary.special_needs += len(rows) - flags[0]
    summary.village_contacts += roles["village_contact"]
    summary.duty_officers += roles["town_duty_officer"]
    summary.rural_residents += plain_rural
    summary.urban_residents += plain - plain_rural
    summary.with_phone += sum(1 for row in rows if row[4])
    summary.with_email += sum(1 for row in rows if row[5])
    summary.opt_outs += sum(1 for row in rows if row[12])
    summary.drill_consent += sum(1 for row in rows if row[13])


# --- the command ----------------------------------------------------------------------------


def _synthetic_codes() -> Any:
    return select(Area.code).where(Area.synthetic.is_(True))


async def has_demo_data(session: AsyncSession) -> bool:
    return (await session.execute(_synthetic_codes().limit(1))).first() is not None


async def delete_demo_data(session: AsyncSession) -> None:
    """Delete the synthetic areas and the people and devices in them (nothing else).

    People elsewhere whose relay contact lived in a synthetic village lose that link.
    """
    people, devices, areas = PEOPLE, DEVICES, AREAS
    synthetic = _synthetic_codes()
    demo_ids = select(people.c.id).where(people.c.area_code.in_(synthetic))
    try:
        await session.execute(
            people.update()
            .where(people.c.area_code.not_in(synthetic), people.c.relay_contact_id.in_(demo_ids))
            .values(relay_contact_id=None)
        )
        await session.execute(people.delete().where(people.c.area_code.in_(synthetic)))
        await session.execute(devices.delete().where(devices.c.area_code.in_(synthetic)))
        await session.execute(areas.delete().where(areas.c.synthetic.is_(True)))
    except IntegrityError as exc:
        raise Problem(
            409,
            "Demo data in use",
            "the demo people or devices are referenced by other records (deliveries, "
            f"acknowledgements, …); nothing was deleted ({exc.orig})",
        ) from None


async def liyang_towns(session: AsyncSession) -> list[Town]:
    """Liyang's towns and subdistricts; loads Liyang's divisions first into an empty table."""
    if (await session.execute(select(Area.code).limit(1))).first() is None:
        await load_areas(session, liyang_csv())
    rows = await session.execute(
        select(Area.code, Area.name, Area.level).where(
            Area.parent_code == CITY, Area.level.in_(TOWN_LEVELS)
        )
    )
    towns = [Town(*row) for row in rows]
    if not towns:
        raise Problem(
            409,
            "No towns of Liyang",
            f"the area tree has no towns under {CITY} (溧阳市); load them with "
            "`warnpub areas load` or start from an empty database",
        )
    return towns


async def generate(session: AsyncSession, options: DemoOptions) -> DemoSummary:
    """Generate the demo population in ``session``'s transaction; returns what was made."""
    started = perf_counter()
    check_options(options)
    summary = DemoSummary()
    if await has_demo_data(session):
        if not options.replace:
            raise Problem(
                409,
                "Demo data exists",
                "the database already has demo data (synthetic villages); run again with "
                "--replace to delete it (and only it) and generate anew",
            )
        await delete_demo_data(session)
        summary.replaced = True
    towns = await liyang_towns(session)
    taken = set((await session.execute(select(Area.code))).scalars())
    units = plan_units(towns, taken, options.villages_per_town, options.seed)
    plans = households(units, populations(units, options.people, options.seed))
    now = utcnow()
    await _insert_areas(session, units)
    await _insert_people(session, plans, options.seed, now, summary)
    await _insert_devices(session, units, options.seed, now, summary)
    summary.towns = len(towns)
    summary.communities = sum(1 for u in units if u.level == "community")
    summary.villages = len(units) - summary.communities
    summary.seconds = perf_counter() - started
    return summary


async def _insert_areas(session: AsyncSession, units: Sequence[Unit]) -> None:
    await session.execute(
        insert(AREAS),
        [
            {"code": u.code, "name": u.name, "level": u.level, "parent_code": u.town,
             "urban_rural": u.urban_rural, "synthetic": True, "geometry": u.geometry()}
            for u in units
        ],
    )  # fmt: skip


async def _insert_people(
    session: AsyncSession,
    plans: Sequence[Households],
    seed: int,
    now: datetime,
    summary: DemoSummary,
) -> None:
    """Staff first (their ids become the residents' relay contacts), then residents."""
    writer = await PeopleWriter.open(session, now)
    rural = {h.unit.code for h in plans if h.unit.rural}
    staff = [row for h in plans for row in staff_rows(h, seed, writer.now)]
    tally(summary, staff, rural)
    await writer.write(staff)
    await writer.flush()
    contacts = await _contact_ids(session)
    chunk: list[tuple[Any, ...]] = []
    for h in plans:
        for row in resident_rows(h, contacts.get(h.unit.code, []), seed, writer.now):
            chunk.append(row)
            if len(chunk) >= CHUNK_ROWS:
                tally(summary, chunk, rural)
                await writer.write(chunk)
                chunk = []
    if chunk:
        tally(summary, chunk, rural)
        await writer.write(chunk)
    await writer.flush()


async def _contact_ids(session: AsyncSession) -> dict[str, list[int]]:
    rows = await session.execute(
        select(Person.area_code, Person.id)
        .where(Person.role == "village_contact", Person.area_code.in_(_synthetic_codes()))
        .order_by(Person.id)
    )
    contacts: dict[str, list[int]] = {}
    for code, person_id in rows:
        contacts.setdefault(code, []).append(person_id)
    return contacts


async def _insert_devices(
    session: AsyncSession, units: Sequence[Unit], seed: int, now: datetime, summary: DemoSummary
) -> None:
    rows = [row for unit in units for row in device_rows(unit, seed, now)]
    await session.execute(insert(DEVICES), rows)
    kinds = Counter(row["kind"] for row in rows)
    summary.speakers = kinds["speaker_group"]
    summary.digital_boards = kinds["board_digital"]
    summary.paper_boards = kinds["board_paper"]
