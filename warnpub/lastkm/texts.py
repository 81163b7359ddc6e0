"""The words of notices, acknowledgement lines and answers to replies (zh-CN and en).

Short on purpose: they go by SMS, to people acting under stress. A drill says so first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from warnpub.audiences.needs import NEED_NAMES
from warnpub.render.words import primary, words_for
from warnpub.storage.tables import WarningRecord


def _en(language: str) -> bool:
    return primary(language) == "en"


def subject_of(warning: WarningRecord, language: str = "zh-CN") -> str:
    """"【演练】红色预警《暴雨》" — what a notice is about, drill marker first."""
    words = words_for(language)
    marker = words.status_markers.get(warning.status, "")
    level = words.level_names.get(warning.level, words.no_level) if warning.level else words.no_level  # type: ignore[call-overload]
    title = warning.headline or warning.hazard or warning.id
    return f"{marker}{level} {title}" if _en(language) else f"{marker}{level}《{title}》"


def needs_text(flags: int, language: str = "zh-CN") -> str:
    names = [code if _en(language) else zh for need, (code, zh) in NEED_NAMES.items() if flags & need]
    return (", " if _en(language) else "、").join(names)


def ack_line(code: str, url: str, language: str) -> str:
    if _en(language):
        return f"Reply {code} to confirm, or open {url}"
    return f"收到请回复{code}，或点击 {url}"


# Reading the texts above back, for whoever plays the recipient (warnpub/lastkm/contact_sim.py,
# tests). The ack line: "收到请回复4821，…" / "Reply 4821 to confirm, …" → the code.
ACK_LINE_RE = re.compile(r"(?:收到请回复|\bReply )(\d{4})(?!\d)")
# A visit list → its people ("[1]张三（…）[2]…" / "[1] Zhang (…); [2] …") and its code.
VISIT_PREFIXES = ("【上门告知】", "[VISIT]")
VISIT_LIST_RE = re.compile(
    r"(?:【上门告知】.*?请尽快上门告知：(?P<zh>.*)。告知后回复“(?P<zh_code>\d{4})"
    r"|\[VISIT\] .*?: please tell in person: (?P<en>.*)\. When done reply \"(?P<en_code>\d{4}))",
    re.DOTALL,
)
VISIT_NUMBER_RE = re.compile(r"\[(\d{1,3})\]")


def unacknowledged_alert(
    warning: WarningRecord, who: str, role: str, area: str, phone: str, minutes: int, language: str
) -> str:
    if _en(language):
        return (
            f"[ESCALATION] {subject_of(warning, language)}: {role} {who} ({area}, {phone or 'no phone'}) "
            f"has not confirmed after {minutes} min. Please call them or send someone."
        )
    return (
        f"【预警升级】{subject_of(warning, language)}：{area}{role}{who}（{phone or '无电话'}）"
        f"{minutes}分钟未确认收到，请电话联系或安排人员上门。"
    )


def review_deadline_alert(warning: WarningRecord, language: str = "zh-CN") -> str:
    if _en(language):
        return (
            f"[REVIEW OVERDUE] {subject_of(warning, language)} from {warning.sender} "
            "passed its review deadline without a decision. Please review it now."
        )
    return f"【审核超时】{subject_of(warning, language)}（{warning.sender}）已过审核时限仍未处理，请立即审核。"


def reminder_prefix(language: str) -> str:
    return "[REMINDER] " if _en(language) else "【提醒】"


def visit_list(
    warning: WarningRecord,
    people: Sequence[tuple[int, str, int]],
    code: str,
    url: str,
    language: str,
) -> str:
    """The contact's list: numbers, names and needs, then how to report."""
    if _en(language):
        listed = "; ".join(f"[{n}] {name} ({needs_text(needs, language)})" for n, name, needs in people)
        example = " ".join(str(n) for n, _, _ in people[:2])
        return (
            f"[VISIT] {subject_of(warning, language)}: please tell in person: {listed}. "
            f"When done reply \"{code} {example}\" or open {url}"
        )
    listed = "".join(f"[{n}]{name}（{needs_text(needs, language)}）" for n, name, needs in people)
    example = " ".join(str(n) for n, _, _ in people[:2])
    return (
        f"【上门告知】{subject_of(warning, language)}，请尽快上门告知：{listed}。"
        f"告知后回复“{code} {example}”，或点击 {url}"
    )


def visits_recorded(done: Sequence[tuple[int, str]], left: Sequence[tuple[int, str]],
                    unknown: Sequence[int], language: str) -> str:
    if _en(language):
        parts = []
        if done:
            parts.append("Recorded as told: " + ", ".join(f"{n} {name}" for n, name in done) + ".")
        if unknown:
            parts.append("Not on your list: " + ", ".join(str(n) for n in unknown) + ".")
        parts.append(
            ("Still to tell: " + ", ".join(f"{n} {name}" for n, name in left) + ".")
            if left else "Everyone on your list is done. Thank you!"
        )
        return " ".join(parts)
    parts = []
    if done:
        parts.append("已记录上门告知：" + "、".join(f"{n} {name}" for n, name in done) + "。")
    if unknown:
        parts.append("编号 " + "、".join(str(n) for n in unknown) + " 不在您的名单中。")
    parts.append(
        ("尚未告知：" + "、".join(f"{n} {name}" for n, name in left) + "。")
        if left else "名单上的人员已全部告知，谢谢！"
    )
    return "".join(parts)


def not_understood(code: str | None, language: str) -> str:
    if _en(language):
        how = f"reply {code} to confirm you received the warning" if code else "reply with the code in the warning"
        return f"Sorry, we could not read your reply. Please {how}; to report people told in person, reply their numbers, e.g. \"{code or '1234'} 2 5\". Thank you!"
    how = f"确认收到预警请回复 {code}" if code else "确认收到预警请回复预警短信中的代码"
    return f"您好，未能识别您的回复。{how}；报告已上门告知的人员请回复其编号，如“{code or '1234'} 2 5”。谢谢！"


def unknown_code(code: str, right: str | None, language: str) -> str:
    if _en(language):
        hint = f" Reply {right} to confirm the warning you received." if right else ""
        return f"Sorry, code {code} is not one of the warnings sent to you.{hint} Thank you!"
    hint = f"确认收到请回复 {right}。" if right else ""
    return f"您好，代码 {code} 不对应发给您的预警。{hint}谢谢！"


def nothing_waiting(language: str) -> str:
    if _en(language):
        return "Thank you. No warning is waiting for your confirmation now."
    return "您好，目前没有需要您确认的预警。谢谢！"
