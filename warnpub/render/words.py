"""The words every template of one language shares: level names, markers, times, the cut link.

Keyed by primary language (``zh``, ``en``). A new language is one :class:`Words` entry here plus
its templates under ``templates/<channel>/``; ``tests/render/test_templates.py`` checks that every
template language has words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from warnpub.cap.model import Level

BEIJING = timezone(timedelta(hours=8), "Beijing")
"""Times in messages are Beijing time (UTC+8), as China's warning standard asks."""

_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Words:
    """Language-specific words for the templates."""

    level_names: Mapping[Level, str]  # the level in words, e.g. 黄色预警
    level_grades: Mapping[Level, str]  # the grade, e.g. Ⅲ级，较重
    no_level: str
    status_markers: Mapping[str, str]  # CAP status → marker at the very start (drill, test)
    type_markers: Mapping[str, str]  # CAP msgType → marker (update, cancel)
    ellipsis: str  # where the description was cut
    more: str  # appended when a text is cut; {url} is the full text
    list_sep: str  # between area names

    def marker(self, status: str, msg_type: str) -> str:
        """Drill / test marker first, then update / cancel: 【演练】【续报】."""
        return self.status_markers.get(status, "") + self.type_markers.get(msg_type, "")

    def level_name(self, level: Level | None) -> str:
        return self.level_names[level] if level is not None else self.no_level

    def level_grade(self, level: Level | None) -> str:
        return self.level_grades[level] if level is not None else ""


ZH = Words(
    level_names={
        Level.RED: "红色预警",
        Level.ORANGE: "橙色预警",
        Level.YELLOW: "黄色预警",
        Level.BLUE: "蓝色预警",
    },
    level_grades={
        Level.RED: "Ⅰ级，特别严重",
        Level.ORANGE: "Ⅱ级，严重",
        Level.YELLOW: "Ⅲ级，较重",
        Level.BLUE: "Ⅳ级，一般",
    },
    no_level="预警",
    status_markers={
        "Exercise": "【演练】",
        "Test": "【测试】",
        "System": "【系统】",
        "Draft": "【草稿】",
    },
    type_markers={"Update": "【续报】", "Cancel": "【解除】"},
    ellipsis="…",
    more="…详情 {url}",
    list_sep="、",
)

EN = Words(
    level_names={
        Level.RED: "Red warning",
        Level.ORANGE: "Orange warning",
        Level.YELLOW: "Yellow warning",
        Level.BLUE: "Blue warning",
    },
    level_grades={
        Level.RED: "level I, extreme",
        Level.ORANGE: "level II, severe",
        Level.YELLOW: "level III, moderate",
        Level.BLUE: "level IV, minor",
    },
    no_level="Warning",
    status_markers={
        "Exercise": "[DRILL] ",
        "Test": "[TEST] ",
        "System": "[SYSTEM] ",
        "Draft": "[DRAFT] ",
    },
    type_markers={"Update": "[UPDATE] ", "Cancel": "[CANCELLED] "},
    # GSM-7 characters only, so a cut English SMS does not turn into UCS-2.
    ellipsis="...",
    more="... Full text: {url}",
    list_sep=", ",
)

WORDS: dict[str, Words] = {"zh": ZH, "en": EN}


def is_cjk(char: str) -> bool:
    """Chinese, Japanese and Korean characters and their full-width punctuation."""
    code = ord(char)
    return 0x2E80 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0xFF00 <= code <= 0xFFEF


def sentence(text: str) -> str:
    """``text`` ending in sentence punctuation, so that two sentences never run together:
    。after Chinese, . after anything else."""
    text = text.strip()
    if not text or text[-1] in "。！？.!?；;…":
        return text
    return text + ("。" if is_cjk(text[-1]) else ".")


def primary(language: str) -> str:
    """The primary language subtag, lower case: zh-CN → zh."""
    return language.split("-", 1)[0].lower()


def words_for(language: str) -> Words:
    """The words for ``language`` (by primary language); KeyError when there are none."""
    return WORDS[primary(language)]


def format_time(value: datetime | None, language: str) -> str:
    """A time in Beijing time for people: 7月1日20:00 or 1 Jul 20:00 (Beijing time)."""
    if value is None:
        return ""
    local = value.astimezone(BEIJING)
    if primary(language) == "zh":
        return f"{local.month}月{local.day}日{local:%H:%M}"
    return f"{local.day} {_EN_MONTHS[local.month - 1]} {local:%H:%M} (Beijing time)"
