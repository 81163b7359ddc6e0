"""Build the report of one warning: a handful of grouped queries in one read snapshot."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.needs import NEED_NAMES, Need, need_names
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.logs import mask
from warnpub.problems import not_found
from warnpub.reports import query
from warnpub.reports.clocks import Facts, evaluate
from warnpub.reports.model import Attempt, Counts, Report, Row, Unreached, WarningInfo
from warnpub.reports.privacy import FORGOTTEN, OPERATOR, Privacy, error_text, person_name
from warnpub.reports.privacy import phone as masked_phone
from warnpub.reports.timing import milestones, needed_ranks, series, tier_times
from warnpub.storage.engine import Database
from warnpub.storage.tables import WarningRecord

log = logging.getLogger(__name__)
# Warnings rejected before approval have a decision time that is not an approval.
NOT_APPROVED = frozenset({"pending", "rejected"})
WARNING_ID_MAX = 26


def tier_names(settings: Settings, tiers: Sequence[int]) -> dict[int, str]:
    groups = settings.audiences.tiers
    return {t: groups[t] if 0 <= t < len(groups) else f"tier {t}" for t in tiers}


def need_label(bit: int) -> tuple[str, str]:
    if bit == query.NO_NEEDS:
        return "none", "no special needs"
    code, zh = NEED_NAMES[Need(bit)]
    return code, f"{code} {zh}"


def warning_info(w: WarningRecord) -> WarningInfo:
    return WarningInfo(
        id=w.id,
        identifier=w.identifier,
        sender=w.sender,
        headline=w.headline,
        hazard=w.hazard,
        level=w.level,
        status=w.status,
        msg_type=w.msg_type,
        state=w.state,
        received_at=w.created_at,
        approved_at=None if w.state in NOT_APPROVED else w.decided_at,
        completed_at=w.completed_at,
    )


async def load_warning(session: AsyncSession, warning_id: str) -> WarningRecord:
    """The warning, or a 404 that names the id."""
    if not warning_id or len(warning_id) > WARNING_ID_MAX:
        raise not_found(f"no warning with id {warning_id!r}")
    warning = await session.get(WarningRecord, warning_id)
    if warning is None:
        raise not_found(f"no warning with id {warning_id!r}")
    return warning


def _rows(counts: Mapping[str, Counts], names: Mapping[str, str]) -> list[Row]:
    return [Row(k, names.get(k, ""), counts[k]) for k in sorted(counts)]


async def build_report(
    db: Database,
    settings: Settings,
    warning_id: str,
    *,
    unreached: bool | None = None,
    privacy: Privacy = OPERATOR,
) -> Report:
    """The coverage-and-time report. The unreached list is included for drills (CAP status
    Exercise) and, with ``unreached=True``, for any warning; ``False`` leaves it out. Names and
    phone numbers in it are shown as ``privacy`` says (:mod:`warnpub.reports.privacy`)."""
    started = time.perf_counter()
    cfg = settings.reports
    async with db.reader() as s:
        info = warning_info(await load_warning(s, warning_id))
        now = utcnow()
        async with query.condensed(s, warning_id) as src:
            kinds = await query.totals(s, src)
            towns = await query.by_town(s, src)
            villages = await query.by_village(s, src)
            tiers = await query.by_tier(s, src)
            needs = await query.by_needs(s, src)
            channels = await query.by_channel(s, src)
            ranked, wanted, listed = await _times_and_list(
                s, settings, info, src, kinds, tiers, unreached, privacy
            )
        names = await query.area_names(s, sorted(set(towns) | set(villages)))
    everyone = combined(kinds)
    total = everyone.counts
    tnames = tier_names(settings, list(tiers))
    marks = milestones(info, everyone, total.targeted, ranked)
    per_tier = tier_times(info, tiers, tnames, ranked)
    origin = info.approved_at or info.received_at
    checks = evaluate(
        cfg,
        Facts(
            warning=info,
            now=now,
            milestones={m.name: m for m in marks},
            totals=total,
            tiers=tiers,
            tier_times=per_tier,
            tier_groups=settings.audiences.tiers,
        ),
    )
    report = Report(
        warning=info,
        generated_at=now,
        totals=total,
        people=kinds["person"].counts if "person" in kinds else Counts(),
        devices=kinds["device"].counts if "device" in kinds else Counts(),
        by_town=_rows(towns, names),
        by_village=_rows(villages, names),
        by_tier=[Row(str(t), tnames[t], tiers[t]) for t in sorted(tiers)],
        by_needs=[Row(*need_label(b), needs[b]) for b in sorted(needs)],
        by_channel=_rows(channels, {}),
        milestones=marks,
        tier_times=per_tier,
        origin=origin,
        series=series(origin, total, tiers, tnames, ranked, wanted),
        checks=checks,
        unreached=listed,
        unreached_total=total.unreached,
    )
    log.info(
        "report built",
        extra={
            "warning_id": warning_id,
            "targeted": total.targeted,
            "unreached": total.unreached,
            "drill": info.drill,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return report


def combined(kinds: Mapping[str, query.Totals]) -> query.Totals:
    """People and devices together."""
    out = query.Totals(Counts(), None, None, None, None)
    for part in kinds.values():
        out.counts.add(part.counts)
    out.first_sent = min((k.first_sent for k in kinds.values() if k.first_sent), default=None)
    out.first_delivered = min(
        (k.first_delivered for k in kinds.values() if k.first_delivered), default=None
    )
    out.last_delivered = max(
        (k.last_delivered for k in kinds.values() if k.last_delivered), default=None
    )
    out.last_acknowledged = max(
        (k.last_acknowledged for k in kinds.values() if k.last_acknowledged), default=None
    )
    return out


async def _times_and_list(
    s: AsyncSession,
    settings: Settings,
    info: WarningInfo,
    src: query.Sources,
    kinds: Mapping[str, query.Totals],
    tiers: Mapping[int, Counts],
    unreached: bool | None,
    privacy: Privacy = OPERATOR,
) -> tuple[list[query.Ranked], tuple[set[int], dict[int, set[int]]], list[Unreached] | None]:
    total = combined(kinds).counts
    wanted = needed_ranks(total.targeted, total.delivered, tiers, settings.reports.chart_points)
    per_tier = set().union(*wanted[1].values()) if wanted[1] else set()
    ranked = await query.ranked_times(s, src, wanted[0], per_tier)
    include = info.drill if unreached is None else unreached
    listed = None
    if include:
        rows = unreached_list(
            s, settings, info.id, settings.reports.unreached_limit, src, privacy=privacy
        )
        listed = [u async for u in rows]
    return ranked, wanted, listed


async def unreached_list(
    session: AsyncSession,
    settings: Settings,
    warning_id: str,
    limit: int | None,
    src: query.Sources | None = None,
    *,
    privacy: Privacy = OPERATOR,
) -> AsyncIterator[Unreached]:
    """Unreached targets with what was tried. Unless ``privacy`` is ``full``, phone numbers
    and e-mail addresses are masked wherever they could appear: the phone column, error texts,
    and names typed into rosters; ``export`` also cuts names to their first character."""
    current: Unreached | None = None
    groups = settings.audiences.tiers
    async for r in query.unreached_rows(session, warning_id, limit, src):
        if current is None or (current.kind, current.id) != (r.kind, r.target_id):
            if current is not None:
                yield current
            current = _target(r, groups, privacy)
        current.attempts.append(
            Attempt(r.channel, r.stage, r.state, r.attempts, error_text(r.error, privacy))
        )
    if current is not None:
        yield current


def _target(r: query.UnreachedRow, groups: Sequence[str], privacy: Privacy = OPERATOR) -> Unreached:
    tier_name = groups[r.tier] if 0 <= r.tier < len(groups) else f"tier {r.tier}"
    if r.kind == "person":
        # A forgotten person's rows point at no one (warnpub.audiences.forget).
        forgotten = r.person_name is None and r.target_id < 0
        return Unreached(
            kind="person",
            id=r.target_id,
            external_id=r.person_external_id,
            name=FORGOTTEN if forgotten else person_name(r.person_name, privacy),
            role=r.role or "",
            area_code=r.area_code,
            area_name=r.area_name or "",
            tier=r.tier,
            tier_name=tier_name,
            needs=need_names(r.needs or 0),
            phone=masked_phone(r.phone, privacy),
            relay_contact=person_name(r.relay_name, privacy),
        )
    return Unreached(
        kind="device",
        id=r.target_id,
        external_id=r.device_external_id,
        name=mask(r.device_name or ""),
        role=r.device_kind or "",
        area_code=r.area_code,
        area_name=r.area_name or "",
        tier=r.tier,
        tier_name=tier_name,
        needs=[],
        phone="",
        relay_contact="",
    )


def mask_phone(phone: str | None) -> str:
    """All but the last four digits hidden, whatever the number looks like."""
    if not phone:
        return ""
    return "*" * max(0, len(phone) - 4) + phone[-4:]


def display_zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.reports.display_timezone)
