"""Durations and shares in words, the same in tables, on the page and in checks."""

from __future__ import annotations

from datetime import datetime, tzinfo


def duration(seconds: float | None) -> str:
    """``42 s``, ``7 min 12 s``, ``3 h 05 min``, ``3 d 04 h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 10 and s != int(s):
        return f"{sign}{s:.1f} s"
    total = round(s)
    if total < 60:
        return f"{sign}{total} s"
    if total < 3600:
        return f"{sign}{total // 60} min {total % 60:02d} s"
    if total < 2 * 86400:
        return f"{sign}{total // 3600} h {total % 3600 // 60:02d} min"
    return f"{sign}{total // 86400} d {total % 86400 // 3600:02d} h"


def percent(share: float | None) -> str:
    """``96.0 %`` for 0.96; ``-`` when there is nothing to divide."""
    return "-" if share is None else f"{share * 100:.1f} %"


def local_time(at: datetime | None, zone: tzinfo) -> str:
    """``2026-11-28 21:55:03 +08:00`` in the display zone; ``-`` when unknown."""
    if at is None:
        return "-"
    local = at.astimezone(zone)
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M:%S ") + offset[:3] + ":" + offset[3:]
