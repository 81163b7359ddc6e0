"""Notices: messages about a warning that are not the warning itself — escalation alerts to
duty officers and supervisors, reminders, answers to replies, visit lists for village contacts.

Each is a ``notices`` row (the text, the address) and a delivery with ``target_kind = "notice"``
in the same transaction, so it leaves through the same channel workers (rate limits, retries,
failover, receipts) as the warning, ahead of it (priority 0), and is never lost. (A visit list
under ``[dispatch] priority_order = "fifo"`` is the exception: it takes its turn behind what
was queued before it, see :mod:`warnpub.channels.visit`.) A notice is
sent whatever state its warning is in: a review-deadline alert is about a pending warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.clock import utcnow
from warnpub.lastkm.tables import Notice
from warnpub.storage.tables import Delivery

log = logging.getLogger("warnpub.lastkm")

NOTICE = "notice"
NOTICE_PRIORITY = 0
SMS_MAX = 500  # a notice is a few SMS parts at most


def address_channel(address: str, channels: list[str]) -> str | None:
    """The channel that carries a notice to ``address`` (an e-mail or an E.164 number)."""
    wanted = "email" if "@" in address else "sms"
    return wanted if wanted in channels else None


async def send(
    session: AsyncSession,
    *,
    warning_id: str,
    kind: str,
    channel: str,
    address: str,
    text: str,
    area_code: str = "",
    person_id: int | None = None,
    subject: str = "",
    language: str = "zh-CN",
    priority: int = NOTICE_PRIORITY,
) -> tuple[Notice, Delivery]:
    limit = SMS_MAX if channel == "sms" else 2000
    notice = Notice(
        warning_id=warning_id,
        kind=kind,
        channel=channel,
        address=address,
        person_id=person_id,
        subject=subject[:200],
        text=text[:limit],
    )
    session.add(notice)
    await session.flush()
    assert notice.id is not None
    now = utcnow()
    delivery = Delivery(
        warning_id=warning_id,
        target_kind=NOTICE,
        target_id=notice.id,
        channel=channel,
        stage=0,
        route=channel,
        tier=0,
        priority=priority,
        area_code=(area_code or "")[:12],
        language=language,
        state="queued",
        next_attempt_at=now,
    )
    session.add(delivery)
    await session.flush()
    log.info("notice queued", extra={"warning_id": warning_id, "kind": kind, "channel": channel})
    return notice, delivery


@dataclass(frozen=True, slots=True)
class NoticeSpec:
    """One notice of :func:`send_many` (the text may follow with :func:`set_texts`)."""

    warning_id: str
    kind: str
    channel: str
    address: str
    text: str = ""
    area_code: str = ""
    person_id: int | None = None
    language: str = "zh-CN"
    priority: int = NOTICE_PRIORITY


async def send_many(session: AsyncSession, specs: Sequence[NoticeSpec]) -> list[tuple[int, int]]:
    """Like :func:`send` for many notices in two statements (no ORM objects): the notices,
    then their deliveries. Returns ``(notice id, delivery id)`` in the order of ``specs``."""
    if not specs:
        return []
    notice_ids = list(
        (
            await session.execute(
                insert(Notice).returning(Notice.id, sort_by_parameter_order=True),
                [
                    {
                        "warning_id": n.warning_id,
                        "kind": n.kind,
                        "channel": n.channel,
                        "address": n.address,
                        "person_id": n.person_id,
                        "text": n.text[: SMS_MAX if n.channel == "sms" else 2000],
                    }
                    for n in specs
                ],
            )
        ).scalars()
    )
    now = utcnow()
    delivery_ids = list(
        (
            await session.execute(
                insert(Delivery).returning(Delivery.id, sort_by_parameter_order=True),
                [
                    {
                        "warning_id": n.warning_id,
                        "target_kind": NOTICE,
                        "target_id": notice_id,
                        "channel": n.channel,
                        "stage": 0,
                        "route": n.channel,
                        "tier": 0,
                        "priority": n.priority,
                        "area_code": (n.area_code or "")[:12],
                        "language": n.language,
                        "state": "queued",
                        "next_attempt_at": now,
                    }
                    for n, notice_id in zip(specs, notice_ids, strict=True)
                ],
            )
        ).scalars()
    )
    log.info(
        "notices queued",
        extra={"count": len(specs), "kinds": sorted({n.kind for n in specs})},
    )
    return list(zip(notice_ids, delivery_ids, strict=True))


async def set_texts(session: AsyncSession, texts: Mapping[int, str]) -> None:
    """Set the text of notices by id (a text that needs the notice's own delivery id, such as a
    visit list's signed link), in one statement."""
    if not texts:
        return
    table = Notice.__table__  # Core: an executemany, not the ORM's bulk update by key
    await session.execute(
        update(table).where(table.c.id == bindparam("nid")).values(text=bindparam("body")),
        [{"nid": nid, "body": body[:2000]} for nid, body in texts.items()],
    )
