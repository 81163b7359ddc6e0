"""Small read queries the console pages share: agency names, warning areas, times."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Area
from warnpub.config import Settings
from warnpub.storage.tables import Agency, WarningArea


async def agency_names(session: AsyncSession, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(select(Agency.id, Agency.name).where(Agency.id.in_(wanted)))
    return {int(i): str(n) for i, n in rows.all()}


async def warning_areas(
    session: AsyncSession, warning_ids: Sequence[str]
) -> dict[str, list[tuple[str, str]]]:
    """Each warning's areas as (code, name), in code order."""
    if not warning_ids:
        return {}
    rows = await session.execute(
        select(WarningArea.warning_id, WarningArea.code, Area.name)
        .outerjoin(Area, Area.code == WarningArea.code)
        .where(WarningArea.warning_id.in_(list(warning_ids)))
        .order_by(WarningArea.warning_id, WarningArea.code)
    )
    out: dict[str, list[tuple[str, str]]] = {w: [] for w in warning_ids}
    for wid, code, name in rows.all():
        out[wid].append((code, name or code))
    return out


def local(settings: Settings, at: datetime | None) -> str:
    """A time as the duty room reads it ([reports] display_timezone), or an empty string."""
    if at is None:
        return ""
    return at.astimezone(ZoneInfo(settings.reports.display_timezone)).strftime("%Y-%m-%d %H:%M:%S")
