"""The area tree: load divisions from CSV, look codes up.

CSV columns: ``code,name,level,parent_code`` and optionally ``urban_rural`` and ``synthetic``.
Codes may be given with 2-12 digits and are written out to 12. A file with any bad row
loads nothing; every bad row is reported with its line number.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.divisions import write_out
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


def liyang_csv() -> str:
    """Liyang's divisions as shipped with warnpub (source: audiences/liyang-divisions.md)."""
    return resources.files("warnpub.audiences").joinpath("liyang-divisions.csv").read_text("utf-8")


def parse_areas_csv(text: str, known: Iterable[str] = ()) -> list[Area]:
    """Rows of ``text`` as areas; raises a 422 Problem listing every bad row."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise invalid(
            f"the CSV needs the columns {', '.join(REQUIRED)}; missing: {', '.join(missing)}"
        )
    errors: list[FieldError] = []
    areas: dict[str, Area] = {}
    for line, row in enumerate(reader, start=2):
        where = f"line {line}"
        try:
            code = write_out(row["code"] or "")
            parent = write_out(row["parent_code"]) if (row["parent_code"] or "").strip() else None
        except ValueError as exc:
            errors.append(FieldError(where, str(exc)))
            continue
        level = (row["level"] or "").strip()
        name = (row["name"] or "").strip()
        ur = (row.get("urban_rural") or "").strip() or None
        if not name:
            errors.append(FieldError(where, "name is empty"))
        if level not in LEVELS:
            errors.append(
                FieldError(where, f"level {level!r} is not one of {', '.join(sorted(LEVELS))}")
            )
        if ur is not None and ur not in URBAN_RURAL:
            errors.append(
                FieldError(
                    where, f"urban_rural {ur!r} is not one of {', '.join(sorted(URBAN_RURAL))}"
                )
            )
        if code in areas:
            errors.append(FieldError(where, f"code {code} appears twice"))
        synthetic = (row.get("synthetic") or "").strip().lower() in ("1", "true", "yes")
        areas[code] = Area(
            code=code,
            name=name,
            level=level,
            parent_code=parent,
            urban_rural=ur,
            synthetic=synthetic,
        )
    known_codes = set(known) | set(areas)
    for area in areas.values():
        if area.parent_code and area.parent_code not in known_codes:
            errors.append(
                FieldError(f"code {area.code}", f"parent {area.parent_code} is not a known area")
            )
    if errors:
        raise invalid("the area file has errors; nothing was loaded", errors)
    return list(areas.values())


async def load_areas(session: AsyncSession, text: str) -> int:
    """Insert or update the areas in ``text``; returns how many rows were loaded."""
    known = (await session.execute(select(Area.code))).scalars().all()
    areas = parse_areas_csv(text, known)
    for area in areas:
        await session.merge(area)
    return len(areas)


async def load_areas_file(session: AsyncSession, path: Path) -> int:
    try:
        text = await asyncio.to_thread(path.read_text, "utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise invalid(f"cannot read {path} as UTF-8 text: {exc}") from None
    return await load_areas(session, text)


async def unknown_codes(session: AsyncSession, codes: Iterable[str]) -> list[str]:
    wanted = sorted(set(codes))
    if not wanted:
        return []
    found = set((await session.execute(select(Area.code).where(Area.code.in_(wanted)))).scalars())
    return [c for c in wanted if c not in found]
