"""Supervisors told through the channels: review deadlines that pass without a decision.

Who is told is fixed when the warning is submitted (the review-deadline timer's payload), like
a ladder is fixed at release; the timer's handler writes the escalation and the notices in one
transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.config import Settings
from warnpub.lastkm import notices, texts
from warnpub.storage.tables import WarningRecord


def review_notify(settings: Settings) -> dict[str, Any]:
    configured = {kind for kind, instances in settings.channels.items() if instances}
    return {
        "notify": list(settings.escalation.supervisors),
        "channels": [c for c in ("sms", "email") if c in configured],
    }


async def tell_review_overdue(
    session: AsyncSession, warning: WarningRecord, payload: dict[str, Any]
) -> int:
    told = 0
    for address in payload.get("notify", []):
        channel = notices.address_channel(address, payload.get("channels", []))
        if channel is None:
            continue
        await notices.send(
            session,
            warning_id=warning.id,
            kind="review_deadline",
            channel=channel,
            address=address,
            text=texts.review_deadline_alert(warning),
            subject=texts.subject_of(warning),
        )
        told += 1
    return told
