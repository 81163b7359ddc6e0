"""Times: milestones of a warning's life, how soon each tier was reached, and chart curves.

"50 % delivered" is the moment the k-th target was reached, k = ⌈0.50 × targeted⌉ (of all
targets, not of those reached): a warning that reached 80 % of its targets has no 90 % time.
The database ranks the targets by the time they were reached (one window query) and returns
only the ranks asked for: the percentiles and ``[reports] chart_points`` evenly spaced ranks
per tier, from which the charts draw step curves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from warnpub.reports.model import Counts, Milestone, Series, TierTimes, WarningInfo
from warnpub.reports.query import Ranked, Totals

PERCENTS = (50, 90, 99)
PERCENT_MILESTONES = tuple(f"delivered_{p}" for p in PERCENTS)
MILESTONE_ORDER = (
    "received",
    "approved",
    "first_sent",
    "first_delivered",
    *PERCENT_MILESTONES,
    "last_delivered",
    "last_acknowledged",
    "completed",
)


def rank_for(percent: int, targeted: int) -> int | None:
    """The rank of the target whose delivery makes ``percent`` % of ``targeted`` (⌈p·n/100⌉)."""
    if targeted <= 0:
        return None
    return max(1, (percent * targeted + 99) // 100)


def chart_ranks(delivered: int, points: int) -> set[int]:
    """Evenly spaced ranks 1…delivered, at most ``points`` + 1 of them."""
    if delivered <= 0:
        return set()
    return {1, delivered} | {max(1, -(-i * delivered // points)) for i in range(1, points + 1)}


def since(at: datetime | None, origin: datetime | None) -> float | None:
    if at is None or origin is None:
        return None
    return round((at - origin).total_seconds(), 3)


def milestone(name: str, at: datetime | None, info: WarningInfo) -> Milestone:
    return Milestone(name, at, since(at, info.received_at), since(at, info.approved_at))


def needed_ranks(
    total_targeted: int,
    total_delivered: int,
    tiers: Mapping[int, Counts],
    points: int,
) -> tuple[set[int], dict[int, set[int]]]:
    """Ranks to ask the database for: overall, and per tier."""
    overall = {r for p in PERCENTS if (r := rank_for(p, total_targeted)) is not None}
    overall |= chart_ranks(total_delivered, points)
    per_tier: dict[int, set[int]] = {}
    for tier, counts in tiers.items():
        wanted = {r for p in PERCENTS if (r := rank_for(p, counts.targeted)) is not None}
        per_tier[tier] = wanted | chart_ranks(counts.delivered, points)
    return overall, per_tier


def milestones(
    info: WarningInfo, everyone: Totals, targeted: int, ranked: Sequence[Ranked]
) -> list[Milestone]:
    by_rank = {r.rank_all: r.at for r in ranked}
    times: dict[str, datetime | None] = {
        "received": info.received_at,
        "approved": info.approved_at,
        "first_sent": everyone.first_sent,
        "first_delivered": everyone.first_delivered,
        "last_delivered": everyone.last_delivered,
        "last_acknowledged": everyone.last_acknowledged,
        "completed": info.completed_at,
    }
    for percent, name in zip(PERCENTS, PERCENT_MILESTONES, strict=True):
        rank = rank_for(percent, targeted)
        times[name] = None if rank is None else by_rank.get(rank)
    return [milestone(name, times[name], info) for name in MILESTONE_ORDER]


def tier_times(
    info: WarningInfo,
    tiers: Mapping[int, Counts],
    names: Mapping[int, str],
    ranked: Iterable[Ranked],
) -> list[TierTimes]:
    at = {(r.tier, r.rank_tier): r.at for r in ranked}
    out = []
    for tier in sorted(tiers):
        counts = tiers[tier]
        marks = {}
        for percent, name in zip(PERCENTS, PERCENT_MILESTONES, strict=True):
            rank = rank_for(percent, counts.targeted)
            marks[name] = milestone(name, None if rank is None else at.get((tier, rank)), info)
        out.append(TierTimes(tier, names[tier], counts.targeted, counts.delivered, marks))
    return out


def series(
    origin: datetime,
    total: Counts,
    tiers: Mapping[int, Counts],
    names: Mapping[int, str],
    ranked: Sequence[Ranked],
    wanted: tuple[set[int], dict[int, set[int]]],
) -> list[Series]:
    """Step curves: targets delivered by each time, per tier and for everyone."""
    overall, per_tier = wanted
    out = []
    for tier in sorted(tiers):
        points = sorted(
            (since(r.at, origin) or 0.0, r.rank_tier)
            for r in ranked
            if r.tier == tier and r.rank_tier in per_tier.get(tier, ())
        )
        out.append(Series(tier, names[tier], tiers[tier].targeted, points))
    everyone = sorted(
        (since(r.at, origin) or 0.0, r.rank_all) for r in ranked if r.rank_all in overall
    )
    out.append(Series(None, "all", total.targeted, everyone))
    return out
