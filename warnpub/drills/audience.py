"""The drill audience: who a drill (CAP status ``Exercise``) is sent to.

It travels in the CAP itself, as a ``<parameter>`` of the info block::

    <parameter><valueName>WARNPUB_DRILL_AUDIENCE</valueName><value>consent</value></parameter>

- ``area`` — everyone and every device in the warning's areas (a village, say);
- ``consent`` — only the people who agreed to drills (``drill_consent``), and the devices of
  the areas;
- ``list:EXT1,EXT2,…`` — only these people (roster external ids), who must live in the
  warning's areas; no devices.

A drill without the parameter gets ``[drills] audience``. Any other status (Actual, Test)
must not carry the parameter: intake refuses it with a 422, so a real warning can never be
narrowed to a drill audience by mistake.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from warnpub.cap.model import Alert
from warnpub.problems import FieldError

PARAMETER = "WARNPUB_DRILL_AUDIENCE"
KINDS = ("area", "consent", "list")
MAX_LISTED = 10_000
EXTERNAL_ID_MAX = 64

Kind = Literal["area", "consent", "list"]


@dataclass(frozen=True, slots=True)
class DrillAudience:
    """Who a drill reaches. ``kind`` None: not named in the CAP, ``[drills] audience`` decides."""

    kind: Kind | None = None
    people: tuple[str, ...] = ()

    def value(self) -> str:
        """As written in the CAP parameter."""
        if self.kind == "list":
            return "list:" + ",".join(self.people)
        return self.kind or ""

    def resolved(self, default: str) -> DrillAudience:
        """With the configured default filled in."""
        if self.kind is not None:
            return self
        return DrillAudience(default if default in ("area", "consent") else "area")  # type: ignore[arg-type]


def parse(value: str) -> DrillAudience:
    """``area`` | ``consent`` | ``list:EXT1,EXT2``; a ValueError that says what to write."""
    text = value.strip()
    if text in ("area", "consent"):
        return DrillAudience(text)  # type: ignore[arg-type]
    kind, sep, rest = text.partition(":")
    if kind.strip() != "list" or not sep:
        raise ValueError(
            f"{PARAMETER} {value!r} is not a drill audience; write area, consent or "
            "list:EXT1,EXT2 (people's roster ids)"
        )
    ids = [p.strip() for p in rest.split(",")]
    if not rest.strip() or any(not p for p in ids):
        raise ValueError(
            f"{PARAMETER} {value!r}: list: needs people's roster ids separated by commas, "
            "none empty (list:P001,P002)"
        )
    too_long = [p for p in ids if len(p) > EXTERNAL_ID_MAX]
    if too_long:
        raise ValueError(f"{PARAMETER}: roster ids are at most {EXTERNAL_ID_MAX} characters")
    if len(set(ids)) > MAX_LISTED:
        raise ValueError(f"{PARAMETER}: list at most {MAX_LISTED:,} people")
    return DrillAudience("list", tuple(dict.fromkeys(ids)))


def _named(infos: Sequence[Any]) -> Iterator[tuple[str, str]]:
    """(path, value) of every drill-audience parameter, from model infos or stored JSON."""
    for i, info in enumerate(infos):
        params = info.get("parameters", []) if isinstance(info, Mapping) else info.parameters
        for j, p in enumerate(params):
            name = p.get("value_name") if isinstance(p, Mapping) else p.value_name
            if (name or "").strip() == PARAMETER:
                val = p.get("value") if isinstance(p, Mapping) else p.value
                yield f"infos.{i}.parameters.{j}.value", str(val or "")


def parameter_path(alert: Alert) -> str:
    """Where the alert names its drill audience (for error messages)."""
    return next((path for path, _ in _named(alert.infos)), "infos.parameters")


def parameter_errors(alert: Alert) -> list[FieldError]:
    """What is wrong with the alert's drill-audience parameter (offline rules)."""
    found = list(_named(alert.infos))
    if not found:
        return []
    if alert.status != "Exercise":
        return [
            FieldError(
                path,
                f"{PARAMETER} chooses the audience of a drill; this alert's status is "
                f"{alert.status}, not Exercise, so remove the parameter",
            )
            for path, _ in found
        ]
    errors: list[FieldError] = []
    seen: set[DrillAudience] = set()
    for path, value in found:
        try:
            seen.add(parse(value))
        except ValueError as exc:
            errors.append(FieldError(path, str(exc)))
    if not errors and len(seen) > 1:
        errors.append(
            FieldError(
                found[-1][0], f"the info blocks name different {PARAMETER} values; give one"
            )
        )
    return errors


def from_alert(alert: Alert) -> DrillAudience | None:
    """The audience of a (valid) alert: None for a warning that is not a drill."""
    if alert.status != "Exercise":
        return None
    for _, value in _named(alert.infos):
        return parse(value)
    return DrillAudience()


def from_stored(status: str, alert: Mapping[str, Any] | None) -> DrillAudience | None:
    """The audience of a stored warning (its ``alert`` JSON): None when it is not a drill.

    Intake refuses bad values; should one be found anyway (a row written some other way), the
    drill reaches nobody rather than more people than were meant."""
    if status != "Exercise":
        return None
    for _, value in _named((alert or {}).get("infos", [])):
        try:
            return parse(value)
        except ValueError:
            return DrillAudience("list", ())
    return DrillAudience()


def parameter(audience: DrillAudience) -> dict[str, str]:
    """The CAP parameter (warnpub's JSON form) that carries ``audience``."""
    return {"value_name": PARAMETER, "value": audience.value()}
