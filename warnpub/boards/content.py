"""What a board shows: the active public warnings that cover its area, most severe and newest
first, each with its level's colour, name and icon.

A warning covers a board when one of its division codes is the board's own area or an
ancestor of it (a warning for a town is on every board of its villages), as targeting decides
it (:func:`warnpub.audiences.divisions.covers`). Only released warnings (approved,
dispatching, completed) with public scope, status Actual or Exercise and not past their expiry
are shown; a warning replaced by a released Update, or named by a released Cancel, is not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.divisions import parent_of
from warnpub.boards.look import LevelLook, PageWords, look_of, page_words
from warnpub.cap.model import Level
from warnpub.config import Settings
from warnpub.render.templates import context, environment, template_language
from warnpub.render.view import WarningView
from warnpub.render.words import format_time
from warnpub.review import states
from warnpub.storage.tables import WarningArea, WarningRecord, WarningReference

LIVE = (states.APPROVED, states.DISPATCHING, states.COMPLETED)
SHOWN_STATUSES = ("Actual", "Exercise")
SHOWN_TYPES = ("Alert", "Update")
LIST_TEMPLATE = "board/list.html.j2"


def covering_codes(area_code: str) -> list[str]:
    """``area_code`` and every division above it: the codes a warning must name to cover it."""
    codes: list[str] = []
    code: str | None = area_code
    while code is not None:
        codes.append(code)
        code = parent_of(code)
    return codes


async def active_warnings(
    session: AsyncSession, area_code: str, now: datetime
) -> list[WarningRecord]:
    """The warnings a board in ``area_code`` shows at ``now``, in board order."""
    covering = select(WarningArea.warning_id).where(WarningArea.code.in_(covering_codes(area_code)))
    rows = list(
        (
            await session.execute(
                select(WarningRecord)
                .where(
                    WarningRecord.id.in_(covering),
                    WarningRecord.state.in_(LIVE),
                    WarningRecord.scope == "Public",
                    WarningRecord.status.in_(SHOWN_STATUSES),
                    WarningRecord.msg_type.in_(SHOWN_TYPES),
                    or_(WarningRecord.expires_at.is_(None), WarningRecord.expires_at > now),
                )
                .order_by(
                    WarningRecord.level_rank, WarningRecord.sent.desc(), WarningRecord.id.desc()
                )
            )
        ).scalars()
    )
    if not rows:
        return rows
    replaced = set(
        (
            await session.execute(
                select(WarningReference.referenced_id)
                .join(WarningRecord, WarningRecord.id == WarningReference.warning_id)
                .where(
                    WarningReference.referenced_id.in_([w.id for w in rows]),
                    WarningRecord.state.in_(LIVE),
                )
            )
        ).scalars()
    )
    return [w for w in rows if w.id not in replaced]


@dataclass(frozen=True, slots=True)
class BoardItem:
    """One warning as a board or notice shows it."""

    warning_id: str
    level: str
    look: LevelLook
    text: dict[str, Any]  # the template context of the board's language


@dataclass(frozen=True, slots=True)
class BoardContent:
    items: tuple[BoardItem, ...]
    language: str
    words: PageWords
    html: str = ""  # the list fragment, the same on the page, in events and in polls
    version: str = ""  # changes whenever the fragment does
    warning_ids: tuple[str, ...] = field(default=())


def item(record: WarningRecord, settings: Settings, language: str) -> BoardItem:
    view = WarningView.from_record(record, settings)
    info = view.info_for(language)
    lang = template_language(
        "board", language, info.language if info else None, view.default_language
    )
    text = context(view, info, lang, one_line=False)
    text["sent"] = format_time(record.sent, lang)
    return BoardItem(record.id, record.level, look_of(_level(record.level)), text)


def _level(value: str) -> Level | None:
    try:
        return Level(value)
    except ValueError:
        return None


def board_content(
    records: Sequence[WarningRecord], settings: Settings, language: str
) -> BoardContent:
    """The content of a board: items and the autoescaped HTML fragment of the list."""
    items = tuple(item(r, settings, language) for r in records)
    words = page_words(language)
    html = environment().get_template(LIST_TEMPLATE).render(items=items, words=words)
    version = hashlib.sha256(html.encode()).hexdigest()[:16]
    return BoardContent(items, language, words, html, version, tuple(i.warning_id for i in items))
