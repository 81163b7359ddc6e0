"""Rendering: language choice, markers, level words, the SMS cut, escaping, the sandbox."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from tests.factories import alert_json
from warnpub.cap.model import Alert, Info, Level
from warnpub.config import Settings, load_settings
from warnpub.render import WarningView, choose_info, count, render, render_warning, sms_preview
from warnpub.render.templates import CHANNELS, environment, template_languages
from warnpub.render.words import WORDS, primary
from warnpub.storage.tables import WarningRecord

WARNING_ID = "01JTESTWARNING0000000000AA"
URL = f"http://127.0.0.1:8080/w/{WARNING_ID}"
SEVERITY = {
    Level.RED: "Extreme",
    Level.ORANGE: "Severe",
    Level.YELLOW: "Moderate",
    Level.BLUE: "Minor",
}
LANGUAGES = ("zh-CN", "en")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(environ={})


def english_info(**extra: Any) -> dict[str, Any]:
    info = alert_json()["infos"][0]
    return {
        **info,
        "language": "en-US",
        "event": "Rainstorm",
        "headline": "Rainstorm warning for Shezhu",
        "description": "Heavy rain of 50 mm expected.",
        "instruction": "Stay away from rivers.",
        "sender_name": "Liyang Weather Bureau",
        **extra,
    }


def make_alert(*, english: bool = False, **kw: Any) -> Alert:
    info_extra = {
        key: kw.pop(key)
        for key in ("description", "instruction", "headline", "sender_name", "event", "severity")
        if key in kw
    }
    doc = alert_json(**{"sender_name": "溧阳市气象台", **info_extra}, **kw)
    if english:
        doc["infos"].append(english_info())
    return Alert.model_validate({**doc, "sender": "qx@320481"})


def make_view(settings: Settings, **kw: Any) -> WarningView:
    return WarningView.from_alert(
        make_alert(**kw), settings, warning_id=WARNING_ID, hazard="rainstorm"
    )


def every_text(view: WarningView, language: str) -> dict[str, str]:
    email = render("email", view, language)
    return {
        "sms": render("sms", view, language).text,
        "subject": email.subject,
        "email text": email.text,
        "email html": email.html or "",
        "speaker": render("speaker", view, language).text,
        "board": render("board", view, language).text,
    }


# --- language choice --------------------------------------------------------------------------


def _infos(*languages: str) -> list[Info]:
    base = alert_json()["infos"][0]
    return [Info.model_validate({**base, "language": lang}) for lang in languages]


@pytest.mark.parametrize(
    ("wanted", "present", "chosen"),
    [
        ("zh-CN", ["zh-CN", "en-US"], "zh-CN"),
        ("en-US", ["zh-CN", "en-US"], "en-US"),
        ("EN-us", ["zh-CN", "en-US"], "en-US"),  # tags are case-insensitive
        ("en", ["zh-CN", "en-US"], "en-US"),  # same primary language
        ("en-GB", ["zh-CN", "en-US"], "en-US"),
        ("en-US", ["zh-CN", "en"], "en"),
        ("zh", ["en-US", "zh-TW"], "zh-TW"),
        ("fr", ["en-US", "zh-CN"], "zh-CN"),  # fall back to zh-CN
        ("fr", ["en-US", "fr-CA"], "fr-CA"),
        ("de", ["en-US", "zh-TW"], "zh-TW"),  # fall back to Chinese of another region
        ("de", ["en-US", "fr-FR"], "en-US"),  # fall back to the first info
    ],
)
def test_info_choice(wanted: str, present: list[str], chosen: str) -> None:
    info = choose_info(_infos(*present), wanted, "zh-CN")
    assert info is not None and info.language == chosen


def test_no_info_means_none() -> None:
    assert choose_info([], "zh-CN") is None


@pytest.mark.parametrize(
    ("wanted", "info_languages", "info_used", "template_used"),
    [
        ("zh-CN", ["zh-CN", "en-US"], "zh-CN", "zh-CN"),
        ("en-GB", ["zh-CN", "en-US"], "en-US", "en"),
        ("en", ["zh-CN"], "zh-CN", "en"),  # English frame around the Chinese text
        ("fr", ["zh-CN", "en-US"], "zh-CN", "zh-CN"),
        ("fr", ["en-US"], "en-US", "en"),  # the info's own language before zh-CN
        ("zh-TW", ["zh-CN"], "zh-CN", "zh-CN"),
        (None, ["en-US", "zh-CN"], "zh-CN", "zh-CN"),  # no preference: the default language
    ],
)
def test_template_and_info_language(
    settings: Settings, wanted, info_languages, info_used, template_used
) -> None:
    alert = make_alert()
    alert.infos = [
        Info.model_validate(
            english_info() if lang.startswith("en") else alert.infos[0].model_dump()
        )
        for lang in info_languages
    ]
    view = WarningView.from_alert(alert, settings, warning_id=WARNING_ID, hazard="rainstorm")
    for channel in (*CHANNELS, "voice", "relay"):
        rendered = render(channel, view, wanted)
        assert rendered.channel == channel
        assert (rendered.info_language, rendered.language) == (info_used, template_used)


def test_english_template_names_the_hazard_in_english_for_a_chinese_info(settings) -> None:
    view = make_view(settings)
    assert render("board", view, "en").text.startswith("Rainstorm: Yellow warning")
    assert render("board", view, "zh-CN").text.startswith("暴雨黄色预警")


def test_every_template_language_has_words_and_every_channel_both_languages() -> None:
    for channel in CHANNELS:
        languages = template_languages(channel)
        assert set(LANGUAGES) <= set(languages), channel
        for language in languages:
            assert primary(language) in WORDS


# --- markers and level words ------------------------------------------------------------------

MARKERS = {
    ("Exercise", "Alert"): {"zh-CN": "【演练】", "en": "[DRILL]"},
    ("Test", "Alert"): {"zh-CN": "【测试】", "en": "[TEST]"},
    ("Actual", "Update"): {"zh-CN": "【续报】", "en": "[UPDATE]"},
    ("Actual", "Cancel"): {"zh-CN": "【解除】", "en": "[CANCELLED]"},
}


@pytest.mark.parametrize(("status", "msg_type"), list(MARKERS))
@pytest.mark.parametrize("language", LANGUAGES)
def test_markers_in_every_channel(settings, status, msg_type, language) -> None:
    references = ["qx@320481,earlier,2026-07-01T08:00:00+08:00"] if msg_type != "Alert" else None
    view = make_view(settings, status=status, msg_type=msg_type, references=references)
    marker = MARKERS[(status, msg_type)][language]
    texts = every_text(view, language)
    for name in ("sms", "subject", "email text", "speaker", "board"):
        assert texts[name].startswith(marker), (name, texts[name])
    assert marker in re.search(r"<h1[^>]*>(.*?)</h1>", texts["email html"]).group(1)


def test_drill_update_has_both_markers_drill_first(settings) -> None:
    view = make_view(
        settings,
        status="Exercise",
        msg_type="Update",
        references=["qx@320481,earlier,2026-07-01T08:00:00+08:00"],
    )
    assert render("sms", view, "zh-CN").text.startswith("【演练】【续报】")
    assert render("sms", view, "en").text.startswith("[DRILL] [UPDATE]")


def test_drills_are_explained_and_announced_at_both_ends_of_speech(settings) -> None:
    view = make_view(settings, status="Exercise")
    zh = render("speaker", view, "zh-CN").text
    assert "不是真实预警" in zh[:40] and zh.endswith("以上是演练信息，不是真实预警。")
    en = render("speaker", view, "en").text
    assert en.startswith("[DRILL] This is an emergency drill")
    assert en.endswith("This was a drill, not a real warning.")
    assert "不是真实预警" in render("email", view, "zh-CN").text


def test_actual_alert_has_no_marker(settings) -> None:
    view = make_view(settings)
    for text in every_text(view, "zh-CN").values():
        assert not any(m in text for m in ("【演练】", "【测试】", "【续报】", "【解除】"))
    for text in every_text(view, "en").values():
        assert not any(m in text for m in ("[DRILL]", "[TEST]", "[UPDATE]", "[CANCELLED]"))


LEVEL_WORDS = {
    Level.RED: ("红色预警", "Red warning"),
    Level.ORANGE: ("橙色预警", "Orange warning"),
    Level.YELLOW: ("黄色预警", "Yellow warning"),
    Level.BLUE: ("蓝色预警", "Blue warning"),
}


@pytest.mark.parametrize("level", list(Level))
def test_level_is_named_in_words_everywhere(settings, level: Level) -> None:
    view = make_view(settings, severity=SEVERITY[level])
    zh_words, en_words = LEVEL_WORDS[level]
    for name, text in every_text(view, "zh-CN").items():
        assert zh_words in text, name
    for name, text in every_text(view, "en").items():
        assert en_words.lower() in text.lower(), name
    # The e-mail heading carries the level in words, not only as its background colour.
    html = render("email", view, "zh-CN").html or ""
    assert zh_words in re.search(r"<h1[^>]*>(.*?)</h1>", html).group(1)


def test_cancel_says_cancelled(settings) -> None:
    refs = ["qx@320481,earlier,2026-07-01T08:00:00+08:00"]
    view = make_view(settings, msg_type="Cancel", references=refs)
    assert "解除暴雨黄色预警" in render("sms", view, "zh-CN").text
    assert "预警已解除" in render("board", view, "zh-CN").text
    assert "cancelled" in render("sms", view, "en").text
    assert "有效" not in render("board", view, "zh-CN").text  # no validity for a cancellation


def test_bare_cancel_without_info_uses_the_stored_warning(settings) -> None:
    alert = make_alert(msg_type="Cancel", references=["qx@320481,x,2026-07-01T08:00:00+08:00"])
    alert.infos = []
    record = WarningRecord(
        id=WARNING_ID,
        agency_id=1,
        sender=alert.sender,
        identifier=alert.identifier,
        sent=alert.sent,
        status="Actual",
        msg_type="Cancel",
        scope="Public",
        level="orange",
        level_rank=1,
        hazard="rainstorm",
        headline="暴雨橙色预警",
        state="approved",
        content_hash="x",
        alert=alert.model_dump(mode="json"),
    )
    sms = render_warning(record, "sms", "zh-CN", settings)
    assert sms.info_language is None
    assert sms.text.startswith("【解除】") and "暴雨橙色预警" in sms.text
    assert render_warning(record, "board", "en", settings).text.startswith(
        "[CANCELLED] Rainstorm: Orange warning"
    )
    assert list(sms_preview(record, settings)) == ["zh-CN"]


# --- speech -----------------------------------------------------------------------------------


def test_speaker_script_is_for_the_ear(settings) -> None:
    view = make_view(
        settings,
        description="预计未来3小时降雨量50mm以上，局部20-30毫米，最低气温-5℃。",
        instruction="请远离河道，拨打12379报告险情",
    )
    text = render("speaker", view, "zh-CN").text
    assert not re.search(r"[0-9]", text), text  # every number said in words
    assert "三小时" in text and "五十毫米" in text and "二十到三十毫米" in text
    assert "零下五摄氏度" in text and "幺二三七九" in text
    assert "三级，较重" in text  # the grade, not the numeral Ⅲ
    assert text.count("请远离河道") == 2  # the key instruction is repeated
    assert "重复一遍" in text


def test_english_speaker_spells_out_units(settings) -> None:
    alert = make_alert()
    alert.infos = [Info.model_validate(english_info())]
    view = WarningView.from_alert(alert, settings, warning_id=WARNING_ID, hazard="rainstorm")
    text = render("speaker", view, "en").text
    assert "50 millimetres" in text
    assert text.count("Stay away from rivers.") == 2


# --- the SMS cut ------------------------------------------------------------------------------


@pytest.mark.parametrize("max_parts", [1, 2, 3])
def test_long_sms_is_cut_within_the_parts_and_links_to_the_full_text(settings, max_parts) -> None:
    long_settings = settings.model_copy(
        update={"render": settings.render.model_copy(update={"sms_max_parts": max_parts})}
    )
    description = "预计未来六小时内全市将出现强降雨，局部地区伴有雷电和短时大风。" * 20
    view = WarningView.from_alert(
        make_alert(description=description, instruction="请转移到安全地带"),
        long_settings,
        warning_id=WARNING_ID,
        hazard="rainstorm",
    )
    sms = render("sms", view, "zh-CN")
    assert sms.cut
    assert sms.sms is not None and sms.sms.parts <= max_parts
    assert sms.sms == count(sms.text)
    assert URL in sms.text
    assert sms.text.startswith("暴雨黄色预警")
    if max_parts > 1:  # room enough: the instruction survives, the description is cut
        assert "请转移到安全地带" in sms.text and "…" in sms.text


def test_short_sms_is_not_cut(settings) -> None:
    sms = render("sms", make_view(settings), "zh-CN")
    assert not sms.cut and URL not in sms.text
    assert sms.sms is not None and sms.sms.parts <= 2


def test_long_instruction_alone_is_cut_with_the_link(settings) -> None:
    view = make_view(settings, description="", instruction="请立即转移。" * 80)
    sms = render("sms", view, "zh-CN")
    assert sms.cut and sms.text.endswith("…详情 " + URL)
    assert sms.sms is not None and sms.sms.parts <= 3


def test_english_sms_stays_gsm7_when_cut(settings) -> None:
    alert = make_alert()
    alert.infos = [
        Info.model_validate(
            english_info(description="Heavy rain is expected over the whole county. " * 20)
        )
    ]
    view = WarningView.from_alert(alert, settings, warning_id=WARNING_ID, hazard="rainstorm")
    sms = render("sms", view, "en")
    assert sms.cut and sms.sms is not None
    assert sms.sms.encoding == "GSM-7" and sms.sms.parts <= 3
    assert f"Full text: {URL}" in sms.text
    assert "Stay away from rivers." in sms.text


def test_sms_preview_per_language(settings) -> None:
    view = make_view(settings, english=True, description="强降雨。" * 60)
    preview = sms_preview(view, settings)
    assert list(preview) == ["zh-CN", "en-US"]
    zh, en = preview["zh-CN"], preview["en-US"]
    assert zh["encoding"] == "UCS-2" and 1 <= zh["parts"] <= 3 and zh["cut"] is True
    assert zh["max_parts"] == 3 and zh["text"].startswith("暴雨黄色预警")
    assert en["template_language"] == "en" and en["encoding"] == "GSM-7"
    assert en["parts"] == count(en["text"]).parts and en["cut"] is False


def test_sms_preview_from_a_stored_record(settings) -> None:
    alert = make_alert(english=True)
    record = WarningRecord(
        id=WARNING_ID,
        agency_id=1,
        sender=alert.sender,
        identifier=alert.identifier,
        sent=alert.sent,
        status=alert.status,
        msg_type=alert.msg_type,
        scope="Public",
        level="yellow",
        level_rank=2,
        hazard="rainstorm",
        headline="暴雨预警",
        state="approved",
        content_hash="x",
        alert=alert.model_dump(mode="json"),
    )
    preview = sms_preview(record, settings)
    assert set(preview) == {"zh-CN", "en-US"}
    assert preview["zh-CN"]["text"] == render_warning(record, "sms", "zh-CN", settings).text


# --- escaping, one-line subjects, the sandbox ---------------------------------------------------

HOSTILE = "<script>alert(1)</script>"


def test_html_part_escapes_hostile_text_and_sms_keeps_it_as_text(settings) -> None:
    view = make_view(
        settings,
        headline=f"暴雨{HOSTILE}",
        description=f'注意"<b>{HOSTILE}',
        instruction=f"<img src=x onerror=alert(1)>{HOSTILE}",
        sender_name=f"气象台{HOSTILE}",
    )
    email = render("email", view, "zh-CN")
    assert email.html is not None
    assert "<script" not in email.html and "<img" not in email.html and "<b>" not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in email.html
    # Plain-text channels are not HTML: the text stays exactly as the agency wrote it.
    assert HOSTILE in email.text and HOSTILE in email.subject
    assert HOSTILE in render("sms", view, "zh-CN").text
    assert HOSTILE in render("board", view, "zh-CN").text


def test_subject_is_one_line_whatever_the_headline(settings) -> None:
    view = make_view(settings, headline="暴雨\r\nBcc: victim@example.com\n\n正文")
    subject = render("email", view, "zh-CN").subject
    assert "\n" not in subject and "\r" not in subject
    assert render("sms", view, "zh-CN").text.count("\n") == 0


def test_undefined_names_are_errors() -> None:
    with pytest.raises(UndefinedError):
        environment().from_string("{{ no_such_name }}").render()
    with pytest.raises(UndefinedError):
        environment().get_template("sms/zh-CN.txt.j2").render({"marker": ""})


def test_templates_cannot_reach_python() -> None:
    with pytest.raises(SecurityError):
        environment().from_string("{{ ''.__class__.__mro__ }}").render()


def test_autoescape_only_for_html_templates() -> None:
    env = environment()
    assert env.get_template("email/zh-CN.html.j2").environment.autoescape
    escaped = env.from_string("{{ x }}").render(x="<b>")
    assert escaped == "<b>"  # string templates and .txt templates are not escaped


def test_unknown_channel_is_refused(settings) -> None:
    with pytest.raises(ValueError, match="no templates for channel 'fax'"):
        render("fax", make_view(settings), "zh-CN")


def test_renders_are_cached_per_channel_and_language(settings) -> None:
    view = make_view(settings)
    assert render("sms", view, "zh-CN") is render("sms", view, "zh-CN")
    assert render("sms", view, "en") is not render("sms", view, "zh-CN")
