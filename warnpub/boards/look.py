"""How a level looks on a board and on a printed notice: colour, name and icon together.

Colour is never the only sign of the level: each level also has its own icon shape (octagon,
triangle, diamond, circle), its name in words and its grade, so a board is read correctly by
people who cannot tell red from orange and on a notice printed in black and white.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from warnpub.cap.model import Level
from warnpub.render.words import primary


@dataclass(frozen=True, slots=True)
class LevelLook:
    css: str  # class suffix: level-red, level-orange, …
    background: str
    foreground: str  # text on the background, contrast ≥ 4.5:1
    shape: str  # the icon's shape, named for screen readers and tests
    icon: str  # inline SVG (no external resource), drawn in the foreground colour


def _icon(shape: str, body: str, mark: str) -> str:
    return (
        f'<svg class="level-icon" data-shape="{shape}" viewBox="0 0 100 100" '
        'aria-hidden="true" focusable="false">'
        f'{body}<text x="50" y="{71 if mark == "!" else 72}" text-anchor="middle" '
        'font-size="58" font-weight="900" font-family="Arial, sans-serif" '
        f'fill="currentColor">{mark}</text></svg>'
    )


_OCTAGON = (
    '<polygon points="30,3 70,3 97,30 97,70 70,97 30,97 3,70 3,30" fill="none" '
    'stroke="currentColor" stroke-width="8"/>'
)
_TRIANGLE = (
    '<polygon points="50,4 97,94 3,94" fill="none" stroke="currentColor" '
    'stroke-width="8" stroke-linejoin="round"/>'
)
_DIAMOND = (
    '<polygon points="50,3 97,50 50,97 3,50" fill="none" stroke="currentColor" stroke-width="8"/>'
)
_CIRCLE = '<circle cx="50" cy="50" r="44" fill="none" stroke="currentColor" stroke-width="8"/>'

LOOKS: Mapping[Level, LevelLook] = {
    Level.RED: LevelLook("red", "#B3001B", "#FFFFFF", "octagon", _icon("octagon", _OCTAGON, "!")),
    Level.ORANGE: LevelLook(
        "orange", "#E35F00", "#000000", "triangle", _icon("triangle", _TRIANGLE, "!")
    ),
    Level.YELLOW: LevelLook(
        "yellow", "#FFD200", "#000000", "diamond", _icon("diamond", _DIAMOND, "!")
    ),
    Level.BLUE: LevelLook("blue", "#0047AB", "#FFFFFF", "circle", _icon("circle", _CIRCLE, "i")),
}
NO_LEVEL = LevelLook("none", "#4A4A4A", "#FFFFFF", "circle", _icon("circle", _CIRCLE, "!"))


def look_of(level: Level | None) -> LevelLook:
    return LOOKS[level] if level is not None else NO_LEVEL


@dataclass(frozen=True, slots=True)
class PageWords:
    """The words of the board page and the notice around the warnings themselves."""

    title: str
    nothing: str  # no active warning
    nothing_more: str
    issued: str
    valid_until: str
    area: str
    issuer: str
    what_to_do: str
    lost: str  # {time}: when the last content arrived
    live: str
    notice_title: str
    scan: str
    posted_hint: str
    more_warnings: str  # {n}


PAGE_WORDS: Mapping[str, PageWords] = {
    "zh": PageWords(
        title="预警信息公告",
        nothing="当前没有生效的预警",
        nothing_more="如遇紧急情况请拨打 110、119、120",
        issued="发布时间",
        valid_until="有效至",
        area="范围",
        issuer="发布单位",
        what_to_do="防御指引",
        lost="网络中断，显示的是 {time} 的内容",
        live="实时",
        notice_title="预警信息公告",
        scan="扫码查看预警全文",
        posted_hint="村联络员张贴后请确认“已张贴”",
        more_warnings="另有 {n} 条预警",
    ),
    "en": PageWords(
        title="Warning notice board",
        nothing="No warning is in force",
        nothing_more="In an emergency call 110, 119 or 120",
        issued="Issued",
        valid_until="Valid until",
        area="Area",
        issuer="Issued by",
        what_to_do="What to do",
        lost="Connection lost, showing last content since {time}",
        live="Live",
        notice_title="Public warning notice",
        scan="Scan for the full text of the warning",
        posted_hint="Village contact: confirm the notice as posted once it is up",
        more_warnings="{n} more warnings",
    ),
}


def page_words(language: str) -> PageWords:
    return PAGE_WORDS.get(primary(language), PAGE_WORDS["zh"])
