"""Property tests of SMS part counting (warnpub.render.sms_parts), checked against an oracle
built here from the GSM 03.38 tables in tests/data/sms/sms-encoding.md (a copy of
../shared/data/sms) and from UTF-16 itself, not from the module's own tables:

- the encoding is GSM-7 exactly when every character is in the basic or extension table;
- the parts joined give the text back, and there are as many as ``count`` says;
- each part fits: 160 septets / 70 UTF-16 units alone, 153 / 67 as a part of several; an
  extension character (ESC + code) costs 2 septets, a character outside the BMP 2 units;
- parts are filled greedily: a part ends only when its next character would not fit (so an ESC
  pair or a surrogate pair is never split, and no part is shorter than it must be);
- ``fit`` keeps within the parts allowed, cuts at a character boundary, and ends with the
  suffix when it cut.
"""

from __future__ import annotations

import csv
import itertools
import math
import re

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import SHARED_DATA
from tests.security.hypothesis_setup import examples
from warnpub.render.sms_parts import boundary, count, encoding_of, fit, split

SMS_DATA = SHARED_DATA / "sms"
SINGLE = {"GSM-7": 160, "UCS-2": 70}
PER_PART = {"GSM-7": 153, "UCS-2": 67}
_SPECIAL = {"LF": "\n", "CR": "\r", "SP": " ", "ESC": None, "\\|": "|"}


def _oracle_tables() -> tuple[frozenset[str], frozenset[str]]:
    """GSM 03.38 basic and extension characters, read from the reference document."""
    text = (SMS_DATA / "sms-encoding.md").read_text(encoding="utf-8")
    basic_section = text.split("## 1.", 1)[1].split("## 2.", 1)[0]
    basic: set[str] = set()
    for line in basic_section.splitlines():
        if re.match(r"^\| 0x[0-9A-F] \|", line):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")][1:]
            for cell in cells:
                char = _SPECIAL.get(cell, cell)
                if char is not None:
                    assert len(char) == 1, cell
                    basic.add(char)
    extension_section = text.split("## 2.", 1)[1].split("## 3.", 1)[0]
    extension = {
        chr(int(code, 16)) for code in re.findall(r"\| U\+([0-9A-F]{4}) \|", extension_section)
    }
    return frozenset(basic), frozenset(extension)


BASIC, EXTENSION = _oracle_tables()


def test_the_oracle_tables_are_complete() -> None:
    assert len(BASIC) == 127  # 128 codes, ESC is not a character
    assert EXTENSION == set("\f^{}\\[~]|€")


def oracle_encoding(text: str) -> str:
    return "GSM-7" if all(c in BASIC or c in EXTENSION for c in text) else "UCS-2"


def oracle_units(text: str, encoding: str) -> int:
    if encoding == "GSM-7":
        return sum(2 if c in EXTENSION else 1 for c in text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# Texts that hit the edges: GSM basic and extension characters, Chinese, emoji (surrogate pairs
# in UTF-16), combining marks, joiners and variation selectors, near the part boundaries.
GSM_BASIC = st.sampled_from(sorted(BASIC))
GSM_EXT = st.sampled_from(sorted(EXTENSION))
CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
ASTRAL = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
JOINERS = st.sampled_from(["\u0301", "\u200d", "\ufe0f", "\U0001f3fb", "\u20e3"])
ANY = st.characters(codec="utf-8", exclude_categories=["Cs"])
GSM_TEXT = st.text(st.one_of(GSM_BASIC, GSM_BASIC, GSM_EXT), max_size=500)
MIXED_TEXT = st.text(st.one_of(GSM_BASIC, GSM_EXT, CJK, ASTRAL, JOINERS, ANY), max_size=400)
TEXTS = st.one_of(GSM_TEXT, MIXED_TEXT, st.text(ASTRAL, max_size=120), st.text(ANY, max_size=300))


@examples(500)
@given(TEXTS)
def test_count_and_split_agree_with_the_oracle(text: str) -> None:
    encoding = oracle_encoding(text)
    result = count(text)
    assert result.encoding == encoding_of(text) == encoding
    units = oracle_units(text, encoding)
    assert result.units == units

    parts = split(text)
    assert "".join(parts) == text
    assert len(parts) == result.parts
    if units <= SINGLE[encoding]:
        assert parts == [text] and result.per_part == SINGLE[encoding]
        assert result.remaining == SINGLE[encoding] - units
        return
    size = PER_PART[encoding]
    assert result.per_part == size
    assert result.parts >= math.ceil(units / size)
    used = [oracle_units(part, encoding) for part in parts]
    assert all(0 < u <= size for u in used), used
    assert result.remaining == size - used[-1]
    for part, following in itertools.pairwise(parts):
        # Greedy: the next part's first character did not fit into this part.
        assert oracle_units(part + following[0], encoding) > size


@examples(200)
@given(st.integers(0, 400), st.integers(0, 200))
def test_each_extension_character_costs_two_septets(plain: int, escaped: int) -> None:
    text = "a" * plain + "€" * escaped
    result = count(text)
    assert result.encoding == "GSM-7"
    assert result.units == plain + 2 * escaped
    for part in split(text):
        assert oracle_units(part, "GSM-7") <= (160 if len(split(text)) == 1 else 153)


@examples(200)
@given(st.integers(0, 200), st.integers(1, 80))
def test_surrogate_pairs_are_never_split(lead: int, emoji: int) -> None:
    text = "中" * lead + "😜" * emoji
    parts = split(text)
    assert "".join(parts) == text
    for part in parts:
        # A part that ended inside a pair could not be encoded without a lone surrogate.
        part.encode("utf-16-le")
        assert oracle_units(part, "UCS-2") <= (70 if len(parts) == 1 else 67)


def _vectors() -> list[dict[str, str]]:
    with (SMS_DATA / "sms-segment-test-vectors.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@examples(150)
@given(st.sampled_from(_vectors()), st.text(GSM_BASIC, max_size=200))
def test_reference_vectors_grow_part_by_part(row: dict[str, str], padding: str) -> None:
    """A reference message with plain GSM characters added keeps its encoding, and its parts
    are exactly what the part sizes give for its length (no extension or astral character
    added, so no pair can push a boundary)."""
    text = row["message"] + padding
    result = count(text)
    expected = "GSM-7" if row["expected_encoding"].startswith("GSM") else "UCS-2"
    assert result.encoding == expected
    units = oracle_units(text, expected)
    single, size = SINGLE[expected], PER_PART[expected]
    pairs = sum(1 for c in text if (c in EXTENSION if expected == "GSM-7" else ord(c) > 0xFFFF))
    if units <= single:
        assert result.parts == 1
    elif pairs == 0:
        assert result.parts == math.ceil(units / size)
    else:
        assert math.ceil(units / size) <= result.parts <= math.ceil(units / (size - 1))


@examples(300)
@given(MIXED_TEXT, st.integers(1, 4), st.sampled_from(["…", "… http://x.cn/w/1", "{更多}"]))
def test_fit_keeps_within_the_parts_and_cuts_at_a_boundary(
    text: str, max_parts: int, suffix: str
) -> None:
    result = fit(text, max_parts, suffix)
    assert count(result).parts <= max_parts
    if count(text).parts <= max_parts:
        assert result == text
        return
    assert result.endswith(suffix)
    kept = result[: len(result) - len(suffix)]
    assert text.startswith(kept)
    # The kept text is the text cut at a character boundary, with trailing white space dropped.
    cuts = [len(kept)]
    while cuts[-1] < len(text) and text[cuts[-1]].isspace():
        cuts.append(cuts[-1] + 1)
    assert any(boundary(text, cut) == cut for cut in cuts if text[:cut].rstrip() == kept)
