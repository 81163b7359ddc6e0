"""How a stored warning is shown to API callers."""

from __future__ import annotations

from typing import Any

from warnpub.clock import iso
from warnpub.config import Settings
from warnpub.review.policy import approvals_needed
from warnpub.storage.tables import WarningRecord


def status_url(settings: Settings, warning_id: str) -> str:
    return f"{settings.server.public_url.rstrip('/')}/api/v1/warnings/{warning_id}"


def warning_summary(settings: Settings, w: WarningRecord, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": w.id,
        "state": w.state,
        "level": w.level,
        "hazard": w.hazard,
        "headline": w.headline,
        "status": w.status,
        "msg_type": w.msg_type,
        "sender": w.sender,
        "identifier": w.identifier,
        "sent": iso(w.sent),
        "expires": iso(w.expires_at),
        "green_channel": w.green_channel,
        "review_deadline": iso(w.review_deadline),
        "approvals_needed": approvals_needed(settings, w.level),
        "received": iso(w.created_at),
        "status_url": status_url(settings, w.id),
    }
    body.update(extra)
    return body
