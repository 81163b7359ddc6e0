"""Were the county's clocks kept? Each clock and target becomes a :class:`Check`.

- The major-event clock (``[reports] major_levels``): authoritative information goes out —
  the warning's first message is sent — within ``authoritative_minutes`` of the warning being
  received, and never later than ``authoritative_limit_minutes``. Two checks.
- ``[[reports.time_targets]]``: a milestone within so many minutes of receipt or approval
  (e.g. 90 % of targets delivered within 10 minutes of approval).
- ``[[reports.coverage_targets]]``: a share of the targets reached (or acknowledged).

A check is ``met``, ``missed``, ``pending`` (not yet decided: the warning is still live and the
time has not run out) or ``not_applicable`` (the level is not held to it, nobody was
targeted, the warning was rejected or cancelled before release).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from warnpub.config import CoverageTarget, ReportsConfig, TimeTarget
from warnpub.reports.model import Check, Counts, Milestone, TierTimes, WarningInfo
from warnpub.reports.units import duration, percent

MET, MISSED, PENDING, NOT_APPLICABLE = "met", "missed", "pending", "not_applicable"
# A warning in these states may still reach further milestones.
LIVE_STATES = frozenset({"pending", "approved", "dispatching"})
NEVER_RELEASED = frozenset({"rejected", "cancelled"})


@dataclass(frozen=True, slots=True)
class Facts:
    """What the checks are judged on."""

    warning: WarningInfo
    now: datetime
    milestones: Mapping[str, Milestone]
    totals: Counts
    tiers: Mapping[int, Counts]
    tier_times: Sequence[TierTimes]
    tier_groups: Sequence[str]  # [audiences] tiers: group name by tier index

    def tier_of(self, group: str) -> int | None:
        return self.tier_groups.index(group) if group in self.tier_groups else None


def evaluate(config: ReportsConfig, facts: Facts) -> list[Check]:
    checks = authoritative(config, facts)
    checks += [time_check(t, facts) for t in config.time_targets]
    checks += [coverage_check(t, facts) for t in config.coverage_targets]
    return checks


def _deadline_check(
    name: str,
    kind: str,
    target: str,
    at: datetime | None,
    origin: datetime,
    limit_s: float,
    facts: Facts,
) -> Check:
    """``at`` within ``limit_s`` of ``origin``; undecided while the warning is live and in time."""
    if at is not None:
        took = (at - origin).total_seconds()
        status = MET if took <= limit_s else MISSED
        return Check(name, kind, target, status, duration(took), took, limit_s)
    waited = (facts.now - origin).total_seconds()
    if facts.warning.state in LIVE_STATES and waited <= limit_s:
        return Check(
            name, kind, target, PENDING, f"not yet ({duration(waited)} so far)", None, limit_s
        )
    return Check(
        name, kind, target, MISSED, f"not reached ({duration(waited)} so far)", None, limit_s
    )


def authoritative(config: ReportsConfig, facts: Facts) -> list[Check]:
    w = facts.warning
    out = []
    for label, minutes in (
        ("within", config.authoritative_minutes),
        ("never later than", config.authoritative_limit_minutes),
    ):
        name = f"major event: authoritative information {label} {duration(minutes * 60)}"
        target = f"first message sent {label} {duration(minutes * 60)} of receipt"
        if w.level not in config.major_levels:
            out.append(
                Check(
                    name, "clock", target, NOT_APPLICABLE, f"{w.level} is not a major-event level"
                )
            )
            continue
        first = facts.milestones["first_sent"].at
        if first is None and w.state in NEVER_RELEASED:
            out.append(Check(name, "clock", target, NOT_APPLICABLE, f"warning {w.state}"))
            continue
        out.append(
            _deadline_check(name, "clock", target, first, w.received_at, minutes * 60, facts)
        )
    return out


def time_check(t: TimeTarget, facts: Facts) -> Check:
    w = facts.warning
    who = f" of {t.group}" if t.group else ""
    target = f"{t.milestone}{who} within {duration(t.minutes * 60)} of {t.since}"
    if w.level not in t.levels:
        return Check(t.name, "time", target, NOT_APPLICABLE, f"not held for {w.level}")
    origin = w.received_at if t.since == "received" else w.approved_at
    if origin is None:
        status = NOT_APPLICABLE if w.state in NEVER_RELEASED else PENDING
        return Check(t.name, "time", target, status, f"not approved ({w.state})")
    if t.group:
        tier = facts.tier_of(t.group)
        times = next((tt for tt in facts.tier_times if tt.tier == tier), None)
        if times is None or times.targeted == 0:
            return Check(t.name, "time", target, NOT_APPLICABLE, f"no targets in {t.group}")
        at = times.milestones[t.milestone].at
    else:
        if t.milestone.startswith("delivered_") and facts.totals.targeted == 0:
            return Check(t.name, "time", target, NOT_APPLICABLE, "nobody was targeted")
        if t.milestone == "last_acknowledged" and facts.totals.ack_expected == 0:
            return Check(t.name, "time", target, NOT_APPLICABLE, "no acknowledgement was asked for")
        at = facts.milestones[t.milestone].at
    return _deadline_check(t.name, "time", target, at, origin, t.minutes * 60, facts)


def coverage_check(t: CoverageTarget, facts: Facts) -> Check:
    w = facts.warning
    who = t.group or "all targets"
    target = f"≥ {t.percent:g} % of {who} {t.measure}"
    if w.level not in t.levels:
        return Check(t.name, "coverage", target, NOT_APPLICABLE, f"not held for {w.level}")
    counts = facts.totals
    if t.group:
        tier = facts.tier_of(t.group)
        counts = facts.tiers.get(tier, Counts()) if tier is not None else Counts()
    if t.measure == "reached":
        done, base = counts.delivered, counts.targeted
    else:
        done, base = counts.acknowledged, counts.ack_expected
    if base == 0:
        return Check(t.name, "coverage", target, NOT_APPLICABLE, f"no targets ({who})")
    share = done / base
    value = round(share * 100, 3)
    measured = f"{percent(share)} ({done} of {base})"
    if share * 100 >= t.percent:
        return Check(t.name, "coverage", target, MET, measured, value, t.percent)
    # Acknowledgements may still come after every delivery is final.
    open_ = counts.pending > 0 or t.measure == "acknowledged"
    status = PENDING if open_ and w.state in LIVE_STATES else MISSED
    return Check(t.name, "coverage", target, status, measured, value, t.percent)
