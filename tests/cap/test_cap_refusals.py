"""Every file in ../shared/data/cap-invalid and every hostile or broken XML input is refused
with a specific reason, fast, without touching files or the network."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from lxml import etree

from warnpub.cap import offline_errors, parse_cap_xml, safe_xml, validate_bytes
from warnpub.problems import Problem

from .shared_data import CHINESE_CAP, example, loopback_listener

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"


def refuse(data: bytes) -> Problem:
    with pytest.raises(Problem) as caught:
        parse_cap_xml(data)
    return caught.value


_WATCHING: list[list[str]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _WATCHING and event in ("open", "socket.connect", "urllib.Request", "socket.getaddrinfo"):
        _WATCHING[-1].append(f"{event} {args[0]!r}")


sys.addaudithook(_audit)


@contextmanager
def python_io() -> Iterator[list[str]]:
    """Record file opens and socket connections made from Python inside the block."""
    events: list[str] = []
    _WATCHING.append(events)
    try:
        yield events
    finally:
        _WATCHING.remove(events)


# --- the shared invalid files -----------------------------------------------------------------


def test_missing_scope_is_refused_by_the_schema() -> None:
    problem = refuse(example("invalid.cap"))
    assert (problem.status, problem.kind) == (422, "cap-schema")
    [error] = problem.errors
    assert error.field == "alert/info[1]"
    assert "<scope>" in error.message
    assert "(line 9)" in error.message


def test_update_with_empty_references_is_refused_by_the_rules() -> None:
    data = example("canada_errors.cap")
    alert = parse_cap_xml(data)  # schema-valid: <references/> is an empty string to XSD
    assert alert.references == [] and alert.malformed_references == []
    [error] = offline_errors(alert)
    assert error.field == "references"
    assert "an Update must name the alert(s) it updates" in error.message
    report = validate_bytes(data)
    assert not report.ok
    assert report.errors[0].field == "alert/references"
    assert "references is empty" in report.summary


def test_cap_1_1_is_refused_with_a_clear_message() -> None:
    problem = refuse(example("noaa_errors.cap"))
    assert (problem.status, problem.kind) == (422, "cap-version")
    assert problem.detail == (
        "CAP 1.1 (urn:oasis:names:tc:emergency:cap:1.1) is not accepted; "
        "send CAP 1.2 (urn:oasis:names:tc:emergency:cap:1.2)"
    )
    assert not validate_bytes(example("noaa_errors.cap")).ok


def test_xxe_file_is_refused_as_a_dtd_fast_and_without_io() -> None:
    data = example("xee.cap")
    with loopback_listener(8080) as connections, python_io() as io:
        started = time.perf_counter()
        problem = refuse(data)
        elapsed = time.perf_counter() - started
        time.sleep(0.2)  # give a stray fetch time to arrive
    assert (problem.status, problem.kind) == (400, "xml-forbidden")
    assert "DTDs and entity declarations are not allowed in CAP" in problem.detail
    assert elapsed < 0.5
    assert connections == []
    assert io == []
    assert "root:" not in str(problem)


def test_lxml_alone_resolves_nothing_either(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: with the defusedxml pass switched off, lxml still loads no DTD,
    expands no entity and fetches nothing; the schema then refuses the stray elements."""
    data = example("xee.cap")
    monkeypatch.setattr(safe_xml, "_refuse_hostile", lambda data: None)
    with loopback_listener(8080) as connections:
        root = safe_xml.parse_untrusted_xml(data)
        problem = refuse(data)
        time.sleep(0.2)
    assert connections == []
    text = etree.tostring(root, encoding="unicode")
    assert "root:" not in text
    assert "&xxe;" in text  # the reference is left as it was, never expanded
    assert problem.kind == "cap-schema"
    assert problem.errors[0].field == "alert/x"


# --- hostile and broken XML built here ---------------------------------------------------------


def test_billion_laughs_is_refused_in_well_under_a_second() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
    ]
    bomb = (
        f'<?xml version="1.0"?><!DOCTYPE alert [{"".join(entities)}]>'
        f'<alert xmlns="{CAP12}"><identifier>&lol9;</identifier></alert>'
    ).encode()
    started = time.perf_counter()
    problem = refuse(bomb)
    assert time.perf_counter() - started < 0.2
    assert (problem.status, problem.kind) == (400, "xml-forbidden")


def test_external_file_entity_is_refused() -> None:
    data = (
        '<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f'<alert xmlns="{CAP12}"><identifier>&x;</identifier></alert>'
    ).encode()
    with python_io() as io:
        problem = refuse(data)
    assert problem.kind == "xml-forbidden"
    assert io == []


def test_invalid_utf8_is_refused() -> None:
    data = CHINESE_CAP.encode().replace("暴雨".encode(), b"\xff\xfe")
    problem = refuse(data)
    assert (problem.status, problem.kind) == (400, "malformed")
    assert "not valid UTF-8" in problem.detail


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>", "malformed"),
        (b"not xml at all", "malformed"),
        (b"<a></b>", "line 1"),
    ],
    ids=["empty", "truncated", "text", "mismatched-tag"],
)
def test_malformed_xml_is_a_400(data: bytes, fragment: str) -> None:
    problem = refuse(data)
    assert problem.status == 400
    assert fragment in problem.detail


@pytest.mark.parametrize(
    ("root", "fragment"),
    [
        ('<alert xmlns="http://www.incident.com/cap/1.0"/>', "CAP 1.0"),
        ("<alert/>", "has no namespace"),
        ('<feed xmlns="http://www.w3.org/2005/Atom"/>', "http://www.w3.org/2005/Atom"),
        (f'<info xmlns="{CAP12}"/>', "must be a CAP 1.2 <alert>"),
    ],
    ids=["cap-1.0", "no-namespace", "atom", "not-alert"],
)
def test_documents_other_than_a_cap12_alert_are_refused(root: str, fragment: str) -> None:
    problem = refuse(root.encode())
    assert problem.status == 422
    assert fragment in str(problem)


def _chinese(old: str, new: str) -> bytes:
    assert old in CHINESE_CAP
    return CHINESE_CAP.replace(old, new, 1).encode()


def test_schema_errors_are_one_per_problem_in_plain_words() -> None:
    data = _chinese("+08:00</sent>", "Z</sent>").replace(b">Actual<", b">Real<")
    problem = refuse(data)
    assert problem.kind == "cap-schema"
    by_field = {error.field: error.message for error in problem.errors}
    assert set(by_field) == {"alert/sent", "alert/status"}
    assert "write it like 2026-07-01T08:00:00+08:00" in by_field["alert/sent"]
    assert (
        "'Real' is not allowed in <status>; use one of Actual, Exercise" in by_field["alert/status"]
    )
    assert "(line 5)" in by_field["alert/sent"]
    assert "{urn:" not in str(problem)


def test_schema_error_paths_point_at_the_repeated_element() -> None:
    data = _chinese(
        "<areaDesc>溧阳市埭头镇</areaDesc>",
        "<areaDesc>溧阳市埭头镇</areaDesc><altitude>1e3</altitude><ceiling>x</ceiling>",
    )
    problem = refuse(data)
    fields = [error.field for error in problem.errors]
    assert fields[0] == "alert/info[1]/area[1]/altitude"
    assert "is not a decimal number" in problem.errors[0].message


@pytest.mark.parametrize(
    ("area", "field", "fragment"),
    [
        (
            "<polygon>31.4,119.4 31.5,119.5, 31.4,119.6 31.4,119.4</polygon>",
            "alert/info[1]/area[1]/polygon[1]",
            "point 2 '31.5,119.5,' is not 'lat,lon'",
        ),
        (
            "<circle>31.4,119.4</circle>",
            "alert/info[1]/area[1]/circle[1]",
            "is not 'lat,lon radius'",
        ),
        (
            "<circle>31.4,119.4 ten</circle>",
            "alert/info[1]/area[1]/circle[1]",
            "radius 'ten' is not a decimal number",
        ),
    ],
    ids=["polygon-stray-comma", "circle-no-radius", "circle-radius-word"],
)
def test_geometry_text_the_model_cannot_read_is_a_422(area: str, field: str, fragment: str) -> None:
    problem = refuse(_chinese("</areaDesc>", "</areaDesc>" + area))
    assert (problem.status, problem.kind) == (422, "cap-invalid")
    assert problem.errors[0].field == field
    assert fragment in problem.errors[0].message


def test_schema_location_hint_is_not_fetched() -> None:
    hint = (
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="urn:oasis:names:tc:emergency:cap:1.2 http://127.0.0.1:8080/cap.xsd">'
    )
    data = _chinese('<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">', hint)
    with loopback_listener(8080) as connections:
        alert = parse_cap_xml(data)
        time.sleep(0.2)
    assert connections == []
    assert alert.identifier == "32048141600000020260701080000001"


def test_a_flood_of_schema_errors_is_capped() -> None:
    bad = "<severity>Huge</severity>"
    infos = CHINESE_CAP[CHINESE_CAP.index("<info>") : CHINESE_CAP.index("</info>") + 7]
    flood = CHINESE_CAP.replace(infos, infos.replace("<severity>Extreme</severity>", bad) * 150)
    problem = refuse(flood.encode())
    assert len(problem.errors) == 101
    assert problem.errors[0].field == "alert/info[1]/severity"
    assert problem.errors[-1].message == "… and 50 more schema errors"
