"""Levels, references, CAP text helpers and element paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from warnpub.cap import (
    Alert,
    Circle,
    Info,
    Level,
    Reference,
    cap_datetime,
    level_for_severity,
    parse_cap_datetime,
    validate_file,
    xml_path,
)
from warnpub.cap.model import decimal_text, parse_polygon


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (Level.RED, "Extreme"),
        (Level.ORANGE, "Severe"),
        (Level.YELLOW, "Moderate"),
        (Level.BLUE, "Minor"),
    ],
)
def test_levels_map_both_ways(level: Level, severity: str) -> None:
    assert level.severity == severity
    assert level_for_severity(severity) is level
    assert Level.from_severity(severity) is level
    assert Level(level.value) is level


def test_unknown_severity_has_no_level() -> None:
    assert level_for_severity("Unknown") is None
    assert level_for_severity("extreme") is None


def _info(severity: str) -> Info:
    return Info.model_validate(
        {
            "categories": ["Met"],
            "event": "x",
            "urgency": "Expected",
            "severity": severity,
            "certainty": "Likely",
        }
    )


def _alert(*severities: str) -> Alert:
    return Alert(
        identifier="1",
        sender="s",
        sent=datetime(2026, 7, 1, tzinfo=UTC),
        status="Test",
        msg_type="Alert",
        scope="Public",
        infos=[_info(severity) for severity in severities],
    )


def test_alert_level_is_the_highest_among_infos() -> None:
    assert _alert("Minor", "Severe", "Unknown", "Moderate").level is Level.ORANGE
    assert _alert("Minor").level is Level.BLUE
    assert _alert("Unknown").level is None
    assert _alert().level is None
    assert [level.rank for level in Level] == [4, 3, 2, 1]


def test_reference_text_round_trip() -> None:
    text = "hsas@dhs.gov,123,2003-02-02T14:39:01-05:00"
    ref = Reference.from_cap(text)
    assert ref.sent == datetime(2003, 2, 2, 14, 39, 1, tzinfo=timezone(timedelta(hours=-5)))
    assert ref.as_cap() == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a,b", "not 3"),
        ("a,b,c,d", "has 4"),
        ("a,,2003-02-02T14:39:01-05:00", "empty"),
        ("a,b,2003-02-02T14:39:01Z", "not a CAP date-time"),
        ("a,b,2003-02-30T14:39:01+08:00", "not a real date and time"),
    ],
)
def test_malformed_reference_text_says_why(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="is not sender,identifier,sent") as caught:
        Reference.from_cap(text)
    assert fragment in str(caught.value)


def test_cap_datetime_writes_utc_as_minus_zero() -> None:
    assert cap_datetime(datetime(2026, 7, 1, tzinfo=UTC)) == "2026-07-01T00:00:00-00:00"
    beijing = datetime(2026, 7, 1, 8, tzinfo=timezone(timedelta(hours=8)))
    assert cap_datetime(beijing) == "2026-07-01T08:00:00+08:00"
    assert parse_cap_datetime("2026-07-01T00:00:00-00:00") == datetime(2026, 7, 1, tzinfo=UTC)


def test_naive_datetimes_are_refused_with_an_example() -> None:
    with pytest.raises(ValueError, match=r"give a UTC offset, e\.g\. 2026-07-01T08:00:00\+08:00"):
        Alert.model_validate({**_alert().model_dump(), "sent": "2026-07-01T08:00:00"})


def test_cap_text_helpers() -> None:
    assert parse_polygon("38.47,-120.14 +38.34,-119.95\n38.47,-120.14") == [
        (38.47, -120.14),
        (38.34, -119.95),
        (38.47, -120.14),
    ]
    with pytest.raises(ValueError, match="point 1 '1_0,2'"):
        parse_polygon("1_0,2")
    assert Circle.from_cap("32.9525,-115.5527 0").as_cap() == "32.9525,-115.5527 0.0"
    assert decimal_text(1e-7) == "0.0000001"
    assert decimal_text(-0.0) == decimal_text(0.0) == "0.0"


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("sent", "alert/sent"),
        ("msg_type", "alert/msgType"),
        ("references", "alert/references"),
        ("references.2.sent", "alert/references"),
        ("malformed_references", "alert/references"),
        ("infos.0.expires", "alert/info[1]/expires"),
        ("infos.1.areas.0.polygons.2", "alert/info[2]/area[1]/polygon[3]"),
        ("infos.0.areas.0.circles.0.radius_km", "alert/info[1]/area[1]/circle[1]"),
        ("infos.0.areas.1.geocodes.0.value", "alert/info[1]/area[2]/geocode[1]/value"),
        ("infos.0.categories.0", "alert/info[1]/category[1]"),
        ("", "alert"),
    ],
)
def test_model_paths_become_cap_element_paths(field: str, path: str) -> None:
    assert xml_path(field) == path


def test_unreadable_file_is_a_report(tmp_path: Path) -> None:
    report = validate_file(tmp_path / "missing.cap")
    assert not report.ok
    assert report.errors[0].field == "file"
    assert "No such file" in report.summary
