"""JSON intake: malformed bodies are a 400, invalid alerts a 422 naming each field and the fix."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from warnpub.cap import (
    Alert,
    Reference,
    alert_to_cap_xml,
    offline_errors,
    parse_alert_json,
    parse_cap_xml,
)
from warnpub.problems import Problem

from .shared_data import CHINESE_JSON


def alert_json(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(CHINESE_JSON)
    doc.update(changes)
    return doc


def refuse(data: bytes | dict[str, Any]) -> Problem:
    with pytest.raises(Problem) as caught:
        parse_alert_json(data)
    return caught.value


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"identifier": "1",', "line 1, column 20"),
        (b"\xff{}", "UTF-8"),
        (b'{"sender": "a", "sender": "b"}', "'sender' appears twice"),
        (b'{"size": NaN}', "NaN is not a JSON number"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["truncated", "not-utf8", "duplicate-key", "nan", "deep"],
)
def test_malformed_json_is_a_400(body: bytes, fragment: str) -> None:
    problem = refuse(body)
    assert (problem.status, problem.kind) == (400, "malformed")
    assert fragment in problem.detail


def test_a_json_array_is_not_an_alert() -> None:
    problem = refuse(b"[]")
    assert problem.status == 422
    assert problem.errors[0].message == "got an array, expected an object"


def _errors(doc: dict[str, Any]) -> dict[str, str]:
    problem = refuse(doc)
    assert problem.status == 422
    return {error.field: error.message for error in problem.errors}


def test_naive_time_is_refused_with_an_example() -> None:
    doc = alert_json()
    doc["infos"][0]["expires"] = "2026-07-02T08:00:00"
    errors = _errors(doc)
    assert list(errors) == ["infos.0.expires"]
    assert "give a UTC offset, e.g. 2026-07-01T08:00:00+08:00" in errors["infos.0.expires"]


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"sent": None}, "sent", "is not a date-time; write it like 2026-07-01T08:00:00+08:00"),
        ({"sent": "tomorrow"}, "sent", "'tomorrow' is not a date-time"),
        ({"sent": 1782864000}, "sent", "not as a number"),
        ({"status": "Real"}, "status", "'Real' is not allowed; use one of 'Actual'"),
        ({"msgType": "Alert"}, "msgType", "is not a field of this object"),
        ({"infos": [{}]}, "infos.0.event", "is required; add it"),
        ({"infos": "none"}, "infos", "must be a list"),
    ],
    ids=[
        "null-time",
        "word-time",
        "number-time",
        "bad-status",
        "camel-case",
        "empty-info",
        "infos-text",
    ],
)
def test_each_invalid_field_is_named(change: dict[str, Any], field: str, fragment: str) -> None:
    errors = _errors(alert_json(**change))
    assert field in errors, errors
    assert fragment in errors[field]


def test_missing_fields_are_each_reported() -> None:
    doc = alert_json()
    del doc["sent"], doc["scope"]
    errors = _errors(doc)
    assert errors == {"sent": "is required; add it", "scope": "is required; add it"}


@pytest.mark.parametrize(
    ("path", "value", "field", "fragment"),
    [
        (("severity",), "Red", "infos.0.severity", "use one of 'Extreme'"),
        (("categories",), [], "infos.0.categories", "needs at least 1 item(s)"),
        (("language",), "zh_CN", "infos.0.language", "is not a language tag like zh-CN"),
        (("headline",), "bad\x00text", "infos.0.headline", "U+0000, which XML cannot carry"),
        (("areas", 0, "polygons"), [[[91, "x"]]], "infos.0.areas.0.polygons.0.0.1", "number"),
        (("areas", 0, "polygons"), [[[1, "nan"]]], "infos.0.areas.0.polygons.0.0.1", "finite"),
        (("areas", 0, "polygons"), [[[31.4]]], "infos.0.areas.0.polygons.0.0.1", "[lat, lon]"),
        (("areas", 0, "circles"), ["31.4,119.4"], "infos.0.areas.0.circles.0", "lat,lon radius"),
    ],
    ids=[
        "severity",
        "no-category",
        "language",
        "nul",
        "coordinate-word",
        "nan",
        "half-point",
        "circle-text",
    ],
)
def test_nested_errors_have_dotted_paths(
    path: tuple[Any, ...], value: Any, field: str, fragment: str
) -> None:
    doc = alert_json()
    target: Any = doc["infos"][0]
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    errors = _errors(doc)
    assert field in errors, errors
    assert fragment in errors[field]


def test_has_signature_cannot_be_claimed_in_json() -> None:
    errors = _errors(alert_json(has_signature=True))
    assert errors == {"has_signature": "is set by warnpub, not by the sender; remove it"}


def test_references_as_objects_strings_or_one_cap_string() -> None:
    expected = [
        Reference(sender="320481", identifier="A1", sent=datetime(2026, 7, 1, tzinfo=UTC)),
        Reference(sender="320481", identifier="A2", sent=datetime(2026, 7, 1, 1, tzinfo=UTC)),
    ]
    as_text = "320481,A1,2026-07-01T00:00:00-00:00 320481,A2,2026-07-01T01:00:00+00:00"
    as_objects = [ref.model_dump(mode="json") for ref in expected]
    for value in (as_text, as_text.split(), as_objects):
        alert = parse_alert_json(alert_json(msg_type="Update", references=value))
        assert alert.references == expected
        assert alert.malformed_references == []
        assert alert.references_text() == as_text.replace("+00:00", "-00:00")


def test_malformed_reference_strings_are_kept_for_the_rules() -> None:
    alert = parse_alert_json(alert_json(msg_type="Cancel", references="320481,A1 x,y,z"))
    assert alert.references == []
    assert alert.malformed_references == ["320481,A1", "x,y,z"]
    messages = [error.message for error in offline_errors(alert)]
    assert "has 2 comma-separated part(s), not 3" in messages[0]
    assert "the sent part 'z' is not a CAP date-time" in messages[1]
    # and they survive the trip through CAP XML
    assert parse_cap_xml(alert_to_cap_xml(alert)) == alert


def test_reference_objects_must_be_quotable() -> None:
    errors = _errors(
        alert_json(
            references=[{"sender": "a b", "identifier": "x", "sent": "2026-07-01T00:00:00Z"}]
        )
    )
    assert "without spaces or commas" in errors["references.0.sender"]


def test_geometry_may_be_given_as_cap_text() -> None:
    doc = alert_json()
    area = doc["infos"][0]["areas"][0]
    area["polygons"] = ["31.4,119.4 31.5,119.5 31.4,119.6 31.4,119.4"]
    area["circles"] = ["31.4,119.4 5"]
    alert = parse_alert_json(doc)
    assert alert.infos[0].areas[0].polygons[0][1] == (31.5, 119.5)
    assert alert.infos[0].areas[0].circles[0].radius_km == 5.0


def test_times_are_written_as_cap_and_fractions_dropped() -> None:
    alert = parse_alert_json(alert_json(sent="2026-07-01T00:00:00.75Z"))
    assert alert.sent == datetime(2026, 7, 1, tzinfo=UTC)
    assert b"<sent>2026-07-01T00:00:00-00:00</sent>" in alert_to_cap_xml(alert)


def test_numbers_are_written_without_exponents() -> None:
    doc = alert_json()
    doc["infos"][0]["areas"][0].update(
        altitude=1e-05, ceiling=1e20, circles=[{"lat": 31.4, "lon": 119.4, "radius_km": 0.00001}]
    )
    alert = parse_alert_json(doc)
    written = alert_to_cap_xml(alert)
    assert b"<altitude>0.00001</altitude>" in written
    assert b"<ceiling>100000000000000000000</ceiling>" in written
    assert parse_cap_xml(written) == alert


def test_every_schema_property_is_documented() -> None:
    schema = Alert.model_json_schema()
    models = {"Alert": schema, **schema["$defs"]}
    undocumented = [
        f"{model}.{name}"
        for model, definition in models.items()
        for name, prop in definition.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undocumented == []
    assert "has_signature" not in schema["properties"]
    assert "malformed_references" not in schema["properties"]
    assert json.dumps(schema)  # serialisable as the published schema
