"""Needs (特殊人群类别) and roles, as bit flags and names.

A person's needs are stored as one integer of bit flags so that targeting can filter and
classify a million people without joins.
"""

from __future__ import annotations

from enum import IntFlag


class Need(IntFlag):
    ELDERLY_ALONE = 1  # 独居老人
    HEARING_IMPAIRED = 2  # 听障
    VISUALLY_IMPAIRED = 4  # 视障
    NO_PHONE = 8  # 无手机
    LIMITED_MOBILITY = 16  # 行动不便
    NON_CHINESE_SPEAKER = 32  # 不通中文


NEED_NAMES: dict[Need, tuple[str, str]] = {
    Need.ELDERLY_ALONE: ("elderly_alone", "独居老人"),
    Need.HEARING_IMPAIRED: ("hearing_impaired", "听障"),
    Need.VISUALLY_IMPAIRED: ("visually_impaired", "视障"),
    Need.NO_PHONE: ("no_phone", "无手机"),
    Need.LIMITED_MOBILITY: ("limited_mobility", "行动不便"),
    Need.NON_CHINESE_SPEAKER: ("non_chinese_speaker", "不通中文"),
}
BY_NAME: dict[str, Need] = {code: need for need, (code, _) in NEED_NAMES.items()}


def need_names(flags: int) -> list[str]:
    return [code for need, (code, _) in NEED_NAMES.items() if flags & need]


def parse_needs(names: list[str]) -> int:
    """Flags for need codes; raises ValueError naming an unknown one."""
    flags = 0
    for name in names:
        if name not in BY_NAME:
            raise ValueError(f"unknown need {name!r}; use {', '.join(BY_NAME)}")
        flags |= BY_NAME[name]
    return flags


# Roles of people in the audience.
ROLES = ("resident", "village_contact", "town_duty_officer", "official")
DEVICE_KINDS = ("speaker_group", "board_digital", "board_paper")
