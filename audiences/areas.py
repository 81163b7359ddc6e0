"""The area tree: load divisions from CSV or GeoJSON, look codes up.

CSV columns: ``code,name,level,parent_code`` and optionally ``urban_rural`` and ``synthetic``.
GeoJSON: a FeatureCollection whose features carry the same fields as ``properties`` and an
optional boundary (Polygon or MultiPolygon, ``[lon, lat]``) as ``geometry``.
Codes may be given with 2-12 digits and are written out to 12. A file with any bad row or
feature loads nothing; every bad one is reported with its line or feature number.
Loading a CSV keeps the boundaries already stored; loading GeoJSON sets them (a feature whose
geometry is null clears its area's boundary).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.divisions import write_out
from warnpub.audiences.geometry import GeometryError, validate_geometry
from warnpub.audiences.tables import Area
from warnpub.problems import FieldError, invalid

LEVELS = {
    "province",
    "prefecture_city",
    "county_city",
    "county",
    "district",
    "subdistrict",
    "town",
    "township",
    "special_unit",
    "community",
    "village",
}
URBAN_RURAL = {"111", "112", "121", "122", "123", "210", "220"}
REQUIRED = ("code", "name", "level", "parent_code")
TRUE_WORDS = ("1", "true", "yes")


def liyang_csv() -> str:
    """Liyang's divisions as shipped with warnpub (source: audiences/liyang-divisions.md)."""
    return resources.files("warnpub.audiences").joinpath("liyang-divisions.csv").read_text("utf-8")


def _text(value: object) -> str:
    """A CSV cell or a GeoJSON property as text; numbers (e.g. a code 320481) are accepted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _area_from_fields(
    where: str, fields: Mapping[str, Any], errors: list[FieldError]
) -> Area | None:
    """One area from a CSV row or a feature's properties; problems go to ``errors``."""
    try:
        code = write_out(_text(fields.get("code")))
        parent_text = _text(fields.get("parent_code"))
        parent = write_out(parent_text) if parent_text else None
    except ValueError as exc:
        errors.append(FieldError(where, str(exc)))
        return None
    level = _text(fields.get("level"))
    name = _text(fields.get("name"))
    ur = _text(fields.get("urban_rural")) or None
    if not name:
        errors.append(FieldError(where, "name is empty"))
    if level not in LEVELS:
        errors.append(
            FieldError(where, f"level {level!r} is not one of {', '.join(sorted(LEVELS))}")
        )
    if ur is not None and ur not in URBAN_RURAL:
        errors.append(
            FieldError(where, f"urban_rural {ur!r} is not one of {', '.join(sorted(URBAN_RURAL))}")
        )
    synthetic = _text(fields.get("synthetic")).lower() in TRUE_WORDS
    return Area(
        code=code, name=name, level=level, parent_code=parent, urban_rural=ur, synthetic=synthetic
    )


def _check_tree(
    found: list[tuple[str, Area]], known: Iterable[str], errors: list[FieldError]
) -> list[Area]:
    """Duplicates and unknown parents; raises the 422 listing ``errors`` if there are any."""
    areas: dict[str, Area] = {}
    for where, area in found:
        if area.code in areas:
            errors.append(FieldError(where, f"code {area.code} appears twice"))
        areas[area.code] = area
    known_codes = set(known) | set(areas)
    for area in areas.values():
        if area.parent_code and area.parent_code not in known_codes:
            errors.append(
                FieldError(f"code {area.code}", f"parent {area.parent_code} is not a known area")
            )
    if errors:
        raise invalid("the area file has errors; nothing was loaded", errors)
    return list(areas.values())


def parse_areas_csv(text: str, known: Iterable[str] = ()) -> list[Area]:
    """Rows of ``text`` as areas; raises a 422 Problem listing every bad row."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise invalid(
            f"the CSV needs the columns {', '.join(REQUIRED)}; missing: {', '.join(missing)}"
        )
    errors: list[FieldError] = []
    found: list[tuple[str, Area]] = []
    for line, row in enumerate(reader, start=2):
        where = f"line {line}"
        area = _area_from_fields(where, row, errors)
        if area is not None:
            found.append((where, area))
    return _check_tree(found, known, errors)


def parse_areas_geojson(text: str, known: Iterable[str] = ()) -> list[Area]:
    """Features of a GeoJSON FeatureCollection as areas; a 422 Problem lists every bad one."""
    try:
        document = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise invalid(
            f"the file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise invalid(
            'a GeoJSON area file must be a FeatureCollection: {"type": "FeatureCollection", "features": [...]}'
        )
    features = document.get("features")
    if not isinstance(features, list):
        raise invalid("the FeatureCollection's features must be a list")
    errors: list[FieldError] = []
    found: list[tuple[str, Area]] = []
    for number, feature in enumerate(features, start=1):
        where = f"feature {number}"
        area = _area_from_feature(where, feature, errors)
        if area is not None:
            found.append((where, area))
    return _check_tree(found, known, errors)


def _area_from_feature(where: str, feature: object, errors: list[FieldError]) -> Area | None:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        errors.append(FieldError(where, 'each feature must be an object with "type": "Feature"'))
        return None
    properties = feature.get("properties")
    if not isinstance(properties, dict):
        errors.append(
            FieldError(where, "properties must be an object with code, name, level, parent_code")
        )
        return None
    missing = [key for key in REQUIRED if key not in properties]
    if missing:
        errors.append(FieldError(where, f"properties lack {', '.join(missing)}"))
        return None
    area = _area_from_fields(where, properties, errors)
    geometry = feature.get("geometry")
    if geometry is not None:
        try:
            validate_geometry(geometry)
        except GeometryError as exc:
            errors.append(FieldError(f"{where} geometry", str(exc)))
            return None
        if area is not None:
            area.geometry = {"type": geometry["type"], "coordinates": geometry["coordinates"]}
    return area


def is_geojson(text: str) -> bool:
    """Whether ``text`` is JSON (a CSV area file never starts with ``{``)."""
    return text.lstrip("\ufeff \t\r\n").startswith("{")


async def _store(session: AsyncSession, areas: list[Area], *, keep_geometry: bool) -> int:
    if keep_geometry:
        rows = await session.execute(
            select(Area.code, Area.geometry).where(Area.geometry.is_not(None))
        )
        stored = {code: geometry for code, geometry in rows}
        for area in areas:
            area.geometry = stored.get(area.code)
    for area in areas:
        await session.merge(area)
    return len(areas)


async def _known(session: AsyncSession) -> list[str]:
    return list((await session.execute(select(Area.code))).scalars().all())


async def load_areas(session: AsyncSession, text: str) -> int:
    """Insert or update the areas in the CSV ``text``; returns how many rows were loaded.

    Boundaries already stored for these areas are kept (a CSV has no geometry column).
    """
    areas = parse_areas_csv(text, await _known(session))
    return await _store(session, areas, keep_geometry=True)


async def load_areas_geojson(session: AsyncSession, text: str) -> int:
    """Insert or update the areas of a GeoJSON FeatureCollection, boundaries included."""
    areas = parse_areas_geojson(text, await _known(session))
    return await _store(session, areas, keep_geometry=False)


async def load_areas_file(session: AsyncSession, path: Path) -> int:
    """Load an area file: GeoJSON if it starts with ``{``, CSV otherwise."""
    try:
        text = await asyncio.to_thread(path.read_text, "utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise invalid(f"cannot read {path} as UTF-8 text: {exc}") from None
    if is_geojson(text):
        return await load_areas_geojson(session, text)
    return await load_areas(session, text)


async def unknown_codes(session: AsyncSession, codes: Iterable[str]) -> list[str]:
    wanted = sorted(set(codes))
    if not wanted:
        return []
    found = set((await session.execute(select(Area.code).where(Area.code.in_(wanted)))).scalars())
    return [c for c in wanted if c not in found]
