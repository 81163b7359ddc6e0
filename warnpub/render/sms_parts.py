"""Exact SMS length: which encoding a text needs, how many parts it takes, and cutting to fit.

GSM 7-bit (3GPP TS 23.038 §6.2.1) when every character is in the default alphabet or its
extension table, otherwise UCS-2. One SMS carries 160 septets or 70 UTF-16 code units; a part
of a concatenated SMS carries 153 septets or 67 units (the rest is the 6-octet UDH).

- An extension-table character (``{ } [ ] ~ \\ | ^ €`` and form feed) is ESC plus a code:
  2 septets.
- In UCS-2 a character outside the Basic Multilingual Plane (most emoji) is a surrogate pair:
  2 units.
- A multi-part message never splits an ESC pair or a surrogate pair across two parts, so a part
  may carry 152 septets or 66 units when the boundary falls inside such a pair. Parts are filled
  greedily, character by character, as handsets and gateways do.

Sources: ``tests/data/sms/sms-encoding.md``; the vectors in ``sms-segment-test-vectors.csv`` there
are checked by ``tests/render/test_sms_parts.py``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The GSM 03.38 default alphabet (one septet each). ESC (0x1B) is not a character."""

GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""Characters reached through ESC (two septets each)."""

SINGLE = {"GSM-7": 160, "UCS-2": 70}
"""Capacity of a message that fits in one SMS (septets or UTF-16 code units)."""

PER_PART = {"GSM-7": 153, "UCS-2": 67}
"""Capacity of one part of a concatenated SMS (8-bit reference UDH)."""


@dataclass(frozen=True, slots=True)
class SmsCount:
    """How long a text is as SMS.

    ``units`` are septets (GSM-7) or UTF-16 code units (UCS-2); ``per_part`` is 160/70 for a
    single message and 153/67 once it is split; ``remaining`` is what still fits into the last
    part without adding one (2-unit characters need two of them).
    """

    encoding: Encoding
    units: int
    parts: int
    per_part: int
    remaining: int


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` has a GSM 7-bit code (basic or extension)."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def encoding_of(text: str) -> Encoding:
    """GSM-7 when the text can be sent in it, otherwise UCS-2."""
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def _cost(char: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def _pack(text: str, encoding: Encoding) -> list[int]:
    """Units used in each part when ``text`` is split (greedy, pairs never split)."""
    parts = [0]
    size = PER_PART[encoding]
    for char in text:
        cost = _cost(char, encoding)
        if parts[-1] + cost > size:
            parts.append(0)
        parts[-1] += cost
    return parts


def count(text: str) -> SmsCount:
    """Encoding, length and number of parts of ``text`` as one SMS (parts ≥ 1, even when empty)."""
    encoding = encoding_of(text)
    units = sum(_cost(char, encoding) for char in text)
    if units <= SINGLE[encoding]:
        return SmsCount(encoding, units, 1, SINGLE[encoding], SINGLE[encoding] - units)
    packed = _pack(text, encoding)
    per_part = PER_PART[encoding]
    return SmsCount(encoding, units, len(packed), per_part, per_part - packed[-1])


def split(text: str) -> list[str]:
    """The parts ``text`` is sent as (one part when it fits in a single SMS)."""
    encoding = encoding_of(text)
    if sum(_cost(char, encoding) for char in text) <= SINGLE[encoding]:
        return [text]
    size = PER_PART[encoding]
    parts: list[str] = []
    start = used = 0
    for index, char in enumerate(text):
        cost = _cost(char, encoding)
        if used + cost > size:
            parts.append(text[start:index])
            start, used = index, 0
        used += cost
    parts.append(text[start:])
    return parts


def _joins_previous(char: str) -> bool:
    """Characters that belong to the character before them (cutting before them breaks it)."""
    code = ord(char)
    return (
        unicodedata.combining(char) != 0
        or code == 0x200D  # zero width joiner
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= code <= 0xE007F  # emoji tag sequences
        or 0xDC00 <= code <= 0xDFFF  # a lone low surrogate (never split a pair)
    )


def boundary(text: str, cut: int) -> int:
    """The largest position ≤ ``cut`` where ``text`` may be cut without breaking a character:
    not before a combining mark, joiner, variation selector or modifier, not after a joiner."""
    cut = max(0, min(cut, len(text)))
    while 0 < cut < len(text) and (_joins_previous(text[cut]) or text[cut - 1] == "\u200d"):
        cut -= 1
    return cut


def longest_prefix(text: str, fits: Callable[[str], bool]) -> str:
    """The longest prefix of ``text``, cut at a character boundary, for which ``fits`` holds.

    ``fits("")`` is assumed true; callers check it first. Binary search keeps the invariant
    that the lower bound fits, so the answer always fits even where ``fits`` is not monotonic.
    """
    lo, hi = 0, len(text)
    if fits(text):
        return text
    while lo < hi - 1:
        mid = (lo + hi) // 2
        if fits(text[: boundary(text, mid)]):
            lo = mid
        else:
            hi = mid
    cut = boundary(text, lo)
    while cut > 0 and not fits(text[:cut]):
        cut = boundary(text, cut - 1)
    return text[:cut]


def fit(text: str, max_parts: int, suffix: str, *, always: bool = False) -> str:
    """``text`` unchanged when it fits in ``max_parts`` parts; otherwise its longest prefix
    (cut at a character boundary, trailing white space dropped) followed by ``suffix`` that fits.
    With ``always`` the suffix is appended even to a text that fits (something was left out
    before, and the suffix links to it).

    Raises ValueError when ``suffix`` alone does not fit into ``max_parts`` parts.
    """
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    if not always and count(text).parts <= max_parts:
        return text
    if count(suffix).parts > max_parts:
        raise ValueError(
            f"the suffix {suffix!r} alone needs {count(suffix).parts} SMS parts; "
            f"at most {max_parts} are allowed"
        )

    def fits(prefix: str) -> bool:
        return count(prefix.rstrip() + suffix).parts <= max_parts

    return longest_prefix(text, fits).rstrip() + suffix
