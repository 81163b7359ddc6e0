"""CAP rules that need no stored data, checked on a parsed :class:`Alert`.

The schema and the model take care of shape and vocabulary; these are the CAP 1.2 rules on
top that a sender can still break. Each broken rule is one :class:`FieldError` at a dotted
model path (``infos.0.areas.1.polygons.0``); :func:`warnpub.cap.elements.xml_path` turns that
into an element path for XML senders. Rules that need stored data (known areas, an agency's
scope, references that exist) belong to intake, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from warnpub.cap.model import Alert, Area, Point, Reference, cap_datetime, decimal_text
from warnpub.problems import FieldError

_NAMES_EARLIER = {
    "Update": "updates",
    "Cancel": "cancels",
    "Ack": "acknowledges",
    "Error": "rejects",
}
_FORBIDDEN_IN_IDS = (",", "<", "&")


def offline_errors(alert: Alert) -> list[FieldError]:
    """Every offline rule the alert breaks; empty when it keeps them all."""
    return [error for rule in _RULES for error in rule(alert)]


def _identity(alert: Alert) -> Iterator[FieldError]:
    for name in ("identifier", "sender"):
        value: str = getattr(alert, name)
        if not value:
            yield FieldError(name, f"{name} is empty; give one (no spaces, commas, < or &)")
        elif any(char.isspace() or char in _FORBIDDEN_IN_IDS for char in value):
            yield FieldError(
                name,
                f"{name} {value!r} contains a space, comma, < or &, which CAP forbids because "
                "references quote it as sender,identifier,sent; remove them",
            )


def _scope(alert: Alert) -> Iterator[FieldError]:
    if alert.scope == "Restricted" and not (alert.restriction or "").strip():
        yield FieldError(
            "restriction", "scope is Restricted, so give a restriction saying who may see the alert"
        )
    if alert.scope == "Private" and not (alert.addresses or "").strip():
        yield FieldError(
            "addresses", "scope is Private, so list the recipients' addresses in addresses"
        )


def _references(alert: Alert) -> Iterator[FieldError]:
    verb = _NAMES_EARLIER.get(alert.msg_type)
    if verb and not alert.references and not alert.malformed_references:
        article = "an" if alert.msg_type[0] in "AEIOU" else "a"
        yield FieldError(
            "references",
            f"references is empty; {article} {alert.msg_type} must name the alert(s) it {verb}, "
            "each as sender,identifier,sent",
        )
    for raw in alert.malformed_references:
        try:
            Reference.from_cap(raw)
        except ValueError as exc:
            yield FieldError("references", f"{exc}; write each reference as sender,identifier,sent")


def _times(alert: Alert) -> Iterator[FieldError]:
    for index, info in enumerate(alert.infos):
        if info.expires is None:
            continue
        expires = cap_datetime(info.expires)
        # Equal is allowed: a cancellation may expire the moment it is sent (NWS does this).
        for name, start in (
            ("sent", alert.sent),
            ("effective", info.effective),
            ("onset", info.onset),
        ):
            if start is not None and info.expires < start:
                yield FieldError(
                    f"infos.{index}.expires",
                    f"expires {expires} is before {name} {cap_datetime(start)}; "
                    f"it must not be earlier than {name}",
                )


def _point(point: Point) -> str:
    return f"{decimal_text(point[0])},{decimal_text(point[1])}"


def _out_of_range(lat: float, lon: float) -> str | None:
    if not -90 <= lat <= 90:
        latitude = decimal_text(lat)
        return f"latitude {latitude} is outside -90 to 90 (CAP writes lat,lon: latitude first)"
    if not -180 <= lon <= 180:
        return f"longitude {decimal_text(lon)} is outside -180 to 180"
    return None


def _area_errors(area: Area, path: str) -> Iterator[FieldError]:
    for index, points in enumerate(area.polygons):
        where = f"{path}.polygons.{index}"
        if len(points) < 4:
            yield FieldError(
                where,
                f"the polygon has {len(points)} point(s); it needs at least 4 "
                "(three corners, then the first point again)",
            )
        elif points[0] != points[-1]:
            yield FieldError(
                where,
                f"the polygon is not closed: its last point {_point(points[-1])} must repeat "
                f"the first point {_point(points[0])}",
            )
        for number, (lat, lon) in enumerate(points, 1):
            reason = _out_of_range(lat, lon)
            if reason:
                yield FieldError(where, f"point {number}: {reason}")
                break
    for index, circle in enumerate(area.circles):
        where = f"{path}.circles.{index}"
        reason = _out_of_range(circle.lat, circle.lon)
        if reason:
            yield FieldError(where, f"the circle's centre: {reason}")
        if circle.radius_km < 0:
            yield FieldError(
                where, f"the radius {decimal_text(circle.radius_km)} km is negative; give 0 or more"
            )
    if area.ceiling is not None:
        if area.altitude is None:
            yield FieldError(
                f"{path}.ceiling", "a ceiling needs an altitude; give the altitude too"
            )
        elif area.ceiling < area.altitude:
            yield FieldError(
                f"{path}.ceiling",
                f"the ceiling {decimal_text(area.ceiling)} is below the altitude "
                f"{decimal_text(area.altitude)}",
            )


def _areas(alert: Alert) -> Iterator[FieldError]:
    for info_index, info in enumerate(alert.infos):
        for area_index, area in enumerate(info.areas):
            yield from _area_errors(area, f"infos.{info_index}.areas.{area_index}")


_RULES: tuple[Callable[[Alert], Iterator[FieldError]], ...] = (
    _identity,
    _scope,
    _references,
    _times,
    _areas,
)
