"""The simulator's knobs: set at start (CLI / ``create_sim_app``) and changed by ``POST /control``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal
from urllib.parse import urlsplit

ReceiptMode = Literal["deliver", "fail", "none"]
RECEIPT_MODES: tuple[ReceiptMode, ...] = ("deliver", "fail", "none")
# How POST /inbound forwards a person's reply: "wait" — to the inbound URL before answering
# (the answer says whether the app took it); "queue" — as a carrier does: the message is
# stamped and answered at once, then POSTed to the inbound URL in the background with retries
# (callback_attempts), so a slow app never holds the person's phone up.
InboundMode = Literal["wait", "queue"]
INBOUND_MODES: tuple[InboundMode, ...] = ("wait", "queue")
# How a simulated call ends: answered and 1 pressed, answered, not answered, busy, failed.
CALL_OUTCOMES = ("confirmed", "answered", "no_answer", "busy", "failed")


class SimConfigError(ValueError):
    """A knob was given a value it cannot take; the message names the knob."""


@dataclass(slots=True)
class SimConfig:
    error_rate: float = 0.0  # share of requests answered 500 (nothing accepted)
    latency_ms: float = 0.0  # added before answering each request
    throttle_per_s: float = 0.0  # accepted messages per sliding second; beyond it 429 (0 = off)
    permanent_numbers: frozenset[str] = frozenset()  # valid numbers refused permanently
    receipt_delay_ms: float = 0.0  # from acceptance to the receipt being posted
    receipts: ReceiptMode = "deliver"  # what the receipts say (none: no receipts at all)
    callback_url: str | None = None  # where receipts are POSTed
    inbound_url: str | None = None  # where POST /inbound messages are forwarded
    inbound_mode: InboundMode = "wait"  # forward before answering, or queue (INBOUND_MODES)
    secret: str | None = None  # signs callbacks (X-Warnpub-Signature); unsigned when unset
    auth_header: str | None = None  # when set, requests must carry it with auth_value (else 401)
    auth_value: str | None = None
    max_batch: int = 1000  # messages per POST /sms/batch
    callback_batch: int = 200  # receipts per callback request
    callback_attempts: int = 8  # tries per callback before its receipts are dropped
    seed: int | None = None  # makes error injection reproducible
    voice_outcome: str = "confirmed"  # how calls end, unless voice_outcomes names the number
    # number → the outcomes of its calls in order (the last one repeats)
    voice_outcomes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    voice_delay_ms: float = 200.0  # from accepting a call to posting its outcome
    voice_callback_url: str | None = None  # for call requests that carry no callback_url

    def copy(self) -> SimConfig:
        return replace(self)

    def public(self) -> dict[str, Any]:
        """The knobs as JSON, secrets hidden."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("secret", "auth_value"):
                value = "***" if value else None
            elif isinstance(value, frozenset):
                value = sorted(value)
            elif f.name == "voice_outcomes":
                value = {number: list(outcomes) for number, outcomes in value.items()}
            out[f.name] = value
        return out


# Knobs POST /control may change; outage_s is an action (answer 503 for that long from now).
CONTROL_KEYS = frozenset(
    {
        "error_rate",
        "latency_ms",
        "outage_s",
        "throttle_per_s",
        "permanent_numbers",
        "receipt_delay_ms",
        "receipts",
        "callback_url",
        "inbound_url",
        "inbound_mode",
        "secret",
        "callback_attempts",
        "voice_outcome",
        "voice_outcomes",
        "voice_delay_ms",
        "voice_callback_url",
    }
)


# Every knob, for start-up options (an outage only starts through POST /control).
OPTION_KEYS = frozenset(f.name for f in fields(SimConfig))


def updated(
    config: SimConfig, changes: Mapping[str, Any], *, allowed: frozenset[str] | None = None
) -> tuple[SimConfig, float | None]:
    """A copy of ``config`` with ``changes`` applied, and the outage to start (seconds) if any.

    Raises :class:`SimConfigError` naming every bad knob; ``config`` is never half-changed."""
    allowed = CONTROL_KEYS if allowed is None else allowed
    new = config.copy()
    outage: float | None = None
    problems: list[str] = []
    for key, value in changes.items():
        if key not in allowed:
            problems.append(f"{key}: unknown knob; use one of {', '.join(sorted(allowed))}")
            continue
        try:
            if key == "outage_s":
                outage = _number(value, 0, 86_400)
            elif key == "error_rate":
                new.error_rate = _number(value, 0, 1)
            elif key == "voice_outcome":
                new.voice_outcome = _outcome(value)
            elif key == "voice_outcomes":
                new.voice_outcomes = _outcomes(value)
            elif key in ("latency_ms", "receipt_delay_ms", "voice_delay_ms"):
                setattr(new, key, _number(value, 0, 600_000))
            elif key == "throttle_per_s":
                new.throttle_per_s = 0.0 if value is None else _number(value, 0, 1e9)
            elif key == "permanent_numbers":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise SimConfigError("give a list of E.164 numbers")
                new.permanent_numbers = frozenset(value)
            elif key == "receipts":
                if value not in RECEIPT_MODES:
                    raise SimConfigError(f"use one of {', '.join(RECEIPT_MODES)}")
                new.receipts = value
            elif key == "inbound_mode":
                if value not in INBOUND_MODES:
                    raise SimConfigError(f"use one of {', '.join(INBOUND_MODES)}")
                new.inbound_mode = value
            elif key in ("callback_url", "inbound_url", "voice_callback_url"):
                setattr(new, key, _url(value))
            elif key in ("secret", "auth_header", "auth_value"):
                if value is not None and not isinstance(value, str):
                    raise SimConfigError("give a string")
                setattr(new, key, value or None)
            elif key in ("max_batch", "callback_batch", "callback_attempts"):
                setattr(new, key, int(_number(value, 1, 100_000)))
            elif key == "seed":
                new.seed = None if value is None else int(_number(value, 0, 2**63))
        except SimConfigError as exc:
            problems.append(f"{key}: {exc}")
    if (new.auth_header is None) != (new.auth_value is None):
        problems.append("auth_header: give auth_header and auth_value together")
    if problems:
        raise SimConfigError("; ".join(problems))
    return new, outage


def from_options(options: Mapping[str, Any]) -> SimConfig:
    """A configuration from start-up options (every knob, plus auth, batch sizes and seed)."""
    config, _ = updated(SimConfig(), options, allowed=OPTION_KEYS)
    return config


def _number(value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SimConfigError("give a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise SimConfigError(f"give a number from {low:g} to {high:g}")
    return number


def _outcome(value: Any) -> str:
    if value not in CALL_OUTCOMES:
        raise SimConfigError(f"use one of {', '.join(CALL_OUTCOMES)}")
    return str(value)


def _outcomes(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise SimConfigError(
            'give an object of E.164 numbers and outcomes: {"+8613800138000": ["no_answer", '
            '"confirmed"]}'
        )
    out: dict[str, tuple[str, ...]] = {}
    for number, outcomes in value.items():
        listed = [outcomes] if isinstance(outcomes, str) else outcomes
        if not isinstance(listed, list) or not listed:
            raise SimConfigError(f"{number}: give an outcome or a non-empty list of outcomes")
        for outcome in listed:
            if outcome not in CALL_OUTCOMES:
                raise SimConfigError(
                    f"{number}: {outcome!r} is not an outcome; use {', '.join(CALL_OUTCOMES)}"
                )
        out[number] = tuple(listed)
    return out


def _url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SimConfigError("give an http:// URL")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        raise SimConfigError(f"{value!r} is not an http:// or https:// URL with a host")
    return value
