"""A plan preview: what approving a warning would do, before anyone approves it.

Counts per tier, channel, town and needs group, and the people with no working route, so an
operator sees the gap before sending.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.divisions import significant_prefix
from warnpub.audiences.needs import need_names
from warnpub.audiences.tables import Area, Person
from warnpub.audiences.targeting import Scope, Target, Targeter
from warnpub.config import Settings

NO_ROUTE_LISTED = 200


def town_of(code: str) -> str:
    return significant_prefix(code)[:9].ljust(12, "0")


@dataclass
class PlanPreview:
    targets: int = 0
    people: int = 0
    devices: int = 0
    by_tier: Counter[str] = field(default_factory=Counter)
    first_channel: Counter[str] = field(default_factory=Counter)
    any_channel: Counter[str] = field(default_factory=Counter)
    by_town: Counter[str] = field(default_factory=Counter)
    by_need: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    no_route_total: int = 0
    no_route: list[Target] = field(default_factory=list)

    def add(self, t: Target) -> None:
        self.targets += 1
        if t.kind == "device":
            self.devices += 1
        else:
            self.people += 1
        self.by_tier[t.tier_name] += 1
        self.by_town[town_of(t.area_code)] += 1
        self.by_rule[t.rule] += 1
        for name in need_names(t.needs):
            self.by_need[name] += 1
        if t.route:
            for channel in t.route[0]:
                self.first_channel[channel] += 1
        for channel in {c for stage in t.route for c in stage}:
            self.any_channel[channel] += 1
        if not t.works:
            self.no_route_total += 1
            if len(self.no_route) < NO_ROUTE_LISTED:
                self.no_route.append(t)


async def preview(session: AsyncSession, settings: Settings, scope: Scope) -> PlanPreview:
    plan = PlanPreview()
    async for batch in Targeter(settings).batches(session, scope):
        for target in batch:
            plan.add(target)
    return plan


async def preview_json(
    session: AsyncSession, plan: PlanPreview, tiers: list[str]
) -> dict[str, Any]:
    towns = set(plan.by_town)
    ids = [t.id for t in plan.no_route]
    names = (
        dict(
            (
                await session.execute(
                    select(Area.code, Area.name).where(
                        Area.code.in_(towns | {t.area_code for t in plan.no_route})
                    )
                )
            ).all()
        )
        if towns
        else {}
    )
    people = (
        dict(
            (await session.execute(select(Person.id, Person.name).where(Person.id.in_(ids)))).all()
        )
        if ids
        else {}
    )
    return {
        "targets": plan.targets,
        "people": plan.people,
        "devices": plan.devices,
        "by_tier": [{"tier": t, "count": plan.by_tier.get(t, 0)} for t in tiers],
        "first_channel": dict(plan.first_channel.most_common()),
        "any_channel": dict(plan.any_channel.most_common()),
        "by_town": [
            {"code": c, "name": names.get(c, ""), "count": n}
            for c, n in sorted(plan.by_town.items())
        ],
        "by_need": dict(plan.by_need.most_common()),
        "by_rule": dict(plan.by_rule.most_common()),
        "no_route_total": plan.no_route_total,
        "no_route": [
            {
                "person_id": t.id,
                "name": people.get(t.id, ""),
                "area_code": t.area_code,
                "area": names.get(t.area_code, ""),
                "needs": need_names(t.needs),
                "rule": t.rule,
                "route": ["+".join(s) for s in t.route],
                "why": _why(t),
            }
            for t in plan.no_route
        ],
    }


def _why(t: Target) -> str:
    if not t.route:
        return "no contact point, relay contact or village device fits this person's route"
    return "every channel left is one this person cannot perceive (e.g. text for someone who cannot see)"
