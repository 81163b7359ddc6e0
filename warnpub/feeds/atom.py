"""The CAP 1.2 Atom feed of active public warnings, as national weather services publish theirs.

Which warnings: Actual, Public warnings in force (approved, dispatching or completed) that
have not expired and have not been replaced by a released Update or Cancel, newest first.
Exercise (drill) and Test messages never appear: the feed is what the public and partner
systems act on. A message without an expiry time (a bare Cancel) stays for
:data:`NO_EXPIRY_SHOWN` after it was sent.

Each entry links (``rel="alternate"``, ``type="application/cap+xml"``) to the warning's CAP
document and carries the essentials as Atom and as CAP elements (``cap:event``,
``cap:severity``, ``cap:expires``, …), so a partner can filter without fetching every
document. The XML is built with lxml, so agency text is always text: a headline
``<script>…`` arrives escaped, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lxml import etree
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, defer
from sqlalchemy.sql.elements import ColumnElement

from warnpub import __version__
from warnpub.cap import CAP12_NS, Info, cap_datetime
from warnpub.clock import iso
from warnpub.config import Settings
from warnpub.feeds.documents import (
    CAP_MEDIA_TYPE,
    PUBLIC_SCOPE,
    PUBLIC_STATUS,
    RELEASED,
    cap_url,
)
from warnpub.render.view import WarningView
from warnpub.render.words import WORDS, Words, primary
from warnpub.storage.tables import WarningRecord, WarningReference

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_MEDIA_TYPE = "application/atom+xml"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
FEED_PATH = "/feeds/cap.atom"
FEED_LIMIT = 500
NO_EXPIRY_SHOWN = timedelta(hours=24)
SUMMARY_CHARS = 600
LEVEL_SCHEME = "urn:warnpub:level"
HAZARD_SCHEME = "urn:warnpub:hazard"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TITLES = {"zh": "生效中的公众预警信息", "en": "Active public warnings"}
_SUBTITLES = {
    "zh": "CAP 1.2 预警：每条链接到其 CAP 文档",
    "en": "CAP 1.2 alerts in force; each entry links to its CAP document",
}
_TITLE_SEPARATOR = {"zh": "：", "en": ": "}


@dataclass(frozen=True, slots=True)
class FeedState:
    """The warnings the feed lists, and when what it lists last changed (None: never)."""

    warnings: Sequence[WarningRecord]
    last_changed: datetime | None


def _public() -> ColumnElement[bool]:
    return and_(WarningRecord.status == PUBLIC_STATUS, WarningRecord.scope == PUBLIC_SCOPE)


async def feed_state(session: AsyncSession, now: datetime, limit: int = FEED_LIMIT) -> FeedState:
    """The active public warnings at ``now``, newest first, and the time the list last changed:
    a warning released, cancelled, expired or replaced (``updated_at``), or one whose expiry
    time has passed."""
    newer = aliased(WarningRecord)
    replaced = (
        select(WarningReference.referenced_id)
        .join(newer, newer.id == WarningReference.warning_id)
        .where(
            newer.state.in_(RELEASED),
            newer.status == PUBLIC_STATUS,
            newer.scope == PUBLIC_SCOPE,
        )
    )
    shown_until = now - NO_EXPIRY_SHOWN
    active = (
        select(WarningRecord)
        .options(defer(WarningRecord.cap_xml))  # the feed is written from the stored alert
        .where(
            _public(),
            WarningRecord.state.in_(RELEASED),
            or_(
                WarningRecord.expires_at > now,
                and_(WarningRecord.expires_at.is_(None), WarningRecord.sent > shown_until),
            ),
            WarningRecord.id.not_in(replaced),
        )
        .order_by(WarningRecord.sent.desc(), WarningRecord.id.desc())
        .limit(limit)
    )
    warnings = list((await session.execute(active)).scalars())
    changes = select(
        func.max(WarningRecord.updated_at),
        func.max(case((WarningRecord.expires_at <= now, WarningRecord.expires_at))),
        func.max(
            case(
                (
                    and_(WarningRecord.expires_at.is_(None), WarningRecord.sent <= shown_until),
                    WarningRecord.sent,
                )
            )
        ),
    ).where(_public(), WarningRecord.decided_at.is_not(None))
    updated, expired, undated = (await session.execute(changes)).one()
    moments = [updated, expired, undated + NO_EXPIRY_SHOWN if undated is not None else None]
    return FeedState(warnings, max((m for m in moments if m is not None), default=None))


def feed_url(settings: Settings) -> str:
    return settings.server.public_url.rstrip("/") + FEED_PATH


def build_feed(state: FeedState, settings: Settings) -> bytes:
    """The Atom document for ``state`` (UTF-8). The same state gives the same bytes."""
    language = settings.render.default_language
    key = primary(language) if primary(language) in _TITLES else "en"
    nsmap = {None: ATOM_NS, "cap": CAP12_NS}
    feed = etree.Element(_atom("feed"), nsmap=nsmap)
    feed.set(XML_LANG, language)
    _text(feed, "id", feed_url(settings))
    _text(feed, "title", _TITLES[key])
    _text(feed, "subtitle", _SUBTITLES[key])
    _text(feed, "updated", iso(state.last_changed or EPOCH) or "")
    _link(feed, "self", ATOM_MEDIA_TYPE, feed_url(settings))
    author = etree.SubElement(feed, _atom("author"))
    _text(author, "name", "warnpub")
    generator = _text(feed, "generator", "warnpub")
    generator.set("version", __version__)
    for warning in state.warnings:
        _entry(feed, warning, settings)
    document: bytes = etree.tostring(
        feed, xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return document


def _entry(feed: etree._Element, warning: WarningRecord, settings: Settings) -> None:
    view = WarningView.from_record(warning, settings)
    info = view.info_for(settings.render.default_language)
    language = info.language if info is not None else settings.render.default_language
    words = WORDS.get(primary(language)) or WORDS.get(primary(settings.render.default_language))
    words = words or WORDS["en"]
    entry = etree.SubElement(feed, _atom("entry"))
    entry.set(XML_LANG, language)
    url = cap_url(settings, warning.id)
    released = iso(warning.decided_at or warning.created_at) or ""
    _text(entry, "id", url)
    _text(entry, "title", _title(view, info, words, language))
    _text(entry, "updated", released)
    _text(entry, "published", released)
    author = etree.SubElement(entry, _atom("author"))
    _text(author, "name", (info.sender_name if info and info.sender_name else "") or warning.sender)
    _text(entry, "summary", _summary(view, info))
    _link(entry, "alternate", CAP_MEDIA_TYPE, url)
    _link(entry, "related", "text/html", view.full_text_url)
    if view.level is not None:
        _category(entry, view.level.value, LEVEL_SCHEME, words.level_name(view.level))
    hazard_label = view.hazard_names.get(primary(language)) or view.hazard_names.get("en")
    _category(entry, warning.hazard, HAZARD_SCHEME, hazard_label or warning.hazard)
    _cap_fields(entry, view, info)


def _title(view: WarningView, info: Info | None, words: Words, language: str) -> str:
    alert = view.alert
    headline = (info.headline if info else None) or view.headline
    if not headline:
        hazard = view.hazard_names.get(primary(language)) or (info.event if info else "")
        headline = hazard or alert.identifier
    marker = words.marker(alert.status, alert.msg_type).strip()
    separator = _TITLE_SEPARATOR.get(primary(language), ": ")
    level = words.level_name(view.level)
    return f"{marker}{' ' if marker and separator == ': ' else ''}{level}{separator}{headline}"


def _summary(view: WarningView, info: Info | None) -> str:
    text = ""
    if info is not None:
        text = (info.description or info.instruction or info.headline or "").strip()
    text = text or view.headline or view.alert.note or ""
    if len(text) > SUMMARY_CHARS:
        text = text[: SUMMARY_CHARS - 1].rstrip() + "…"
    return text


def _cap_fields(entry: etree._Element, view: WarningView, info: Info | None) -> None:
    alert = view.alert
    fields: list[tuple[str, str | None]] = [
        ("identifier", alert.identifier),
        ("sender", alert.sender),
        ("sent", cap_datetime(alert.sent)),
        ("status", alert.status),
        ("msgType", alert.msg_type),
        ("scope", alert.scope),
    ]
    if info is not None:
        fields += [("category", category) for category in info.categories]
        fields += [
            ("event", info.event),
            ("urgency", info.urgency),
            ("severity", info.severity),
            ("certainty", info.certainty),
            ("effective", cap_datetime(info.effective) if info.effective else None),
            ("onset", cap_datetime(info.onset) if info.onset else None),
            ("expires", cap_datetime(info.expires) if info.expires else None),
            ("areaDesc", "; ".join(area.area_desc for area in info.areas) or None),
        ]
    for tag, value in fields:
        if value:
            etree.SubElement(entry, f"{{{CAP12_NS}}}{tag}").text = value


def _atom(tag: str) -> str:
    return f"{{{ATOM_NS}}}{tag}"


def _text(parent: etree._Element, tag: str, value: str) -> etree._Element:
    node = etree.SubElement(parent, _atom(tag))
    node.text = value
    return node


def _link(parent: etree._Element, rel: str, media_type: str, href: str) -> None:
    etree.SubElement(parent, _atom("link"), rel=rel, type=media_type, href=href)


def _category(parent: etree._Element, term: str, scheme: str, label: str) -> None:
    etree.SubElement(parent, _atom("category"), term=term, scheme=scheme, label=label)
