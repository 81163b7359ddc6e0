"""Area geometry: GeoJSON boundaries checked, CAP polygons and circles resolved to division codes.

Two coordinate orders meet here. CAP writes points as ``lat,lon``; GeoJSON (and shapely, which
works in x/y) as ``[lon, lat]``. Every CAP shape is turned into shapely's x=lon, y=lat exactly
once, in :func:`cap_polygon` and :func:`cap_circle`; everything after that is lon/lat.

How a warning's shapes become division codes (:func:`codes_for_shapes`):

1. Areas with a boundary: every village-level area (12-digit code with a village segment)
   whose polygon intersects a shape, and every town-level area whose polygon intersects a
   shape when that town has no village with a polygon. Candidates are prefiltered by their
   bounding boxes in an STRtree, then tested exactly; a polygon that only touches a shape's
   edge is not hit.
2. Areas without a boundary: the areas of the people and devices whose coordinates lie in
   (or on the edge of) a shape. Only people and devices inside the shapes' bounding box are
   read, and only those of areas that have no polygon of their own.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from sqlalchemy import ColumnElement, Table, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.divisions import covers, significant_prefix
from warnpub.audiences.tables import Area, Device, Person
from warnpub.cap.model import Circle

log = logging.getLogger(__name__)

LatLon = tuple[float, float]
"""A CAP point: ``(latitude, longitude)`` in WGS 84 degrees."""

# WGS 84 ellipsoid, for the local radius of curvature used by circles.
WGS84_A_KM = 6378.137
WGS84_E2 = 0.00669437999014
# Vertices of the polygon that stands for a circle; the chord between two vertices falls short
# of the radius by 1 - cos(pi / 128) = 0.03 %.
CIRCLE_SEGMENTS = 128
# People and devices are read and tested in batches of this many rows.
POINT_BATCH = 20_000
GEOMETRY_TYPES = ("Polygon", "MultiPolygon")


class GeometryError(ValueError):
    """A shape that cannot be used; the message says what is wrong and where."""


# --- GeoJSON boundaries ---------------------------------------------------------------------


def validate_geometry(geojson: object) -> Polygon | MultiPolygon:
    """A GeoJSON Polygon or MultiPolygon (``[lon, lat]`` positions) as a valid shapely shape.

    Raises :class:`GeometryError` naming the polygon, ring and position at fault: a type
    other than Polygon/MultiPolygon, malformed coordinates, a ring that is open or too short,
    a longitude or latitude out of range, or a shape that crosses itself.
    """
    if not isinstance(geojson, dict):
        raise GeometryError(
            f"the geometry must be a GeoJSON object such as "
            f'{{"type": "Polygon", "coordinates": [...]}}, not {type(geojson).__name__}'
        )
    kind = geojson.get("type")
    if kind not in GEOMETRY_TYPES:
        raise GeometryError(
            f"geometry type {kind!r} is not supported; an area boundary is a Polygon or MultiPolygon"
        )
    coordinates = geojson.get("coordinates")
    if kind == "Polygon":
        shape: Polygon | MultiPolygon = _polygon(coordinates, "")
    else:
        members = _list(coordinates, "the MultiPolygon's coordinates", "a list of polygons")
        if not members:
            raise GeometryError("the MultiPolygon has no polygons")
        shape = MultiPolygon(
            [_polygon(member, f"polygon {n}, ") for n, member in enumerate(members, 1)]
        )
    if not shape.is_valid:
        raise GeometryError(
            f"the {kind} is not a valid shape ({shapely.is_valid_reason(shape)}); "
            "rings must not cross themselves or each other"
        )
    return shape


def _list(value: object, what: str, expected: str) -> list[Any]:
    if not isinstance(value, list):
        raise GeometryError(f"{what} must be {expected}")
    return value


def _polygon(rings_value: object, where: str) -> Polygon:
    rings = _list(rings_value, f"{where}coordinates".capitalize(), "a list of linear rings")
    if not rings:
        raise GeometryError(f"{where}the polygon has no rings".capitalize())
    shell, *holes = (_ring(ring, f"{where}ring {n}") for n, ring in enumerate(rings, 1))
    return Polygon(shell, holes)


def _ring(value: object, where: str) -> list[tuple[float, float]]:
    label = f"{where} (the outer boundary)" if where.endswith("ring 1") else where
    positions = _list(value, label, "a list of [lon, lat] positions")
    points = [_position(p, f"{label}, position {n}") for n, p in enumerate(positions, 1)]
    if len(points) < 4:
        raise GeometryError(
            f"{label} has {len(points)} position(s); a ring needs at least 4, the last repeating the first"
        )
    if points[0] != points[-1]:
        raise GeometryError(
            f"{label} is not closed: its last position {list(points[-1])} must repeat the first {list(points[0])}"
        )
    return points


def _position(value: object, where: str) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) not in (2, 3)
        or not all(_is_number(v) for v in value)
    ):
        raise GeometryError(f"{where}: {value!r} is not a [lon, lat] pair of numbers")
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise GeometryError(f"{where}: coordinates must be finite numbers")
    if not -180 <= lon <= 180:
        raise GeometryError(f"{where}: longitude {lon} is out of range (-180 to 180)")
    if not -90 <= lat <= 90:
        raise GeometryError(
            f"{where}: latitude {lat} is out of range (-90 to 90); "
            "GeoJSON puts longitude first: [lon, lat]"
        )
    return lon, lat


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- CAP shapes ---------------------------------------------------------------------------


def cap_polygon(points: Sequence[LatLon]) -> BaseGeometry:
    """A CAP polygon (``(lat, lon)`` points) as a shapely shape in lon/lat.

    An open ring is closed; a ring that crosses itself is repaired with ``make_valid`` (a
    bow-tie becomes two triangles) rather than refused: intake has already reported it, and
    the people inside must still be reached.
    """
    ring = [(float(lon), float(lat)) for lat, lon in points]
    if ring and ring[0] != ring[-1]:
        ring.append(ring[0])
    if len(set(ring)) < 3:
        raise GeometryError(f"a polygon needs at least 3 distinct points, got {len(set(ring))}")
    shape = Polygon(ring)
    return shape if shape.is_valid else shapely.make_valid(shape)


def cap_circle(
    lat: float, lon: float, radius_km: float, segments: int = CIRCLE_SEGMENTS
) -> BaseGeometry:
    """A CAP circle as a lon/lat polygon: the points at ``radius_km`` from the centre.

    In an azimuthal equidistant projection centred on the circle's centre, the circle is the
    set of points at that geodesic distance. Those points are computed here in closed form on
    a sphere whose radius is the ellipsoid's Gaussian radius of curvature at the centre's
    latitude (the spherical "destination point" formula), which is exact on that sphere and
    within 0.3 % of the WGS 84 distance in every direction at mid latitudes. That is why pyproj
    is not needed at run time; ``tests/audiences/test_geometry.py`` checks the result against
    pyproj's WGS 84 geodesic. A radius of 0 is the centre point itself.
    """
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise GeometryError(f"the circle's centre {lat},{lon} is out of range")
    if radius_km < 0 or not math.isfinite(radius_km):
        raise GeometryError(f"the circle's radius {radius_km} km must be 0 or more")
    if radius_km == 0:
        return Point(lon, lat)
    phi, lam = math.radians(lat), math.radians(lon)
    delta = radius_km / local_radius_km(lat)
    if delta >= math.pi / 2 - abs(phi):
        raise GeometryError(f"a circle of {radius_km} km around {lat},{lon} reaches a pole")
    ring = []
    for step in range(segments):
        theta = 2 * math.pi * step / segments
        phi2 = math.asin(
            math.sin(phi) * math.cos(delta) + math.cos(phi) * math.sin(delta) * math.cos(theta)
        )
        lam2 = lam + math.atan2(
            math.sin(theta) * math.sin(delta) * math.cos(phi),
            math.cos(delta) - math.sin(phi) * math.sin(phi2),
        )
        ring.append((math.degrees(lam2), math.degrees(phi2)))
    if any(abs(x) > 180 for x, _ in ring):
        raise GeometryError(
            f"a circle of {radius_km} km around {lat},{lon} crosses the 180th meridian"
        )
    return Polygon(ring)


def local_radius_km(lat: float) -> float:
    """The WGS 84 Gaussian radius of curvature sqrt(M * N) at latitude ``lat``."""
    s2 = math.sin(math.radians(lat)) ** 2
    w = 1 - WGS84_E2 * s2
    return WGS84_A_KM * math.sqrt(1 - WGS84_E2) / w


def cap_shapes(
    polygons: Iterable[Sequence[LatLon]], circles: Iterable[Circle]
) -> list[BaseGeometry]:
    """Every CAP polygon and circle of an area, as lon/lat shapes."""
    shapes = [cap_polygon(points) for points in polygons]
    shapes += [cap_circle(c.lat, c.lon, c.radius_km) for c in circles]
    return shapes


# --- areas with a boundary ----------------------------------------------------------------


def _is_village_level(code: str) -> bool:
    return len(significant_prefix(code)) == 12


def _is_town_level(code: str) -> bool:
    return len(significant_prefix(code)) == 9


@dataclass(frozen=True)
class AreaIndex:
    """The boundaries used for targeting, in an STRtree; build once, query many shapes."""

    codes: tuple[str, ...]
    tree: shapely.STRtree

    @classmethod
    def build(cls, rows: Iterable[tuple[str, str | dict[str, Any] | None]]) -> AreaIndex:
        """From ``(code, GeoJSON geometry)`` rows (text or parsed): villages, and towns without
        village polygons.

        Stored boundaries were checked by :func:`validate_geometry` when they were loaded, so
        here they are parsed by GEOS directly (fast for tens of thousands of polygons); one
        that is still unusable is logged and left out, so that a bad row cannot stop a warning.
        """
        villages: dict[str, BaseGeometry] = {}
        towns: dict[str, BaseGeometry] = {}
        for code, geojson in rows:
            if not (_is_village_level(code) or _is_town_level(code)):
                continue
            shape = _stored_shape(code, geojson)
            if shape is not None:
                (villages if _is_village_level(code) else towns)[code] = shape
        with_villages = {code[:9] for code in villages}
        chosen = villages | {c: g for c, g in towns.items() if c[:9] not in with_villages}
        codes = tuple(sorted(chosen))
        return cls(codes, shapely.STRtree([chosen[c] for c in codes]))

    def __len__(self) -> int:
        return len(self.codes)

    def codes_hit(self, shape: BaseGeometry) -> set[str]:
        """Codes whose boundary intersects ``shape`` (beyond merely touching its edge)."""
        if not self.codes:
            return set()
        hits = self.tree.query(shape, predicate="intersects")
        if shape.geom_type not in ("Point", "MultiPoint"):
            hits = hits[~shapely.touches(self.tree.geometries[hits], shape)]
        return {self.codes[i] for i in hits}


def _stored_shape(code: str, geojson: str | dict[str, Any] | None) -> BaseGeometry | None:
    text = geojson if isinstance(geojson, str) or geojson is None else json.dumps(geojson)
    shape = None if text is None else shapely.from_geojson(text, on_invalid="ignore")
    if shape is None or shape.geom_type not in GEOMETRY_TYPES or not shape.is_valid:
        log.warning(
            "area %s: its stored boundary is not a valid Polygon or MultiPolygon; skipped", code
        )
        return None
    return shape


def _geometry_kind(dialect: str) -> ColumnElement[str]:
    """SQL: the JSON type of an area's boundary; JSON ``null`` and SQL NULL are both 'null'."""
    json_type = func.jsonb_typeof if dialect == "postgresql" else func.json_type
    return func.coalesce(json_type(Area.geometry), "null")


async def _dialect(session: AsyncSession) -> str:
    return (await session.connection()).dialect.name


async def load_area_index(session: AsyncSession) -> AreaIndex:
    """The index of every stored area boundary."""
    # As JSON text: GEOS parses it without building Python lists first.
    stmt = select(Area.code, cast(Area.geometry, Text)).where(
        _geometry_kind(await _dialect(session)) == "object"
    )
    return AreaIndex.build((await session.execute(stmt)).all())


# --- areas without a boundary: people and devices by their coordinates -------------------


async def located_area_codes(session: AsyncSession, shapes: Sequence[BaseGeometry]) -> set[str]:
    """Areas without a boundary that have people or devices located inside ``shapes``."""
    if not shapes:
        return set()
    union = shapely.union_all(shapes)
    shapely.prepare(union)
    # "IN areas without a boundary" rather than "NOT IN areas with one": the people index
    # starts with area_code, so people of areas with boundaries are never read.
    without_geometry = select(Area.code).where(_geometry_kind(await _dialect(session)) != "object")
    found: set[str] = set()
    for table in (Person.__table__, Device.__table__):
        found |= await _located_in(session, table, union, without_geometry, found)
    return found


async def _located_in(
    session: AsyncSession,
    table: Table,
    union: BaseGeometry,
    without_geometry: Any,
    already: set[str],
) -> set[str]:
    west, south, east, north = union.bounds
    stmt = select(table.c.area_code, table.c.lon, table.c.lat).where(
        table.c.lat.between(south, north),
        table.c.lon.between(west, east),
        table.c.area_code.in_(without_geometry),
    )
    found: set[str] = set()
    result = await session.stream(stmt.execution_options(yield_per=POINT_BATCH))
    async for batch in result.partitions(POINT_BATCH):
        rows = [r for r in batch if r[0] not in already and r[0] not in found]
        if not rows:
            continue
        inside = shapely.intersects_xy(union, [r[1] for r in rows], [r[2] for r in rows])
        found.update(row[0] for row, hit in zip(rows, inside, strict=True) if hit)
    return found


# --- the whole resolution -----------------------------------------------------------------


async def codes_for_shapes(
    session: AsyncSession,
    polygons: Iterable[Sequence[LatLon]],
    circles: Iterable[Circle],
    *,
    index: AreaIndex | None = None,
) -> list[str]:
    """The division codes a warning's CAP polygons and circles reach, sorted.

    ``polygons`` are CAP polygons (``(lat, lon)`` points); ``circles`` CAP circles (radius in
    km). Pass a prebuilt ``index`` to resolve many warnings against one load of the
    boundaries. A code is left out when another returned code covers it (a village under a
    returned town). Raises :class:`GeometryError` for a shape that cannot be used (a polygon
    of fewer than 3 distinct points, a circle that reaches a pole or crosses the 180th meridian).
    """
    shapes = cap_shapes(polygons, circles)
    if not shapes:
        return []
    if index is None:
        index = await load_area_index(session)
    codes: set[str] = set()
    for shape in shapes:
        codes |= index.codes_hit(shape)
    codes |= await located_area_codes(session, shapes)
    return _outermost(codes)


def _outermost(codes: set[str]) -> list[str]:
    towns = [c for c in codes if not _is_village_level(c)]
    return sorted(c for c in codes if not any(t != c and covers(t, c) for t in towns))
