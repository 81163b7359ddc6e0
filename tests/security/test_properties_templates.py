"""Property tests of rendering (warnpub.render, templates/): whatever an agency writes.

- Every channel (sms, email, speaker, board, and voice / relay that reuse them) renders any
  warning text in both template languages without an error.
- The e-mail's HTML part keeps agency text as text: markup and entity references written by the
  agency come out escaped, never as elements; template syntax in agency text is never run.
- The SMS never takes more parts than ``[render] sms_max_parts`` (1 to 5 here); the part count
  it reports is the exact count of its text; when it was cut, it links to the full text.
"""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from tests.factories import alert_json
from tests.security.hypothesis_setup import examples
from warnpub.cap.model import Alert
from warnpub.config import load_settings
from warnpub.render import WarningView, count, render

SETTINGS = load_settings(environ={})
WARNING_ID = "01JTESTWARNING0000000000AA"
CHANNELS = ("sms", "email", "speaker", "board", "voice", "relay")
XML_CHARS = st.characters(
    codec="utf-8",
    exclude_categories=["Cs", "Cc"],
    exclude_characters="\ufffe\uffff",
    include_characters="\t\n\r",
)
# What agencies write, and what an attacker would: markup, entities, template syntax, long text.
HOSTILE = st.sampled_from(
    [
        '<script>alert("x")</script>',
        '<img src=x onerror="alert(1)">',
        "&lt;b&gt;",
        "&amp;",
        "{{ 7 * 'q7' }}",
        "{% for x in range(9) %}q8{% endfor %}",
        "{{ ''.__class__.__mro__ }}",
        "]]><!--",
        "\u202e反转",
        "😜👍🏻👨‍👩‍👧",
        "{}[]~|^€\\",
        "暴雨" * 200,
        "a" * 1000,
    ]
)
TEXT = st.one_of(
    st.text(XML_CHARS, max_size=200),
    HOSTILE,
    st.lists(st.one_of(HOSTILE, st.text(XML_CHARS, max_size=20)), max_size=5).map("".join),
)


@st.composite
def views(draw: st.DrawFn) -> WarningView:
    info_extra: dict[str, Any] = {
        "headline": draw(TEXT),
        "description": draw(TEXT),
        "instruction": draw(TEXT),
        "sender_name": draw(TEXT),
        "event": draw(TEXT.filter(lambda t: t.strip())),
        "severity": draw(st.sampled_from(["Extreme", "Severe", "Moderate", "Minor"])),
        "web": draw(st.none() | TEXT),
        "contact": draw(st.none() | TEXT),
    }
    doc = alert_json(
        msg_type=draw(st.sampled_from(["Alert", "Update", "Cancel"])),
        status=draw(st.sampled_from(["Actual", "Exercise", "Test"])),
        **info_extra,
    )
    doc["infos"][0]["language"] = draw(st.sampled_from(["zh-CN", "en-US", "fr"]))
    doc["infos"][0]["areas"][0]["area_desc"] = draw(TEXT)
    doc["note"] = draw(st.none() | TEXT)
    alert = Alert.model_validate({**doc, "sender": "qx@320481"})
    view = WarningView.from_alert(alert, SETTINGS, warning_id=WARNING_ID, hazard="rainstorm")
    return replace(view, sms_max_parts=draw(st.integers(1, 5)), cache={})


@examples(120)
@given(views(), st.sampled_from(["zh-CN", "en", "en-US", "fr", None]))
def test_every_channel_renders_any_text(view: WarningView, language: str | None) -> None:
    for channel in CHANNELS:
        rendered = render(channel, view, language)
        assert rendered.text.strip(), channel
        # Template syntax in agency text is printed, never run.
        assert "q7q7" not in rendered.text and "q8q8" not in rendered.text
        assert "__mro__" not in rendered.text or "{{" in rendered.text


class _Tags(HTMLParser):
    """The elements of a page and the names of their attributes, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(name for name, _ in attrs)))


def _tags(page: str) -> list[tuple[str, tuple[str, ...]]]:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser.tags


def _plain(text: str | None) -> str | None:
    """The same text with every visible character an x (white space kept where it was)."""
    return None if text is None else "".join(c if c.isspace() else "x" for c in text)


def _plain_view(view: WarningView) -> WarningView:
    alert = view.alert
    info = alert.infos[0]
    area = info.areas[0].model_copy(update={"area_desc": _plain(info.areas[0].area_desc)})
    fields = ("headline", "description", "instruction", "sender_name", "event", "web", "contact")
    info = info.model_copy(
        update={name: _plain(getattr(info, name)) for name in fields} | {"areas": [area]}
    )
    alert = alert.model_copy(update={"infos": [info], "note": _plain(alert.note)})
    return replace(view, alert=alert, cache={})


@examples(120)
@given(views(), st.sampled_from(["zh-CN", "en"]))
def test_email_html_keeps_agency_text_as_text(view: WarningView, language: str) -> None:
    """The page has exactly the elements and attributes it has for the same warning written in
    plain letters: nothing the agency wrote became markup."""
    page = render("email", view, language).html or ""
    plain = render("email", _plain_view(view), language).html or ""
    assert _tags(page) == _tags(plain)
    assert "<script" not in page.lower()


@examples(150)
@given(views(), st.sampled_from(["zh-CN", "en"]))
def test_sms_stays_within_its_parts_and_reports_them(view: WarningView, language: str) -> None:
    for channel in ("sms", "relay"):
        sms = render(channel, view, language)
        assert sms.sms is not None
        assert sms.sms == count(sms.text)
        assert sms.sms.parts <= view.sms_max_parts, (sms.sms, view.sms_max_parts)
        if sms.cut:
            assert view.full_text_url in sms.text


@examples(60)
@given(st.text(XML_CHARS, min_size=1, max_size=300), st.sampled_from(["zh-CN", "en"]))
def test_a_headline_is_escaped_exactly_once(headline: str, language: str) -> None:
    """The headline appears in the HTML escaped once: neither raw nor escaped twice."""
    headline = headline.strip()
    if not headline:
        return
    doc = alert_json(headline=headline)
    alert = Alert.model_validate({**doc, "sender": "qx@320481"})
    view = WarningView.from_alert(alert, SETTINGS, warning_id=WARNING_ID, hazard="rainstorm")
    page = render("email", view, language).html or ""
    assert f"<h2>{escape(headline)}</h2>" in page
