"""Property tests of the CAP parser and writer.

- Arbitrary bytes, and valid CAP documents mutated (bytes flipped, cut, repeated, hostile
  snippets spliced in), never raise anything but the parser's own refusal, a 4xx
  :class:`~warnpub.problems.Problem` with something to say.
- The same for JSON: arbitrary JSON values and mutated valid alerts.
- Generated valid alerts round-trip: model → CAP XML (schema-valid) → model, and model → JSON →
  model, unchanged.
- Schema errors point at the same element paths as a direct (slow) computation would.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from tests.cap.shared_data import CHINESE_CAP, VALID_DIR
from tests.factories import alert_json, cap_xml
from tests.security.hypothesis_setup import examples
from warnpub.cap import (
    Alert,
    alert_to_cap_xml,
    cap12_schema,
    parse_alert_json,
    parse_cap_xml,
    safe_xml,
)
from warnpub.cap.schema import _ErrorPaths, element_path, schema_errors
from warnpub.problems import Problem

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
SEEDS = [CHINESE_CAP.encode(), cap_xml()] + [
    path.read_bytes() for path in sorted(VALID_DIR.iterdir()) if path.suffix != ".xsd"
]
HOSTILE = [
    b'<!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    b"&x;",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<?pi x?>",
    b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd"/>',
    b"<info/>",
    b"</alert>",
    b"<alert>",
    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.1">',
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
    b"\xed\xa0\x80",  # a UTF-8-encoded surrogate
    b'encoding="UTF-16"',
    b'encoding="GB18030"',
    b"&#0;",
    b"&#xD800;",
    b"&amp;&lt;",
    "暴雨".encode(),
    b"2026-02-30T25:61:00+08:00",
    b"-1e400",
    b"NaN",
    b"90.0000001,180.1 0,0",
]


def refused_or_parsed(parse: Any, data: Any) -> Alert | None:
    """Parse; a refusal must be a Problem with a 4xx status and a detail. Anything else (a
    TypeError, a RecursionError, a lxml error) fails the property by propagating."""
    try:
        return parse(data)
    except Problem as problem:
        assert 400 <= problem.status < 500, problem
        assert problem.detail.strip(), problem
        for error in problem.errors:
            assert error.field and error.message, problem
        return None


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["flip", "cut", "delete", "repeat", "insert", "hostile"]))
        if how == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif how == "cut":
            del data[at:]
        elif how == "delete":
            del data[at : at + draw(st.integers(1, 200))]
        elif how == "repeat":
            chunk = data[at : at + draw(st.integers(1, 200))]
            data[at:at] = chunk * draw(st.integers(1, 5))
        elif how == "insert":
            data[at:at] = draw(st.binary(max_size=40))
        else:
            data[at:at] = draw(st.sampled_from(HOSTILE))
    return bytes(data)


@examples(300)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_are_parsed_or_refused(data: bytes) -> None:
    refused_or_parsed(parse_cap_xml, data)


@examples(300)
@given(mutated())
def test_mutated_cap_is_parsed_or_refused(data: bytes) -> None:
    alert = refused_or_parsed(parse_cap_xml, data)
    if alert is not None:
        # What is accepted can be written back out as valid CAP.
        assert cap12_schema().validate(etree.fromstring(alert_to_cap_xml(alert)))


@examples(200)
@given(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300).map(
        lambda text: f'<alert xmlns="{CAP12}">{text}</alert>'.encode()
    )
)
def test_text_inside_an_alert_is_parsed_or_refused(data: bytes) -> None:
    refused_or_parsed(parse_cap_xml, data)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
ALERT_KEYS = list(alert_json().keys()) + list(alert_json()["infos"][0].keys())


@st.composite
def mutated_json(draw: st.DrawFn) -> dict[str, Any]:
    doc = alert_json()
    info = doc["infos"][0]
    targets = [doc, info, info["areas"][0]]  # kept even when a mutation detaches them
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(targets))
        key = draw(st.sampled_from([*ALERT_KEYS, "areas", "geocodes", "polygons", "circles"]))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(JSON_VALUES)
    return doc


@examples(200)
@given(JSON_VALUES)
def test_arbitrary_json_is_parsed_or_refused(value: Any) -> None:
    refused_or_parsed(parse_alert_json, json.dumps(value).encode())


@examples(300)
@given(mutated_json())
def test_mutated_json_alert_is_parsed_or_refused(doc: dict[str, Any]) -> None:
    alert = refused_or_parsed(parse_alert_json, json.dumps(doc).encode())
    if alert is not None:
        assert cap12_schema().validate(etree.fromstring(alert_to_cap_xml(alert)))


# --- round trips --------------------------------------------------------------------------------

# Text an agency may write: any character XML can carry (the model refuses the others).
XML_TEXT = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_categories=["Cs"],
        exclude_characters="\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x11\x12"
        "\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\ufffe\uffff",
    ),
    min_size=1,
    max_size=80,
)
# Names in CAP: no white space, commas, < or & (the schema's pattern for sender/identifier).
TOKEN = st.text(
    alphabet=st.characters(codec="ascii", categories=["L", "N"], include_characters="-_.@:"),
    min_size=1,
    max_size=40,
)
LAT, LON = st.floats(-90, 90, allow_nan=False), st.floats(-180, 180, allow_nan=False)
WHEN = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
).map(lambda when: when.replace(microsecond=0))
OFFSETS = st.sampled_from([timezone(timedelta(hours=8)), UTC, timezone(timedelta(hours=-5))])


def _stripped(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    # CAP elements other than description/instruction are read without surrounding white space.
    return strategy.map(str.strip).filter(bool)


@st.composite
def areas(draw: st.DrawFn) -> dict[str, Any]:
    ring = draw(st.lists(st.tuples(LAT, LON), min_size=3, max_size=6))
    return {
        "area_desc": draw(_stripped(XML_TEXT)),
        "polygons": [[*ring, ring[0]]] if draw(st.booleans()) else [],
        "circles": draw(
            st.lists(
                st.builds(
                    lambda lat, lon, r: {"lat": lat, "lon": lon, "radius_km": r},
                    LAT,
                    LON,
                    st.floats(0, 1000, allow_nan=False),
                ),
                max_size=2,
            )
        ),
        "geocodes": [
            {
                "value_name": "CPEAS Geographic Code",
                "value": draw(st.from_regex(r"\d{12}", fullmatch=True)),
            }
        ],
    }


@st.composite
def alerts(draw: st.DrawFn) -> dict[str, Any]:
    offset = draw(OFFSETS)
    sent = draw(WHEN).astimezone(offset)
    infos = []
    for language in draw(
        st.lists(st.sampled_from(["zh-CN", "en-US", "en"]), min_size=1, max_size=3, unique=True)
    ):
        infos.append(
            {
                "language": language,
                "categories": draw(
                    st.lists(
                        st.sampled_from(["Met", "Geo", "Safety"]),
                        min_size=1,
                        max_size=2,
                        unique=True,
                    )
                ),
                "event": draw(_stripped(XML_TEXT)),
                "urgency": draw(st.sampled_from(["Immediate", "Expected", "Unknown"])),
                "severity": draw(
                    st.sampled_from(["Extreme", "Severe", "Moderate", "Minor", "Unknown"])
                ),
                "certainty": draw(st.sampled_from(["Observed", "Likely", "Unknown"])),
                "expires": (sent + timedelta(hours=draw(st.integers(1, 72)))).isoformat(),
                "headline": draw(_stripped(XML_TEXT)),
                # Not white space alone: XML reads an optional element holding only white space
                # as absent, JSON keeps it (reported in issue 9; harmless either way).
                "description": draw(XML_TEXT.filter(str.strip)),
                "instruction": draw(XML_TEXT.filter(str.strip)),
                "areas": draw(st.lists(areas(), min_size=1, max_size=2)),
            }
        )
    return {
        "identifier": draw(TOKEN),
        "sender": draw(TOKEN),
        "sent": sent.isoformat(),
        "status": draw(st.sampled_from(["Actual", "Exercise", "Test"])),
        "msg_type": "Alert",
        "scope": "Public",
        "note": draw(st.none() | _stripped(XML_TEXT)),
        "infos": infos,
    }


@examples(150)
@given(alerts())
def test_valid_alerts_round_trip_through_cap_xml_and_json(doc: dict[str, Any]) -> None:
    alert = parse_alert_json(json.dumps(doc).encode())
    written = alert_to_cap_xml(alert)
    assert cap12_schema().validate(etree.fromstring(written)), cap12_schema().error_log
    assert parse_cap_xml(written) == alert
    assert alert_to_cap_xml(parse_cap_xml(written)) == written
    assert parse_alert_json(alert.model_dump(mode="json")) == alert


# --- schema error paths -------------------------------------------------------------------------


NEW_ELEMENTS = [
    f"{{{CAP12}}}info",
    f"{{{CAP12}}}area",
    f"{{{CAP12}}}geocode",
    f"{{{CAP12}}}polygon",
    "b",  # no namespace: libxml2 names it in its paths
    "{urn:other}b",
]


@st.composite
def reshaped(draw: st.DrawFn) -> etree._Element:
    """A valid example with elements copied, removed and added: well-formed, rarely valid."""
    root = safe_xml.parse_untrusted_xml(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        nodes = list(root.iter(etree.Element))
        node = draw(st.sampled_from(nodes))
        parent = node.getparent()
        how = draw(st.sampled_from(["copy", "remove", "add"]))
        if how == "copy" and parent is not None:
            for _ in range(draw(st.integers(1, 3))):
                parent.insert(parent.index(node), copy.deepcopy(node))
        elif how == "remove" and parent is not None:
            parent.remove(node)
        else:
            tag = draw(st.sampled_from(NEW_ELEMENTS))
            node.insert(draw(st.integers(0, len(node))), etree.Element(tag))
    return root


@examples(150)
@given(reshaped())
def test_schema_error_paths_match_a_direct_computation(root: etree._Element) -> None:
    tree = root.getroottree()
    paths = _ErrorPaths(root)
    for node in root.iter(etree.Element):
        assert paths.get(tree.getpath(node)) == element_path(node)
    # And the errors the schema reports name those same elements.
    for error in schema_errors(root):
        assert error.field.startswith("alert"), error


@pytest.mark.parametrize("prefix", ["", "x:"])
def test_error_paths_of_elements_in_no_or_another_namespace(prefix: str) -> None:
    """Steps that libxml2 writes by name (no namespace) or with a prefix resolve too."""
    ns = ' xmlns:x="urn:other"' if prefix else ""
    data = (
        f'<alert xmlns="{CAP12}"><identifier>a</identifier>'
        f'<{prefix}b xmlns=""{ns}/><{prefix}b xmlns=""{ns}><{prefix}c/></{prefix}b></alert>'
    ).encode()
    root = safe_xml.parse_untrusted_xml(data)
    tree = root.getroottree()
    paths = _ErrorPaths(root)
    for node in root.iter(etree.Element):
        assert paths.get(tree.getpath(node)) == element_path(node)
    assert paths.get("/*/*[99]") == "alert"  # a path that names no element
