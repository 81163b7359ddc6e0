"""A Chinese red rainstorm warning: division code as 'CPEAS Geographic Code', zh-CN, Extreme → red,
read from CAP XML (UTF-8 and GB encodings) and from JSON into the same model."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from warnpub.cap import (
    Level,
    alert_to_cap_xml,
    offline_errors,
    parse_alert_json,
    parse_cap_xml,
    validate_bytes,
)
from warnpub.problems import Problem

from .shared_data import CHINESE_CAP, CHINESE_JSON


def test_chinese_cap_alert_parses_and_is_red() -> None:
    alert = parse_cap_xml(CHINESE_CAP.encode())
    assert alert.level is Level.RED
    info = alert.infos[0]
    assert info.language == "zh-CN"
    assert info.event == "暴雨"
    assert info.severity == "Extreme"
    [geocode] = info.areas[0].geocodes
    assert (geocode.value_name, geocode.value) == ("CPEAS Geographic Code", "320481101000")
    assert alert.sent.utcoffset() == timedelta(hours=8)
    assert offline_errors(alert) == []
    assert validate_bytes(CHINESE_CAP.encode()).summary == (
        "valid CAP 1.2: Alert, 1 info block, no signature"
    )


def test_json_of_the_same_alert_gives_the_same_model() -> None:
    from_xml = parse_cap_xml(CHINESE_CAP.encode())
    assert parse_alert_json(CHINESE_JSON) == from_xml
    assert parse_alert_json(json.dumps(CHINESE_JSON, ensure_ascii=False).encode()) == from_xml
    assert parse_alert_json(from_xml.model_dump(mode="json")) == from_xml


def test_json_alert_written_as_cap_reads_back_equal() -> None:
    alert = parse_alert_json(CHINESE_JSON)
    written = alert_to_cap_xml(alert)
    assert "溧阳市埭头镇".encode() in written
    assert parse_cap_xml(written) == alert


@pytest.mark.parametrize("encoding", ["GB2312", "GBK", "GB18030"])
def test_gb_encoded_cap_is_read(encoding: str) -> None:
    text = CHINESE_CAP.replace('encoding="UTF-8"', f'encoding="{encoding}"')
    assert parse_cap_xml(text.encode(encoding)) == parse_cap_xml(CHINESE_CAP.encode())


def test_gb_encoded_document_with_a_dtd_is_still_refused() -> None:
    text = CHINESE_CAP.replace('encoding="UTF-8"?>', 'encoding="GBK"?><!DOCTYPE alert>')
    with pytest.raises(Problem) as caught:
        parse_cap_xml(text.encode("gbk"))
    assert caught.value.kind == "xml-forbidden"


def test_bytes_not_in_the_declared_gb_encoding_are_refused() -> None:
    text = CHINESE_CAP.replace('encoding="UTF-8"', 'encoding="GB2312"')
    with pytest.raises(Problem) as caught:
        parse_cap_xml(text.encode("gb18030").replace("暴雨".encode("gb18030"), b"\x81\x30"))
    assert caught.value.status == 400
