"""Routes: the ordered ways to reach one person, chosen from needs, role and contact points.

A route is a tuple of stages; each stage is a tuple of channels used together. The next stage
is tried only when every channel of the stage before failed. Rules come from configuration
(``[audiences.routes]``, e.g. ``hearing_impaired = ["sms", "board", "relay"]``): a person takes
the first rule that matches — needs in the configured order, then role, then ``default`` —
and channels they have no contact point for are left out.

A route *works* when at least one of its channels can be perceived by the person: someone who
cannot see is never left with text alone, someone who cannot hear never with sound alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from warnpub.audiences.needs import BY_NAME, Need

Route = tuple[tuple[str, ...], ...]

TEXT_CHANNELS = frozenset({"sms", "email", "board"})
SOUND_CHANNELS = frozenset({"speaker", "voice"})
# What each need rules out as a channel the person can perceive on their own.
CANNOT_PERCEIVE: dict[Need, frozenset[str]] = {
    Need.VISUALLY_IMPAIRED: TEXT_CHANNELS,
    Need.HEARING_IMPAIRED: SOUND_CHANNELS,
    Need.NON_CHINESE_SPEAKER: frozenset({"speaker"}),
}


@dataclass(frozen=True, slots=True)
class Reach:
    """What can reach one person: their contact points and their village's devices."""

    phone: bool
    email: bool
    relay: bool
    speaker: bool
    board: bool

    def has(self, channel: str, needs: int) -> bool:
        if channel in ("sms", "voice"):
            return self.phone and not needs & Need.NO_PHONE
        return bool(getattr(self, channel))


@dataclass(frozen=True, slots=True)
class RouteChoice:
    rule: str
    route: Route
    works: bool


class RoutePolicy:
    """The configured rules, parsed once; :meth:`choose` is memoised per distinct situation."""

    def __init__(self, rules: dict[str, list[str]]) -> None:
        self.rules: list[tuple[str, Route]] = [
            (name, tuple(tuple(step.split("+")) for step in steps)) for name, steps in rules.items()
        ]
        self._need_rules = [(BY_NAME[n], n, r) for n, r in self.rules if n in BY_NAME]
        self._role_rules = {n: r for n, r in self.rules if n not in BY_NAME and n != "default"}
        self._default = dict(self.rules)["default"]
        self.choose = lru_cache(maxsize=4096)(self._choose)  # type: ignore[method-assign]

    def rule_for(self, needs: int, role: str) -> tuple[str, Route]:
        for need, name, route in self._need_rules:
            if needs & need:
                return name, route
        if role in self._role_rules:
            return role, self._role_rules[role]
        return "default", self._default

    def _choose(self, needs: int, role: str, reach: Reach) -> RouteChoice:
        name, configured = self.rule_for(needs, role)
        stages = tuple(
            stage
            for stage in (tuple(c for c in s if reach.has(c, needs)) for s in configured)
            if stage
        )
        return RouteChoice(name, stages, any(perceivable(c, needs) for s in stages for c in s))


def perceivable(channel: str, needs: int) -> bool:
    """Whether a person with ``needs`` takes in a message on ``channel`` by themselves."""
    return not any(
        needs & need and channel in ruled_out for need, ruled_out in CANNOT_PERCEIVE.items()
    )
