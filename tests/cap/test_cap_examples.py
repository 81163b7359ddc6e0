"""Every valid CAP 1.2 example in ../shared/data/cap parses, passes the schema and the offline
rules, and survives parse → write → parse unchanged."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from warnpub.cap import (
    Circle,
    Level,
    Reference,
    alert_to_cap_xml,
    cap12_schema,
    offline_errors,
    parse_cap_xml,
    validate_bytes,
    validate_file,
)

from .shared_data import example, valid_examples


@pytest.mark.parametrize("path", valid_examples())
def test_example_parses_passes_rules_and_round_trips(path: Path) -> None:
    alert = parse_cap_xml(path.read_bytes())
    assert offline_errors(alert) == []

    written = alert_to_cap_xml(alert)
    assert cap12_schema().validate(etree.fromstring(written))
    again = parse_cap_xml(written)
    # A signature cannot be carried over, so the written document is unsigned.
    assert again == alert.model_copy(update={"has_signature": False})
    assert alert_to_cap_xml(again) == written

    report = validate_file(path)
    assert report.ok, report.errors
    assert report.errors == []
    assert report.summary.startswith(f"valid CAP 1.2: {alert.msg_type}, ")


def test_iso_8859_1_example_is_decoded_and_its_signature_noted() -> None:
    alert = parse_cap_xml(example("earthquake-iso8859-1.cap"))
    info = alert.infos[0]
    assert info.headline == "EQ 4.6 Usulután, Usulután, El Salvador - PRELIMINARY REPORT"
    assert info.language == "en-US"  # no <language>: CAP's default
    assert info.areas[0].circles == [Circle(lat=12.747, lon=-88.783, radius_km=0.0)]
    assert alert.addresses == "0"
    assert alert.codes == ["IPAWSv1.0"]
    assert alert.has_signature
    assert "has_signature" not in alert.model_dump()
    assert alert.level is None  # severity Unknown maps to no colour


def test_signed_canadian_update_keeps_every_reference_and_both_languages() -> None:
    report = validate_bytes(example("canada_signed.cap"))
    assert report.ok
    assert report.summary == "valid CAP 1.2: Update, 2 info blocks, signature present"
    alert = report.alert
    assert alert is not None
    assert len(alert.references) == 9
    assert alert.references[0] == Reference(
        sender="cap-pac@ec.gc.ca",
        identifier="2.49.0.1.124.726d2331.2013",
        sent=datetime(2013, 1, 23, 21, 31, tzinfo=UTC),
    )
    assert alert.malformed_references == []
    assert [info.language for info in alert.infos] == ["en-CA", "fr-CA"]
    assert alert.codes == ["profile:CAP-CP:0.4", "layer:EC-MSC-SMC:1.0", "layer:SOREM:1.0"]
    # <restriction/>, <note/>, <contact/> carry nothing and stay None.
    assert alert.restriction is None and alert.note is None and alert.infos[0].contact is None
    polygon = alert.infos[0].areas[0].polygons[0]
    assert polygon[0] == polygon[-1] == (54.4054, -104.2)
    assert alert.level is Level.YELLOW


def test_prefixed_namespace_and_repeated_infos() -> None:
    alert = parse_cap_xml(example("australia.cap"))
    assert len(alert.infos) == 2
    assert alert.infos[0] == alert.infos[1]
    assert alert.infos[0].categories == ["Fire", "Met"]
    assert alert.infos[0].areas[0].circles[0].as_cap() == "-35.3888,147.0598 25.0"
    assert alert.infos[0].parameters[5].value == ""  # <cap:value /> is kept as an empty value
    assert alert.level is Level.BLUE


def test_cancellation_that_expires_when_sent_is_accepted() -> None:
    alert = parse_cap_xml(example("google-PAAQ-4-mg5a94.xml"))
    assert alert.infos[0].expires == alert.sent
    assert offline_errors(alert) == []
    assert alert.has_signature  # the "..." placeholder Signature is still an XML-DSig element
    assert [ref.identifier for ref in alert.references] == [
        "PAAQ-1-mg5a94",
        "PAAQ-2-mg5a94",
        "PAAQ-3-mg5a94",
    ]


def test_free_text_is_kept_verbatim() -> None:
    alert = parse_cap_xml(example("thunderstorm.cap"))
    info = alert.infos[0]
    assert info.description is not None
    assert info.description.startswith(" AT 254 PM PDT")
    assert "SEVERE \nTHUNDERSTORM" in info.description
    assert [g.value for g in info.areas[0].geocodes] == ["006109", "006009", "006003"]
    assert len(info.areas[0].polygons[0]) == 5


def test_tsunami_warning_is_red_with_all_resources_and_parameters() -> None:
    alert = parse_cap_xml(example("wcatwc-warning.cap"))
    assert alert.level is Level.RED
    assert alert.incidents == "lqw6d6"
    assert len(alert.infos[0].resources) == 3
    assert len(alert.infos[0].parameters) > 30


def test_parsing_from_many_threads_at_once() -> None:
    documents = [example(name) for name in ("canada_signed.cap", "australia.cap", "invalid.cap")]
    expected = [validate_bytes(data).summary for data in documents]
    with ThreadPoolExecutor(max_workers=8) as pool:
        summaries = list(pool.map(lambda data: validate_bytes(data).summary, documents * 40))
    assert summaries == expected * 40
