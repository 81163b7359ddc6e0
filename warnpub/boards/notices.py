"""The printable A4 notice of one warning for one village, with a QR code to its full text.

The notice is HTML with print CSS (``@page { size: A4 }``), so any browser prints it and a
headless browser can turn it into a PDF. The QR code is drawn by segno as inline SVG: the
notice needs no image file and no network. Agency text reaches the page only through the
autoescaped template (``templates/board/notice.html.j2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import segno
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.divisions import covers
from warnpub.audiences.tables import Area
from warnpub.boards.content import LIVE, SHOWN_STATUSES, BoardItem, item
from warnpub.boards.look import page_words
from warnpub.config import Settings
from warnpub.problems import Problem, conflict, not_found
from warnpub.render.templates import environment
from warnpub.storage.tables import WarningArea, WarningRecord

NOTICE_TEMPLATE = "board/notice.html.j2"


def qr_svg(url: str) -> Markup:
    """``url`` as a QR code in inline SVG (error correction M at least; quiet zone kept)."""
    code = segno.make(url, error="m", micro=False)
    svg = code.svg_inline(
        scale=1, border=4, dark="#000", light="#fff", svgclass="qr", omitsize=True
    )
    return Markup(svg)  # noqa: S704 (segno's own markup; the URL is encoded as modules, not text)


@dataclass(frozen=True, slots=True)
class Notice:
    warning: WarningRecord
    area: Area
    item: BoardItem
    full_text_url: str


async def load_notice(
    session: AsyncSession, settings: Settings, warning_id: str, area_code: str, language: str
) -> Notice:
    """The notice of ``warning_id`` for the area ``area_code``; 404/409/422 that say why not."""
    warning = await session.get(WarningRecord, warning_id)
    if warning is None or warning.scope != "Public" or warning.status not in SHOWN_STATUSES:
        raise not_found(f"no public warning {warning_id}")
    if warning.state not in LIVE:
        raise conflict(
            f"warning {warning_id} is {warning.state}: there is nothing to post; "
            "take down any notice of it that is still up",
            kind="not-in-force",
            state=warning.state,
        )
    if warning.msg_type not in ("Alert", "Update"):
        raise conflict(
            f"warning {warning_id} is a {warning.msg_type} message; post the notice of the "
            "warning it replaces instead",
            kind="not-postable",
        )
    area = await session.get(Area, area_code)
    if area is None:
        raise not_found(
            f"no area has the division code {area_code!r} (12 digits, e.g. 320481116200)"
        )
    codes = (
        await session.execute(select(WarningArea.code).where(WarningArea.warning_id == warning.id))
    ).scalars()
    if not any(covers(code, area_code) for code in codes):
        raise Problem(
            422,
            "Invalid input",
            f"warning {warning_id} does not cover {area.name} ({area_code}); "
            "choose a village inside the warning's areas",
            "outside-area",
        )
    return Notice(
        warning,
        area,
        item(warning, settings, language),
        settings.render.full_text_url.format(id=warning.id),
    )


def render_notice(notice: Notice, language: str) -> str:
    return (
        environment()
        .get_template(NOTICE_TEMPLATE)
        .render(
            item=notice.item,
            area=notice.area,
            words=page_words(language),
            qr=qr_svg(notice.full_text_url),
            full_text_url=notice.full_text_url,
            warning_id=notice.warning.id,
            language=language,
        )
    )
