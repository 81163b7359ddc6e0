"""Codes in words on the console's pages: the hazard ([cap.hazards]), the plan's tiers and
channels, needs; the live view says it counts messages; the report page follows the console's
language (zh-CN by default, en with ?lang=en), charts included."""

from __future__ import annotations

import html
import re
from zoneinfo import ZoneInfo

from tests.console.helpers import sign_in
from tests.factories import alert_json, seed
from warnpub.console.words import EN, ZH, hazard_name, tier_name
from warnpub.reports.charts import coverage_by_town, delivery_over_time
from warnpub.reports.model import Counts, Row, Series

VISIBLE = re.compile(r">([^<>]*)<")


def visible_text(page: str) -> str:
    """The page's text between tags (attributes and scripts' JSON left out)."""
    body = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    return html.unescape(" ".join(VISIBLE.findall(body)))


async def _pending(client, world, event: str = "洪水") -> str:
    r = await client.post(
        "/api/v1/warnings",
        json=alert_json(event=event, severity="Extreme"),
        headers=world.agency("SL"),
    )
    assert r.status == 202, await r.text()
    return (await r.json())["id"]


async def test_warning_page_names_hazard_tiers_and_channels_in_words(client, db, settings):
    world = await seed(db, settings)
    wid = await _pending(client, world)
    assert (await sign_in(client, "duty1")).status == 303
    zh = await (await client.get(f"/console/warnings/{wid}")).text()
    hazard = re.search(r'data-testid="hazard" data-hazard="([^"]*)">([^<]*)<', zh)
    assert hazard, "the warning page shows the hazard"
    code, shown = hazard.groups()
    assert code in settings.cap.hazards and shown == settings.cap.hazards[code].zh
    text = visible_text(zh)
    for group in settings.audiences.tiers:
        assert group not in text, f"the tier code {group} is shown as a code"
    assert tier_name("zh", "special_needs") in text
    for channel in ("sms", "email", "voice", "speaker", "board", "relay"):
        assert not re.search(rf"(?<![\w/.-]){channel}(?![\w/.-])", text), channel
    # "Delivered" in the live view counts messages, and the page says so.
    assert ZH["msg_delivered_n"] in text and 'data-testid="progress-unit"' in zh
    assert ZH["report_link_people"] in text

    en = await (await client.get(f"/console/warnings/{wid}?lang=en")).text()
    hazard = re.search(r'data-testid="hazard" data-hazard="[^"]*">([^<]*)<', en)
    assert hazard and hazard.group(1) == settings.cap.hazards[code].en
    text = visible_text(en)
    assert tier_name("en", "special_needs") in text and "special_needs" not in text
    assert EN["msg_delivered_n"] in text and EN["progress_unit_note"] in text


def test_hazard_name_falls_back_to_the_code(settings):
    assert hazard_name(settings, "zh", "gale") == settings.cap.hazards["gale"].zh
    assert hazard_name(settings, "en", "gale") == settings.cap.hazards["gale"].en
    assert hazard_name(settings, "zh", "no-such-hazard") == "no-such-hazard"


async def test_report_page_follows_the_console_language(client, db, settings):
    world = await seed(db, settings)
    wid = await _pending(client, world)
    assert (await sign_in(client, "duty1")).status == 303
    zh = await (await client.get(f"/console/warnings/{wid}/report")).text()
    assert 'data-testid="report"' in zh and zh.count("<svg") == 2
    for words in ("覆盖与时效报告", "时限与目标", "各优先级送达进度", "各镇（街道）覆盖情况"):
        assert words in zh, words
    assert "Coverage and time report" not in zh and "Delivery over time" not in zh
    assert settings.cap.hazards["flood"].zh in zh
    en = await (await client.get(f"/console/warnings/{wid}/report?lang=en")).text()
    for words in ("Coverage and time report", "Delivery over time, by tier", "Coverage by town"):
        assert words in en, words
    assert "覆盖与时效报告" not in en
    # The language is remembered: the next page without ?lang stays English.
    again = await (await client.get(f"/console/warnings/{wid}/report")).text()
    assert "Coverage and time report" in again


def test_charts_in_chinese_and_english():
    series = [Series(1, "special_needs", 2, [(30.0, 1), (90.0, 2)]), Series(None, "all", 2, [])]
    names = {"special_needs": "特殊人群", "all": "全部"}
    zh = delivery_over_time(series, "approval", "zh-CN", lambda n: names.get(n, n))
    assert "各优先级送达进度" in zh and "自批准起的分钟数" in zh and "特殊人群 (2)" in zh
    en = delivery_over_time(series, "approval")
    assert "Delivery over time, by tier" in en and "minutes since approval" in en
    rows = [Row("320481116000", "社渚镇", Counts(targeted=4, delivered=3, unreached=1))]
    zh = coverage_by_town(rows, "zh-CN")
    assert "已送达" in zh and "未送达" in zh and "各镇（街道）覆盖情况" in zh
    assert "Coverage by town" in coverage_by_town(rows)


def test_report_html_in_both_languages_from_a_report(settings):
    """render_html takes a language; English stays the default (warnpub report --html)."""
    from warnpub.reports.render_html import language, page_words

    assert language("zh") == language("zh-CN") == "zh-CN" and language(None) == "en"
    assert page_words("zh-CN")["title"] == "覆盖与时效报告"
    assert page_words("en")["title"] == "Coverage and time report"
    assert set(page_words("en")) == set(page_words("zh-CN"))
    assert ZoneInfo(settings.reports.display_timezone)
