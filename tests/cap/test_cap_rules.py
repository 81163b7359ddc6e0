"""The offline rules, one table row per rule: a tweak to a valid alert → the field and message."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from warnpub.cap import Alert, alert_to_cap_xml, offline_errors, validate_bytes

BASE: dict[str, Any] = {
    "identifier": "320481-2026-0001",
    "sender": "320481000000",
    "sent": "2026-07-01T08:00:00+08:00",
    "status": "Exercise",
    "msg_type": "Alert",
    "scope": "Public",
    "infos": [
        {
            "language": "zh-CN",
            "categories": ["Met"],
            "event": "暴雨",
            "urgency": "Immediate",
            "severity": "Severe",
            "certainty": "Likely",
            "effective": "2026-07-01T08:00:00+08:00",
            "onset": "2026-07-01T09:00:00+08:00",
            "expires": "2026-07-01T20:00:00+08:00",
            "areas": [
                {
                    "area_desc": "溧阳市",
                    "polygons": [[[31.4, 119.4], [31.5, 119.5], [31.4, 119.6], [31.4, 119.4]]],
                    "circles": [{"lat": 31.43, "lon": 119.48, "radius_km": 10}],
                    "geocodes": [{"value_name": "CPEAS Geographic Code", "value": "320481000000"}],
                }
            ],
        }
    ],
}

Tweak = Callable[[dict[str, Any]], None]


def info(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["infos"][0]


def area(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["infos"][0]["areas"][0]


def setting(**changes: Any) -> Tweak:
    return lambda doc: doc.update(changes)


def in_info(**changes: Any) -> Tweak:
    return lambda doc: info(doc).update(changes)


def in_area(**changes: Any) -> Tweak:
    return lambda doc: area(doc).update(changes)


def polygon(*points: tuple[float, float]) -> Tweak:
    return in_area(polygons=[[list(point) for point in points]])


POLY = "infos.0.areas.0.polygons.0"
CIRCLE = "infos.0.areas.0.circles.0"

RULES: list[Any] = [
    pytest.param(
        in_info(expires="2026-07-01T07:59:59+08:00", effective=None, onset=None),
        "infos.0.expires",
        "is before sent 2026-07-01T08:00:00+08:00",
        id="expires-before-sent",
    ),
    pytest.param(
        in_info(effective="2026-07-01T21:00:00+08:00", onset=None),
        "infos.0.expires",
        "is before effective",
        id="expires-before-effective",
    ),
    pytest.param(
        in_info(onset="2026-07-01T21:00:00+08:00"),
        "infos.0.expires",
        "is before onset",
        id="expires-before-onset",
    ),
    pytest.param(
        setting(msg_type="Update"),
        "references",
        "an Update must name the alert(s) it updates",
        id="update-without-references",
    ),
    pytest.param(
        setting(msg_type="Cancel"),
        "references",
        "a Cancel must name the alert(s) it cancels",
        id="cancel-without-references",
    ),
    pytest.param(
        setting(msg_type="Update", references="320481000000,320481-2026-0000"),
        "references",
        "has 2 comma-separated part(s), not 3",
        id="reference-two-parts",
    ),
    pytest.param(
        setting(msg_type="Cancel", references="320481000000,x,2026-07-01T08:00:00"),
        "references",
        "the sent part '2026-07-01T08:00:00' is not a CAP date-time",
        id="reference-naive-sent",
    ),
    pytest.param(
        setting(references=",x,2026-07-01T08:00:00+08:00"),
        "references",
        "the sender or identifier is empty",
        id="reference-empty-sender-even-on-alert",
    ),
    pytest.param(
        polygon((31.4, 119.4), (31.5, 119.5), (31.4, 119.6), (31.3, 119.4)),
        POLY,
        "not closed: its last point 31.3,119.4 must repeat the first point 31.4,119.4",
        id="polygon-open",
    ),
    pytest.param(
        polygon((31.4, 119.4), (31.5, 119.5), (31.4, 119.4)),
        POLY,
        "has 3 point(s); it needs at least 4",
        id="polygon-three-points",
    ),
    pytest.param(
        polygon((119.4, 31.4), (119.5, 31.5), (119.4, 31.6), (119.4, 31.4)),
        POLY,
        "point 1: latitude 119.4 is outside -90 to 90 (CAP writes lat,lon: latitude first)",
        id="polygon-lon-lat-swapped",
    ),
    pytest.param(
        polygon((31.4, 119.4), (31.5, 190.5), (31.4, 119.6), (31.4, 119.4)),
        POLY,
        "point 2: longitude 190.5 is outside -180 to 180",
        id="polygon-longitude",
    ),
    pytest.param(
        in_area(circles=["31.43,119.48 -1"]),
        CIRCLE,
        "the radius -1.0 km is negative; give 0 or more",
        id="circle-negative-radius",
    ),
    pytest.param(
        in_area(circles=["-91,119.48 5"]),
        CIRCLE,
        "the circle's centre: latitude -91.0 is outside -90 to 90",
        id="circle-latitude",
    ),
    pytest.param(
        setting(scope="Private"),
        "addresses",
        "scope is Private, so list the recipients' addresses",
        id="private-without-addresses",
    ),
    pytest.param(
        setting(scope="Restricted", restriction="  "),
        "restriction",
        "scope is Restricted, so give a restriction",
        id="restricted-without-restriction",
    ),
    pytest.param(
        setting(identifier="320481 2026"),
        "identifier",
        "contains a space, comma, < or &",
        id="identifier-with-space",
    ),
    pytest.param(
        setting(sender="气象局,溧阳"),
        "sender",
        "contains a space, comma, < or &",
        id="sender-with-comma",
    ),
    pytest.param(setting(sender=""), "sender", "sender is empty", id="empty-sender"),
    pytest.param(
        in_area(ceiling=1000),
        "infos.0.areas.0.ceiling",
        "a ceiling needs an altitude",
        id="ceiling-without-altitude",
    ),
    pytest.param(
        in_area(altitude=500, ceiling=100),
        "infos.0.areas.0.ceiling",
        "the ceiling 100.0 is below the altitude 500.0",
        id="ceiling-below-altitude",
    ),
]


def alert_with(tweak: Tweak | None = None) -> Alert:
    doc = copy.deepcopy(BASE)
    if tweak is not None:
        tweak(doc)
    return Alert.model_validate(doc)


def test_the_base_alert_keeps_every_rule() -> None:
    assert offline_errors(alert_with()) == []


@pytest.mark.parametrize(("tweak", "field", "fragment"), RULES)
def test_rule(tweak: Tweak, field: str, fragment: str) -> None:
    errors = offline_errors(alert_with(tweak))
    assert len(errors) == 1, errors
    assert errors[0].field == field
    assert fragment in errors[0].message


@pytest.mark.parametrize(
    "tweak",
    [
        setting(references="320481000000,320481-2026-0000,2026-07-01T07:00:00+08:00"),
        in_info(expires="2026-07-01T08:00:00+08:00", effective=None, onset=None),
        setting(scope="Private", addresses="13800000000 13900000000"),
        setting(scope="Restricted", restriction="县应急管理局值班室"),
        in_area(circles=["31.43,119.48 0"], altitude=100, ceiling=100),
        setting(msg_type="Update", references="a,b,2026-07-01T07:00:00+08:00"),
    ],
    ids=[
        "alert-may-carry-references",
        "expires-equal-to-sent",
        "private-with-addresses",
        "restricted-with-restriction",
        "zero-radius-and-flat-area",
        "update-with-reference",
    ],
)
def test_allowed(tweak: Tweak) -> None:
    assert offline_errors(alert_with(tweak)) == []


def test_xml_report_names_cap_elements() -> None:
    alert = alert_with(polygon((31.4, 119.4), (31.5, 119.5), (31.4, 119.6), (31.3, 119.4)))
    report = validate_bytes(alert_to_cap_xml(alert))
    assert not report.ok
    assert [error.field for error in report.errors] == ["alert/info[1]/area[1]/polygon[1]"]
    assert report.summary.startswith("alert/info[1]/area[1]/polygon[1]: the polygon is not closed")
