"""Statistical division codes (统计用区划代码), always written out to 12 digits.

Layout: 2 province · 2 prefecture · 2 county · 3 town/subdistrict · 3 village/community.
A code covers every code that starts with its significant prefix: the town code
320481101000 covers the villages 320481101xxx.
"""

from __future__ import annotations

import re

_TWELVE = re.compile(r"^\d{12}$")
# Widths of the segments, left to right.
_SEGMENTS = (2, 2, 2, 3, 3)


def is_division_code(code: str) -> bool:
    return bool(_TWELVE.match(code))


def write_out(code: str) -> str:
    """A 2/4/6/9/12-digit code written out to 12 digits (``320481`` → ``320481000000``)."""
    code = code.strip()
    if not code.isdigit() or len(code) not in (2, 4, 6, 9, 12):
        raise ValueError(f"{code!r} is not a division code (2, 4, 6, 9 or 12 digits)")
    return code.ljust(12, "0")


def significant_prefix(code: str) -> str:
    """The digits that name the division, without the zero-filled lower levels."""
    end = 12
    for width in reversed(_SEGMENTS):
        if code[end - width : end] != "0" * width:
            break
        end -= width
    return code[:end]


def covers(scope: str, code: str) -> bool:
    """Whether the division ``scope`` contains (or is) ``code``."""
    return code.startswith(significant_prefix(scope))


def parent_of(code: str) -> str | None:
    """The 12-digit code of the next level up, or None for a province."""
    prefix = significant_prefix(code)
    cut = 0
    for width in _SEGMENTS:
        if cut + width >= len(prefix):
            break
        cut += width
    return None if cut == 0 else prefix[:cut].ljust(12, "0")
