"""Who goes first: priority tiers from configuration, as plain predicates.

``[audiences] tiers`` lists built-in groups in priority order (default: devices, special
needs, village contacts, rural residents, urban residents). A person belongs to the first
tier whose group includes them. Within a tier, a more severe warning goes first
(:func:`priority`), so dispatch orders by ``(tier, level_rank)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, and_, false, not_, or_, select, true

from warnpub.audiences.tables import Area, Person

RURAL_CLASSES = ("210", "220")
CONTACT_ROLES = ("village_contact", "town_duty_officer")
PERSON_GROUPS = ("special_needs", "village_contacts", "rural_residents", "urban_residents")


def in_group(group: str, *, needs: int, role: str, urban_rural: str | None) -> bool:
    if group == "special_needs":
        return needs != 0
    if group == "village_contacts":
        return role in CONTACT_ROLES
    if group == "rural_residents":
        return urban_rural in RURAL_CLASSES
    if group == "urban_residents":
        return urban_rural not in RURAL_CLASSES
    return False


def tier_of(tiers: Sequence[str], *, needs: int, role: str, urban_rural: str | None) -> int:
    """The index of the first tier whose group includes this person."""
    for index, group in enumerate(tiers):
        if in_group(group, needs=needs, role=role, urban_rural=urban_rural):
            return index
    raise ValueError(f"tiers {list(tiers)} leave out a person; list every group")


@dataclass(frozen=True, slots=True)
class AreaSplit:
    """The area codes in a warning's scope, split by urban-rural class.

    Given as explicit lists, the rural and urban tiers read only their own villages' index
    ranges instead of scanning the whole scope and testing every row. Beyond ``MAX_LISTED``
    codes (a province) the split is expressed as a subquery instead.
    """

    rural: tuple[str, ...] | None = None
    urban: tuple[str, ...] | None = None


MAX_LISTED = 20_000


def group_sql(group: str, split: AreaSplit = AreaSplit()) -> ColumnElement[bool]:
    """The same group as a SQL condition over ``people``."""
    if group == "special_needs":
        return Person.needs != 0
    if group == "village_contacts":
        return Person.role.in_(CONTACT_ROLES)
    if group == "rural_residents":
        return Person.area_code.in_(split.rural if split.rural is not None else _rural_codes())
    if group == "urban_residents":
        if split.urban is not None:
            return Person.area_code.in_(split.urban)
        return Person.area_code.not_in(_rural_codes())
    return false()


def _rural_codes() -> Select[tuple[str]]:
    # A subquery, not a join: both databases build it once (SQLite as a temporary index,
    # PostgreSQL as a hashed semi-join) instead of looking the area up for every person.
    return select(Area.code).where(Area.urban_rural.in_(RURAL_CLASSES))


def tier_sql(
    tiers: Sequence[str], index: int, split: AreaSplit = AreaSplit()
) -> ColumnElement[bool]:
    """People in tier ``index``: in its group and in no group listed before it."""
    earlier = [group_sql(g, split) for g in tiers[:index] if g in PERSON_GROUPS]
    return and_(group_sql(tiers[index], split), not_(or_(*earlier)) if earlier else true())


def priority(tier: int, level_rank: int) -> int:
    """One sortable number: lower leaves first. Tier dominates; the level breaks ties."""
    return tier * 10 + level_rank
