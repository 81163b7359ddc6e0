"""What an alert asks for, checked against what its agency may do and what the county knows.

Pure functions over the parsed alert plus the agency row; the stored-data lookups (known areas,
referenced warnings) are in :mod:`warnpub.intake.service`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.divisions import is_division_code
from warnpub.audiences.geometry import codes_for_shapes
from warnpub.auth.agencies import area_in_scope
from warnpub.cap import Alert, Circle
from warnpub.config import Settings
from warnpub.problems import FieldError
from warnpub.storage.tables import Agency


@dataclass(frozen=True, slots=True)
class Shape:
    """A CAP area given only by polygons and circles; resolved to division codes by geometry."""

    where: str
    area_desc: str
    polygons: list[list[tuple[float, float]]]
    circles: list[Circle]


@dataclass(slots=True)
class Ask:
    """The hazards and division codes an alert names, and what is wrong with how it names them."""

    hazards: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    shapes: list[Shape] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)


async def resolve_shapes(session: AsyncSession, ask: Ask) -> list[FieldError]:
    """Add the division codes that each polygon/circle area covers; an error for any that covers none."""
    errors: list[FieldError] = []
    for shape in ask.shapes:
        found = await codes_for_shapes(session, shape.polygons, shape.circles)
        if not found:
            errors.append(
                FieldError(
                    shape.where,
                    f"area {shape.area_desc!r}: its polygon or circle covers no known village or town; check the coordinates (CAP writes lat,lon)",
                )
            )
        ask.codes += [c for c in found if c not in ask.codes]
    return errors


def hazard_of(settings: Settings, alert: Alert, index: int) -> tuple[str | None, FieldError | None]:
    info = alert.infos[index]
    for ec in info.event_codes:
        if ec.value_name == settings.cap.hazard_event_code:
            code = settings.hazard_for(ec.value)
            if code is None:
                return None, FieldError(
                    f"infos.{index}.event_codes",
                    f"hazard {ec.value!r} is not a known hazard type; use one of {', '.join(settings.cap.hazards)}",
                )
            return code, None
    code = settings.hazard_for(info.event)
    if code is None:
        return None, FieldError(
            f"infos.{index}.event",
            f"event {info.event!r} names no known hazard type; use one of "
            f"{', '.join(settings.cap.hazards)} (or its Chinese/English name), or add an eventCode "
            f"with valueName {settings.cap.hazard_event_code!r}",
        )
    return code, None


def read_ask(settings: Settings, alert: Alert) -> Ask:
    ask = Ask()
    names = set(settings.cap.division_geocode_names)
    for i, info in enumerate(alert.infos):
        hazard, err = hazard_of(settings, alert, i)
        if err:
            ask.errors.append(err)
        elif hazard not in ask.hazards:
            ask.hazards.append(hazard or "")
        if not info.areas:
            ask.errors.append(
                FieldError(f"infos.{i}.areas", "name at least one area with a division geocode")
            )
        for j, area in enumerate(info.areas):
            codes = [g.value.strip() for g in area.geocodes if g.value_name in names]
            where = f"infos.{i}.areas.{j}"
            if not codes:
                if area.polygons or area.circles:
                    ask.shapes.append(Shape(where, area.area_desc, area.polygons, area.circles))
                else:
                    ask.errors.append(
                        FieldError(
                            where,
                            f"area {area.area_desc!r} names no place: give a geocode named "
                            f"{' or '.join(sorted(names))} (a 12-digit division code), a polygon or a circle",
                        )
                    )
            for code in codes:
                if not is_division_code(code):
                    ask.errors.append(
                        FieldError(
                            f"{where}.geocodes",
                            f"{code!r} is not a division code; write it out to 12 digits, e.g. 320481101000",
                        )
                    )
                elif code not in ask.codes:
                    ask.codes.append(code)
    return ask


def scope_errors(agency: Agency, ask: Ask) -> list[FieldError]:
    errors = [
        FieldError(
            "infos.event",
            f"agency {agency.code} may not warn about {h}; it may warn about {', '.join(agency.hazards)}",
        )
        for h in ask.hazards
        if h not in agency.hazards
    ]
    errors += [
        FieldError(
            "infos.areas",
            f"area {c} is outside agency {agency.code}'s areas ({', '.join(agency.areas)})",
        )
        for c in ask.codes
        if not area_in_scope(agency, c)
    ]
    return errors
