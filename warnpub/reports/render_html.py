"""The report as one self-contained HTML page (inline CSS and SVG charts; nothing fetched).

The page comes from ``templates/report/report.html.j2`` (package ``warnpub.templates.report``),
autoescaped: names from rosters and agencies are text, never markup. The charts are SVG drawn
by :mod:`warnpub.reports.charts`, whose text matplotlib escapes.

Two languages: ``en`` (the default, as ``warnpub report --html`` has always written) and
``zh-CN`` (the console's default; ``zh`` is read as ``zh-CN``). The language changes the
page's words, the level badge, the names of tiers, needs, channels and milestones, and the
charts' labels; the checks' targets and measurements stay as :mod:`warnpub.reports.clocks`
words them (English), and names from rosters and agencies stay as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from warnpub import __version__
from warnpub.cap.model import Level
from warnpub.render.words import words_for
from warnpub.reports.charts import coverage_by_town, delivery_over_time
from warnpub.reports.model import Report, Row
from warnpub.reports.render_text import BREAKDOWNS
from warnpub.reports.units import duration, local_time, percent

LANGUAGES = ("en", "zh-CN")

EN: dict[str, str] = {
    "title": "Coverage and time report",
    "drill_tag": "[演练 DRILL] ",
    "drill": "演练 DRILL — this warning was an exercise (CAP status Exercise).",
    "no_headline": "(no headline)",
    "meta_warning": "warning {id} · {hazard} · {msg_type} · status {status} · state {state}",
    "meta_sender": "sender {sender} · identifier {identifier} · generated {generated}",
    "card_targeted": "targeted ({people} people, {devices} devices)",
    "card_delivered": "delivered ({n})",
    "card_acknowledged": "acknowledged (of {n} asked)",
    "card_unreached": "unreached",
    "card_pending": "pending",
    "checks": "Clocks and targets",
    "status": "status",
    "check": "check",
    "target": "target",
    "measured": "measured",
    "times": "Times",
    "milestone": "milestone",
    "at": "at",
    "since_received": "since received",
    "since_approved": "since approved",
    "over_time": "Delivery over time",
    "tier": "tier",
    "group": "group",
    "targeted": "targeted",
    "sent": "sent",
    "delivered": "delivered",
    "acknowledged": "acknowledged",
    "unreached": "unreached",
    "pending": "pending",
    "coverage": "coverage",
    "name": "name",
    "tier_note": "Times since approval at which 50, 90 and 99 % of each tier's targets had been delivered.",
    "by_town_title": "Coverage by town",
    "no_targets": "No targets.",
    "not_reached": "Not reached ({n}) — for the after-action review",
    "kind": "kind",
    "id": "id",
    "role": "role",
    "area": "area",
    "needs": "needs",
    "phone": "phone",
    "relay_contact": "relay contact",
    "tried": "tried",
    "more": "… {n} more; the CSV export (unreached.csv) lists them all.",
    "all_reached": "Everyone was reached or is still pending.",
    "footer": "warnpub {version} · times shown in {zone} · definitions: docs/reports.md",
    "bd_town": "By town",
    "bd_village": "By village",
    "bd_tier": "By tier",
    "bd_needs": "By needs group (people; one person may have several needs)",
    "bd_channel": "By channel (a target counts under every channel it was tried on)",
    "col_town": "town",
    "col_village": "village",
    "col_tier": "tier",
    "col_needs": "needs",
    "col_channel": "channel",
}

ZH: dict[str, str] = {
    "title": "覆盖与时效报告",
    "drill_tag": "【演练】",
    "drill": "演练 — 本预警为演练（CAP status Exercise）。",
    "no_headline": "（无标题）",
    "meta_warning": "预警 {id} · {hazard} · {msg_type} · 状态 {status} · 进度 {state}",
    "meta_sender": "发布单位 {sender} · 标识 {identifier} · 生成于 {generated}",
    "card_targeted": "目标（{people} 人，{devices} 台设备）",
    "card_delivered": "已送达（{n}）",
    "card_acknowledged": "已确认（需确认 {n}）",
    "card_unreached": "未送达",
    "card_pending": "发送中",
    "checks": "时限与目标",
    "status": "结果",
    "check": "检查项",
    "target": "目标",
    "measured": "实测",
    "times": "时间节点",
    "milestone": "节点",
    "at": "时间",
    "since_received": "距收到",
    "since_approved": "距批准",
    "over_time": "送达进度",
    "tier": "优先级",
    "group": "人群",
    "targeted": "目标",
    "sent": "已发送",
    "delivered": "已送达",
    "acknowledged": "已确认",
    "unreached": "未送达",
    "pending": "发送中",
    "coverage": "覆盖率",
    "name": "名称",
    "tier_note": "自批准起，各优先级 50%、90%、99% 的目标送达所用的时间。",
    "by_town_title": "各镇（街道）覆盖情况",
    "no_targets": "没有目标。",
    "not_reached": "未送达名单（{n}）— 供事后复盘",
    "kind": "类型",
    "id": "编号",
    "role": "身份",
    "area": "所在地",
    "needs": "特殊需求",
    "phone": "手机",
    "relay_contact": "联络员",
    "tried": "已尝试",
    "more": "… 另有 {n} 条；CSV 导出（unreached.csv）列出全部。",
    "all_reached": "所有目标均已送达或仍在发送中。",
    "footer": "warnpub {version} · 时间按 {zone} 显示 · 定义见 docs/reports.md",
    "bd_town": "按镇（街道）",
    "bd_village": "按村（社区）",
    "bd_tier": "按优先级",
    "bd_needs": "按特殊人群（人员；一人可有多项需求）",
    "bd_channel": "按渠道（一个目标在尝试过的每个渠道下各计一次）",
    "col_town": "镇（街道）",
    "col_village": "村（社区）",
    "col_tier": "优先级",
    "col_needs": "需求",
    "col_channel": "渠道",
}

# Codes in words (Chinese); English shows the code itself, as the text report does.
ZH_NAMES: dict[str, str] = {
    # tier groups ([audiences] tiers) and the whole
    "devices": "设备（广播、显示屏）",
    "special_needs": "特殊人群",
    "village_contacts": "村联络员和镇值班员",
    "rural_residents": "农村居民",
    "urban_residents": "城镇居民",
    "all": "全部",
    # needs
    "elderly_alone": "独居老人",
    "hearing_impaired": "听障",
    "visually_impaired": "视障",
    "no_phone": "无手机",
    "limited_mobility": "行动不便",
    "non_chinese_speaker": "不通中文",
    "none": "无特殊需求",
    # channels
    "sms": "短信",
    "email": "电子邮件",
    "voice": "语音电话",
    "speaker": "广播",
    "board": "显示屏",
    "relay": "联络员上门",
    "webhook": "合作方推送",
    # milestones
    "received": "收到",
    "approved": "批准",
    "first_sent": "首条发出",
    "first_delivered": "首条送达",
    "delivered_50": "送达 50%",
    "delivered_90": "送达 90%",
    "delivered_99": "送达 99%",
    "last_delivered": "最后送达",
    "last_acknowledged": "最后确认",
    # check results
    "met": "达标",
    "missed": "未达标",
    "not_applicable": "不适用",
    "pending": "未定",
    # target kinds, roles, device kinds
    "person": "人员",
    "device": "设备",
    "resident": "居民",
    "village_contact": "村联络员",
    "town_duty_officer": "镇值班员",
    "official": "干部",
    "speaker_group": "广播组",
    "board_digital": "电子显示屏",
    "board_paper": "纸质公告栏",
}


def language(lang: str | None) -> str:
    """``zh-CN`` for any Chinese tag, else ``en``."""
    return "zh-CN" if (lang or "").lower().startswith("zh") else "en"


def page_words(lang: str) -> Mapping[str, str]:
    return ZH if language(lang) == "zh-CN" else EN


def namer(lang: str) -> Any:
    """A function that puts a code (tier group, need, channel, milestone, status, role) in the
    language's words; English keeps the code (with ``_`` as spaces for statuses)."""
    if language(lang) == "zh-CN":
        return lambda code: ZH_NAMES.get(str(code), str(code))
    return lambda code: str(code)


@cache
def _template() -> Template:
    env = Environment(
        loader=PackageLoader("warnpub.templates", "report"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2")


def _row_label(key_kind: str, row: Row, name: Any, lang: str) -> str:
    """The name column of a breakdown row: a place's name as stored; a tier's group, a need
    or a channel in words."""
    if language(lang) == "en" or key_kind in ("town", "village"):
        return row.label
    if key_kind == "needs":
        return str(name(row.key))
    return str(name(row.label or row.key))


def render(
    report: Report, zone: ZoneInfo, lang: str = "en", *, hazard: str | None = None
) -> str:
    """The page in ``lang`` (``en`` or ``zh-CN``); ``hazard`` is the hazard's name to show
    (default: its code)."""
    lang = language(lang)
    t = page_words(lang)
    name = namer(lang)
    w = report.warning
    try:
        level: Level | None = Level(w.level)
    except ValueError:
        level = None
    origin = "approval" if w.approved_at is not None else "receipt"
    key_kinds = {"by_town": "town", "by_village": "village", "by_tier": "tier",
                 "by_needs": "needs", "by_channel": "channel"}
    breakdowns = []
    for _title, attr, key in BREAKDOWNS:
        kind = key_kinds.get(attr, key)
        rows = [(row, _row_label(kind, row, name, lang)) for row in getattr(report, attr)]
        breakdowns.append((t[f"bd_{kind}"], rows, t[f"col_{kind}"]))
    return _template().render(
        r=report,
        w=w,
        t=t,
        lang=lang,
        name=name,
        names=lambda codes: ("、" if lang == "zh-CN" else ", ").join(name(c) for c in codes),
        level_name=words_for(lang).level_name(level) if level else (w.level or ""),
        hazard=hazard or w.hazard,
        generated=local_time(report.generated_at, zone),
        zone=zone.key,
        version=__version__,
        over_time=delivery_over_time(report.series, origin, lang, name),
        by_town_chart=coverage_by_town(report.by_town, lang),
        breakdowns=breakdowns,
        pct=percent,
        dur=duration,
        when=lambda at: local_time(at, zone),
        fmt=lambda text, **kw: text.format(**kw),
    )
