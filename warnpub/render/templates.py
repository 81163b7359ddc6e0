"""Render a warning for one channel and one language from the Jinja2 templates.

Templates live in the ``warnpub.templates`` package (``templates/`` in the checkout)::

    sms/<lang>.txt.j2        one SMS, kept within [render] sms_max_parts
    email/<lang>.subject.j2  e-mail subject (one line)
    email/<lang>.txt.j2      e-mail text part
    email/<lang>.html.j2     e-mail HTML part (the only autoescaped templates: *.html.j2)
    speaker/<lang>.txt.j2    a script for loudspeakers and voice calls (numbers said in words)
    board/<lang>.txt.j2      a notice board: headline and instruction

The environment is sandboxed (agency text can never reach Python) and undefined names are
errors (StrictUndefined), so a template typo fails the tests instead of sending a blank.
See docs/rendering.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from jinja2 import PackageLoader, StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

from warnpub.cap.model import Info
from warnpub.config import Settings
from warnpub.render.sms_parts import SmsCount, count, fit, longest_prefix
from warnpub.render.speech import speakable
from warnpub.render.view import WarningView, match_language
from warnpub.render.words import Words, format_time, is_cjk, primary, sentence, words_for

if TYPE_CHECKING:
    from warnpub.storage.tables import WarningRecord

Channel = Literal["sms", "email", "speaker", "board"]
CHANNELS: tuple[Channel, ...] = ("sms", "email", "speaker", "board")
TEMPLATES_FOR = {"voice": "speaker", "relay": "sms"}
"""Route channels that reuse another channel's templates."""
_PARTS: dict[str, tuple[str, ...]] = {
    "sms": ("txt",),
    "email": ("subject", "txt", "html"),
    "speaker": ("txt",),
    "board": ("txt",),
}
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")
_SPACE_IN_CJK = re.compile(r"(?<=\S) (?=\S)")


@dataclass(frozen=True, slots=True)
class Rendered:
    """One warning rendered for one channel and one language."""

    channel: str
    language: str  # the template language used
    info_language: str | None  # the CAP info block used (None for a bare Cancel)
    text: str
    subject: str = ""  # e-mail only
    html: str | None = None  # e-mail only
    sms: SmsCount | None = None  # SMS only: encoding and parts of ``text``
    cut: bool = False  # SMS only: shortened, with a link to the full text


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith((".html.j2", ".html"))


@cache
def environment() -> SandboxedEnvironment:
    """The sandboxed Jinja2 environment over the packaged templates."""
    return SandboxedEnvironment(
        loader=PackageLoader("warnpub.templates", "."),
        autoescape=_autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


@cache
def template_languages(channel: str) -> tuple[str, ...]:
    """Languages with a complete set of templates for ``channel``, e.g. ("en", "zh-CN")."""
    names = set(environment().list_templates(extensions=("j2",)))
    found = {
        name.split("/", 1)[1].split(".", 1)[0] for name in names if name.startswith(f"{channel}/")
    }
    return tuple(
        sorted(
            lang
            for lang in found
            if all(f"{channel}/{lang}.{part}.j2" in names for part in _PARTS[channel])
        )
    )


def template_language(channel: str, wanted: str, info_language: str | None, default: str) -> str:
    """The person's language, else the info block's language, else ``default`` (zh-CN),
    each matched exactly first and then by primary language."""
    available = list(template_languages(channel))
    if not available:
        raise LookupError(f"no templates for channel {channel!r} in warnpub.templates")
    for candidate in (wanted, info_language, default):
        if candidate and (found := match_language(candidate, available)):
            return found
    return available[0]


def _template(channel: str, language: str, part: str) -> Template:
    return environment().get_template(f"{channel}/{language}.{part}.j2")


def _event_name(view: WarningView, info: Info | None, language: str) -> str:
    if info is not None and primary(info.language) == primary(language):
        return info.event
    return view.hazard_names.get(primary(language)) or (info.event if info else "")


def context(
    view: WarningView, info: Info | None, language: str, *, one_line: bool
) -> dict[str, Any]:
    """Every name a template may use. ``one_line`` collapses white space in agency text."""
    words = words_for(language)
    alert = view.alert

    def clean(value: str | None) -> str:
        value = (value or "").strip()
        return _SPACES.sub(" ", value) if one_line else value

    areas = [clean(area.area_desc) for area in info.areas] if info else []
    return {
        "warning_id": view.id,
        "status": alert.status,
        "msg_type": alert.msg_type,
        "drill": alert.status == "Exercise",
        "test": alert.status == "Test",
        "update": alert.msg_type == "Update",
        "cancel": alert.msg_type == "Cancel",
        "marker": words.marker(alert.status, alert.msg_type),
        "level": view.level.value if view.level else "",
        "level_name": words.level_name(view.level),
        "level_grade": words.level_grade(view.level),
        "event": clean(_event_name(view, info, language)),
        "sender_name": clean(info.sender_name if info else ""),
        "headline": clean((info.headline if info else None) or view.headline),
        "description": sentence(clean(info.description if info else "")),
        "instruction": sentence(clean(info.instruction if info else "")),
        "area": words.list_sep.join(a for a in areas if a),
        "sent": format_time(alert.sent, language),
        "effective": format_time(info.effective if info else None, language),
        "onset": format_time(info.onset if info else None, language),
        "expires": format_time(info.expires if info else None, language),
        "web": clean(info.web if info else ""),
        "contact": clean(info.contact if info else ""),
        "note": clean(alert.note),
        "full_text_url": view.full_text_url,
        "link": "",
        "info_language": info.language if info else "",
    }


def _one_line(text: str) -> str:
    """White space collapsed to single spaces, and none left between two CJK characters."""
    text = _SPACES.sub(" ", text).strip()
    return _SPACE_IN_CJK.sub(
        lambda m: "" if is_cjk(m.string[m.start() - 1]) and is_cjk(m.string[m.end()]) else " ",
        text,
    )


def _lines(text: str) -> str:
    return _BLANK_LINES.sub("\n\n", text).strip()


def _render_sms(
    template: Template, ctx: dict[str, Any], words: Words, max_parts: int, url: str
) -> tuple[str, bool]:
    def render(description: str, link: str) -> str:
        return _one_line(template.render({**ctx, "description": description, "link": link}))

    def fits(text: str) -> bool:
        return count(text).parts <= max_parts

    text = render(ctx["description"], "")
    if fits(text):
        return text, False
    # Too long: shorten the description first, keeping marker, level, instruction and expiry.
    if ctx["description"] and fits(render("", url)):
        kept = longest_prefix(
            ctx["description"], lambda d: fits(render(d.rstrip() + words.ellipsis, url))
        ).rstrip()
        return render(kept + words.ellipsis if kept else "", url), True
    # Even without its description the text is too long for the link: cut the whole text
    # (the link always goes at the end, since the description was left out).
    return fit(render("", ""), max_parts, words.more.format(url=url), always=True), True


def render(channel: str, view: WarningView, language: str | None = None) -> Rendered:
    """``view`` rendered for ``channel`` for a person who prefers ``language`` (None: the
    default language). Channels: sms, email, speaker, board; ``voice`` (a call that reads the
    message) uses the speaker script and ``relay`` (the village contact's copy) the SMS.
    Cached on the view per (channel, language)."""
    templates = TEMPLATES_FOR.get(channel, channel)
    if templates not in _PARTS:
        known = ", ".join([*CHANNELS, *TEMPLATES_FOR])
        raise ValueError(f"no templates for channel {channel!r}; use one of {known}")
    wanted = language or view.default_language
    key = (channel, wanted)
    if key not in view.cache:
        view.cache[key] = replace(_render(templates, view, wanted), channel=channel)
    return view.cache[key]


def render_warning(
    warning: WarningRecord, channel: str, language: str | None, settings: Settings
) -> Rendered:
    """One stored warning rendered for ``channel`` and ``language`` (builds a fresh view; keep a
    :class:`WarningView` per warning and call :func:`render` to reuse its cache)."""
    return render(channel, WarningView.from_record(warning, settings), language)


def _render(channel: str, view: WarningView, wanted: str) -> Rendered:
    info = view.info_for(wanted)
    info_language = info.language if info else None
    lang = template_language(channel, wanted, info_language, view.default_language)
    words = words_for(lang)
    ctx = context(view, info, lang, one_line=channel != "email")
    if channel == "sms":
        text, cut = _render_sms(
            _template("sms", lang, "txt"), ctx, words, view.sms_max_parts, view.full_text_url
        )
        return Rendered("sms", lang, info_language, text, sms=count(text), cut=cut)
    if channel == "email":
        return Rendered(
            "email",
            lang,
            info_language,
            _lines(_template("email", lang, "txt").render(ctx)) + "\n",
            subject=_one_line(_template("email", lang, "subject").render(ctx)),
            html=_template("email", lang, "html").render(ctx).strip() + "\n",
        )
    text = _lines(_template(channel, lang, "txt").render(ctx))
    if channel == "speaker":
        text = speakable(_one_line(text), lang)
    return Rendered(channel, lang, info_language, text)


def sms_preview(
    warning: WarningRecord | WarningView, settings: Settings
) -> dict[str, dict[str, Any]]:
    """For the approval preview: per info language of the warning (the default language for a
    bare Cancel), the SMS as it will be sent, its encoding, length and part count."""
    view = (
        warning if isinstance(warning, WarningView) else WarningView.from_record(warning, settings)
    )
    languages = list(dict.fromkeys(info.language for info in view.alert.infos))
    out: dict[str, dict[str, Any]] = {}
    for language in languages or [view.default_language]:
        rendered = render("sms", view, language)
        assert rendered.sms is not None
        out[language] = {
            "text": rendered.text,
            "template_language": rendered.language,
            "encoding": rendered.sms.encoding,
            "units": rendered.sms.units,
            "parts": rendered.sms.parts,
            "max_parts": view.sms_max_parts,
            "cut": rendered.cut,
        }
    return out
