"""Review policy as plain functions over configuration: four eyes, green channel, deadlines."""

from __future__ import annotations

from datetime import datetime, timedelta

from warnpub.config import Settings

LEVEL_RANK = {"red": 0, "orange": 1, "yellow": 2, "blue": 3}


def approvals_needed(settings: Settings, level: str) -> int:
    return 2 if level in settings.review.two_person_levels else 1


def is_green_channel(settings: Settings, agency_code: str, level: str) -> bool:
    return any(
        agency_code in rule.agencies and level in rule.levels
        for rule in settings.review.green_channel
    )


def review_deadline(settings: Settings, level: str, received: datetime) -> datetime:
    return received + timedelta(minutes=settings.review.deadline_minutes[level])
