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
