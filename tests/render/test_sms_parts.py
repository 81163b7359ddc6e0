"""SMS counting against the public reference vectors, plus our own tables and the cut rule."""

from __future__ import annotations

import csv
import re

import pytest

from tests.conftest import SHARED_DATA
from warnpub.render.sms_parts import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    PER_PART,
    SINGLE,
    SmsCount,
    boundary,
    count,
    encoding_of,
    fit,
    split,
)

VECTORS = SHARED_DATA / "sms" / "sms-segment-test-vectors.csv"
ENCODING_NAMES = {"GSM-7": "GSM-7", "GSM_7BIT": "GSM-7", "UCS-2": "UCS-2", "UTF16": "UCS-2"}


def _vectors() -> list[dict[str, str]]:
    with VECTORS.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _stated(row: dict[str, str]) -> dict[str, int]:
    """The numbers a vector's source states besides encoding and segments (length=10; …)."""
    return {
        key: int(value)
        for key, value in re.findall(r"(\w+)=(\d+)", row["other_expected_values_from_source"])
    }


def test_all_ten_vectors_are_there() -> None:
    rows = _vectors()
    assert len(rows) == 10
    assert {row["source_repo"] for row in rows} == {
        "TwilioDevEd/message-segment-calculator",
        "instasent/sms-counter-php",
    }
    carriage = next(row for row in rows if row["test_name"] == "testCarriageReturn")
    assert carriage["message"] == "\n\r"


@pytest.mark.parametrize("row", _vectors(), ids=lambda row: row["test_name"])
def test_reference_vector(row: dict[str, str]) -> None:
    result = count(row["message"])
    assert result.encoding == ENCODING_NAMES[row["expected_encoding"]]
    assert result.parts == int(row["expected_segments"])
    stated = _stated(row)
    if "length" in stated:  # instasent: length in septets / UTF-16 units, per part, remaining
        assert result.units == stated["length"]
        assert result.per_part == stated["per_message"]
        assert result.remaining == stated["remaining"]
    if "messageSize" in stated:  # Twilio: bits, 7 per septet or 16 per unit, +48 UDH per part
        bits = 7 if result.encoding == "GSM-7" else 16
        assert result.units * bits == stated["messageSize"]
        udh = 48 * result.parts if result.parts > 1 else 0
        assert result.units * bits + udh == stated["totalSize"]


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts", "per_part", "remaining"),
    [
        ("", "GSM-7", 0, 1, 160, 160),
        ("a" * 160, "GSM-7", 160, 1, 160, 0),
        ("a" * 161, "GSM-7", 161, 2, 153, 145),
        ("a" * 306, "GSM-7", 306, 2, 153, 0),
        ("a" * 307, "GSM-7", 307, 3, 153, 152),
        ("€" * 80, "GSM-7", 160, 1, 160, 0),
        ("€" * 81, "GSM-7", 162, 2, 153, 143),  # 76 € (152) + 5 € (10) in the second part
        ("暴" * 70, "UCS-2", 70, 1, 70, 0),
        ("暴" * 71, "UCS-2", 71, 2, 67, 63),
        ("暴" * 134, "UCS-2", 134, 2, 67, 0),
        ("暴" * 135, "UCS-2", 135, 3, 67, 66),
        ("暴" * 201, "UCS-2", 201, 3, 67, 0),
        ("暴" * 202, "UCS-2", 202, 4, 67, 66),
        ("溧阳 rain 50mm", "UCS-2", 12, 1, 70, 58),  # one Chinese character makes it all UCS-2
        ("😀" * 35, "UCS-2", 70, 1, 70, 0),
        ("😀" * 36, "UCS-2", 72, 2, 67, 61),  # 33 emoji (66 units) + 3 emoji (6 units)
        ("Ç@£$¥§¿¡ÄÖÑÜäöñüà", "GSM-7", 17, 1, 160, 143),
        ("\f^{}\\[~]|€", "GSM-7", 20, 1, 160, 140),
    ],
    ids=lambda value: f"{value[:12]!r}…{len(value)}" if isinstance(value, str) else str(value),
)
def test_own_table(text, encoding, units, parts, per_part, remaining) -> None:
    assert count(text) == SmsCount(encoding, units, parts, per_part, remaining)


@pytest.mark.parametrize("char", ["`", "ç", "á", "“", "”", "’", "—", "–", "中", "😀", "\t"])
def test_characters_outside_gsm7_force_ucs2(char: str) -> None:
    assert encoding_of("plain text " + char) == "UCS-2"


def test_tables_are_the_standard_sizes() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes less ESC
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION
    assert (SINGLE, PER_PART) == ({"GSM-7": 160, "UCS-2": 70}, {"GSM-7": 153, "UCS-2": 67})


def test_escape_pair_is_never_split_across_parts() -> None:
    # 306 septets would be exactly 2 × 153, but the ESC pair at septets 153–154 moves whole.
    text = "a" * 152 + "{" + "a" * 152
    assert count(text).units == 306
    parts = split(text)
    assert [len(p) for p in parts] == [152, 152, 1]
    assert parts[1].startswith("{")
    assert count(text).parts == 3 and count(text).remaining == 152
    assert "".join(parts) == text


def test_surrogate_pair_is_never_split_across_parts() -> None:
    text = "中" * 66 + "😀" + "中" * 66  # 134 units = 2 × 67, but the emoji cannot straddle
    assert count(text).units == 134
    parts = split(text)
    assert parts[0] == "中" * 66
    assert parts[1].startswith("😀")
    assert count(text).parts == len(parts) == 3
    assert "".join(parts) == text


def test_extension_character_ending_exactly_at_part_end() -> None:
    text = "a" * 151 + "€" + "b" * 10  # € takes septets 152–153: fits the first part exactly
    assert split(text) == ["a" * 151 + "€", "b" * 10]
    assert count(text).parts == 2


def test_split_single_part_and_part_capacity() -> None:
    assert split("短信") == ["短信"]
    for text in ("x" * 500, "暴雨" * 150, "€a" * 120, "😀中" * 70):
        parts = split(text)
        assert "".join(parts) == text
        assert len(parts) == count(text).parts
        encoding = count(text).encoding
        for part in parts:
            units = count(part).units if count(part).encoding == encoding else None
            assert units is not None and units <= PER_PART[encoding]


SUFFIX = "…详情 http://127.0.0.1:8080/w/01J0000000000000000000000"


def test_fit_leaves_short_text_alone() -> None:
    assert fit("暴雨黄色预警", 1, SUFFIX) == "暴雨黄色预警"


@pytest.mark.parametrize("max_parts", [1, 2, 3, 5])
def test_fit_cuts_chinese_to_the_allowed_parts_and_no_shorter(max_parts: int) -> None:
    text = "预计未来六小时内将出现强降雨，请注意防范。" * 30
    out = fit(text, max_parts, SUFFIX)
    assert out.endswith(SUFFIX)
    kept = out[: -len(SUFFIX)]
    assert text.startswith(kept)
    assert count(out).parts <= max_parts
    # One more character would need another part: the cut is as late as possible.
    assert count(text[: len(kept) + 1] + SUFFIX).parts > max_parts


def test_fit_cut_may_switch_to_gsm7() -> None:
    text = "Flood warning for the river valley. " * 6 + "中"  # UCS-2 only because of the end
    out = fit(text, 1, "... more: http://x/w/1")
    assert count(out).encoding == "GSM-7"
    assert count(out).parts == 1
    assert len(out) > 120  # far more than the 70 a UCS-2 text could keep


def test_fit_never_breaks_a_character() -> None:
    family = "👨\u200d👩\u200d👧"
    text = ("暴雨" + family + "e\u0301") * 40
    for max_parts in (1, 2, 3):
        out = fit(text, max_parts, SUFFIX)
        kept = out[: -len(SUFFIX)].rstrip()
        assert text.startswith(kept)
        assert boundary(text, len(kept)) == len(kept)
        assert not kept.endswith("\u200d") and not kept.endswith("e")
        assert count(out).parts <= max_parts


def test_fit_with_extension_characters_at_the_boundary() -> None:
    text = "[" * 200
    out = fit(text, 2, "...")
    assert count(out).encoding == "GSM-7"
    assert count(out).parts == 2
    assert out == "[" * 151 + "..."  # 76 + 75 ESC pairs, then 3 dots: 152 + 153 septets


def test_fit_over_many_lengths_never_exceeds_the_parts() -> None:
    alphabets = ["暴雨", "ab", "a€", "😀x", "中a{"]
    for alphabet in alphabets:
        for length in range(0, 420, 9):
            text = (alphabet * 420)[:length]
            for max_parts in (1, 2, 3):
                out = fit(text, max_parts, "…详情 http://x/w/1")
                assert count(out).parts <= max_parts, (alphabet, length, max_parts)


def test_fit_refuses_a_suffix_that_cannot_fit() -> None:
    with pytest.raises(ValueError, match="suffix"):
        fit("暴" * 500, 1, "…" + "详" * 80)
    with pytest.raises(ValueError, match="at least 1"):
        fit("text", 0, "...")


def test_fit_always_appends_the_suffix() -> None:
    assert fit("short", 1, "... more", always=True) == "short... more"
    out = fit("a" * 158, 1, "... more", always=True)
    assert out == "a" * 152 + "... more" and count(out).parts == 1
