"""What a coverage-and-time report holds: plain data, turned into JSON by :meth:`Report.as_dict`.

Every number is defined in docs/reports.md. Counts are of *targets* (a person or a device),
never of delivery rows: a person tried by SMS, then by voice, then by a village contact's
visit is one target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from warnpub.clock import iso


@dataclass(slots=True)
class Counts:
    """Targets by outcome. ``pending = targeted - delivered - unreached``."""

    targeted: int = 0
    sent: int = 0
    delivered: int = 0
    acknowledged: int = 0
    unreached: int = 0
    # Targets at least one of whose deliveries asked for an acknowledgement.
    ack_expected: int = 0

    @property
    def pending(self) -> int:
        return self.targeted - self.delivered - self.unreached

    @property
    def coverage(self) -> float | None:
        """Delivered as a share of targeted (None when nobody was targeted)."""
        return self.delivered / self.targeted if self.targeted else None

    def add(self, other: Counts) -> None:
        self.targeted += other.targeted
        self.sent += other.sent
        self.delivered += other.delivered
        self.acknowledged += other.acknowledged
        self.unreached += other.unreached
        self.ack_expected += other.ack_expected

    def as_dict(self) -> dict[str, Any]:
        return {
            "targeted": self.targeted,
            "sent": self.sent,
            "delivered": self.delivered,
            "acknowledged": self.acknowledged,
            "unreached": self.unreached,
            "pending": self.pending,
            "ack_expected": self.ack_expected,
            "coverage": None if self.coverage is None else round(self.coverage, 6),
        }


@dataclass(slots=True)
class Row:
    """One line of a breakdown: a town, a village, a tier, a needs group or a channel."""

    key: str
    label: str
    counts: Counts

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, **self.counts.as_dict()}


@dataclass(slots=True)
class Milestone:
    """A moment in the warning's life, with how long after receipt and approval it came."""

    name: str
    at: datetime | None
    since_received_s: float | None
    since_approved_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "at": iso(self.at),
            "since_received_s": self.since_received_s,
            "since_approved_s": self.since_approved_s,
        }


@dataclass(slots=True)
class TierTimes:
    """How soon one tier was reached: the times 50/90/99 % of its targets were delivered."""

    tier: int
    name: str
    targeted: int
    delivered: int
    # {"delivered_50": Milestone, …}; a milestone's ``at`` is None while not reached.
    milestones: dict[str, Milestone]

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "name": self.name,
            "targeted": self.targeted,
            "delivered": self.delivered,
            "milestones": {k: m.as_dict() for k, m in self.milestones.items()},
        }


@dataclass(slots=True)
class Series:
    """Targets of one tier (or all: ``tier`` None) delivered by each time: a step curve."""

    tier: int | None
    name: str
    targeted: int
    # (seconds since the report's origin, targets delivered by then), in time order.
    points: list[tuple[float, int]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "name": self.name,
            "targeted": self.targeted,
            "points": [[round(s, 3), n] for s, n in self.points],
        }


@dataclass(slots=True)
class Check:
    """A clock or target and whether it was kept: ``met``, ``missed``, ``pending`` or
    ``not_applicable``."""

    name: str
    kind: str  # "clock" | "time" | "coverage"
    target: str  # in words, e.g. "delivered_90 within 10 min of approved"
    status: str
    measured: str  # in words, e.g. "7 min 12 s" or "96.0 %"
    value: float | None = None  # seconds (time) or percent (coverage)
    limit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "status": self.status,
            "measured": self.measured,
            "value": self.value,
            "limit": self.limit,
        }


@dataclass(slots=True)
class Attempt:
    """One delivery of an unreached target: what was tried and how it ended."""

    channel: str
    stage: int
    state: str
    attempts: int
    error: str  # masked: no phone number or e-mail address survives

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "stage": self.stage,
            "state": self.state,
            "attempts": self.attempts,
            "error": self.error,
        }


@dataclass(slots=True)
class Unreached:
    """A person or device not reached, for the after-action review. Contact points masked."""

    kind: str  # person | device
    id: int
    external_id: str | None
    name: str
    role: str  # a person's role, or a device's kind
    area_code: str
    area_name: str
    tier: int
    tier_name: str
    needs: list[str]
    phone: str  # masked, e.g. "**********5678"; "" when none
    relay_contact: str  # the village contact who should visit (name), "" when none
    attempts: list[Attempt] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "external_id": self.external_id,
            "name": self.name,
            "role": self.role,
            "area_code": self.area_code,
            "area_name": self.area_name,
            "tier": self.tier,
            "tier_name": self.tier_name,
            "needs": self.needs,
            "phone": self.phone,
            "relay_contact": self.relay_contact,
            "attempts": [a.as_dict() for a in self.attempts],
        }

    def tried(self) -> str:
        """The attempts in one line: ``sms failed (unknown number); voice expired``."""
        parts = []
        for a in self.attempts:
            text = f"{a.channel} {a.state}"
            if a.error:
                text += f" ({a.error})"
            parts.append(text)
        return "; ".join(parts)


@dataclass(slots=True)
class WarningInfo:
    id: str
    identifier: str
    sender: str
    headline: str
    hazard: str
    level: str
    status: str
    msg_type: str
    state: str
    received_at: datetime
    approved_at: datetime | None
    completed_at: datetime | None

    @property
    def drill(self) -> bool:
        return self.status == "Exercise"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "identifier": self.identifier,
            "sender": self.sender,
            "headline": self.headline,
            "hazard": self.hazard,
            "level": self.level,
            "status": self.status,
            "msg_type": self.msg_type,
            "state": self.state,
            "drill": self.drill,
            "received_at": iso(self.received_at),
            "approved_at": iso(self.approved_at),
            "completed_at": iso(self.completed_at),
        }


@dataclass(slots=True)
class Report:
    warning: WarningInfo
    generated_at: datetime
    totals: Counts
    people: Counts
    devices: Counts
    by_town: list[Row]
    by_village: list[Row]
    by_tier: list[Row]
    by_needs: list[Row]
    by_channel: list[Row]
    milestones: list[Milestone]
    tier_times: list[TierTimes]
    # Chart data; the x axis counts seconds from ``origin`` (approval, or receipt).
    origin: datetime
    series: list[Series]
    checks: list[Check]
    # The unreached list (always for drills; for other warnings when asked), at most
    # [reports] unreached_limit entries; ``unreached_total`` counts them all.
    unreached: list[Unreached] | None = None
    unreached_total: int = 0

    @property
    def unreached_truncated(self) -> bool:
        return self.unreached is not None and len(self.unreached) < self.unreached_total

    def milestone(self, name: str) -> Milestone:
        for m in self.milestones:
            if m.name == name:
                return m
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "warning": self.warning.as_dict(),
            "generated_at": iso(self.generated_at),
            "totals": self.totals.as_dict(),
            "people": self.people.as_dict(),
            "devices": self.devices.as_dict(),
            "by_town": [r.as_dict() for r in self.by_town],
            "by_village": [r.as_dict() for r in self.by_village],
            "by_tier": [r.as_dict() for r in self.by_tier],
            "by_needs": [r.as_dict() for r in self.by_needs],
            "by_channel": [r.as_dict() for r in self.by_channel],
            "milestones": [m.as_dict() for m in self.milestones],
            "tier_times": [t.as_dict() for t in self.tier_times],
            "chart_origin": iso(self.origin),
            "series": [s.as_dict() for s in self.series],
            "checks": [c.as_dict() for c in self.checks],
            "unreached": None if self.unreached is None else [u.as_dict() for u in self.unreached],
            "unreached_total": self.unreached_total,
            "unreached_truncated": self.unreached_truncated,
        }
        return body
