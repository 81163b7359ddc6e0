"""Voice-call outcomes posted by a voice gateway, as values (:class:`CallReceipt`).

The shape (field names adjustable per gateway with :class:`CallFormat`; the defaults are what
``warnpub gateway-sim`` posts)::

    {"calls": [{"id": "call-1f2e3d-7", "reference": "wp-1042", "to": "+8613800138000",
                "status": "answered", "digits": "1", "attempt": 1, "duration_s": 41.5,
                "error": "", "at": "2026-05-01T08:00:40Z"}, …]}

A bare list of items, or one item on its own, is accepted too. What each outcome becomes:

============================================  ==============================================
the gateway reports                           CallReceipt
============================================  ==============================================
``confirmed``, or ``answered`` with the       DELIVERED, ``acknowledged`` (the person
confirm digit among ``digits``                pressed 1)
``answered`` (no confirm digit)               DELIVERED, not acknowledged
``no_answer``, ``busy``                       TRANSIENT: call again later (the dispatcher's
                                              retry schedule), then failed
``failed`` (not in service, refused)          PERMANENT: the route's next step
``queued``, ``ringing``, ``in_progress`` …    skipped (not a final outcome)
============================================  ==============================================

Unreadable JSON is a 400; anything that breaks a rule is a 422 whose errors name each item and
field to fix, and nothing of that body is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from warnpub.callbacks.sms_receipts import delivery_id_of
from warnpub.channels.base import Receipt, Status
from warnpub.logs import mask
from warnpub.problems import FieldError, bad_request, invalid

MAX_ERROR_CHARS = 500


class CallOutcome(StrEnum):
    """How one call ended."""

    CONFIRMED = "confirmed"  # answered, and the person pressed the confirm digit
    ANSWERED = "answered"  # answered, the script was read, no confirmation
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # the call could not be set up (number not in service, refused)


OUTCOME_STATUS = {
    CallOutcome.CONFIRMED: Status.DELIVERED,
    CallOutcome.ANSWERED: Status.DELIVERED,
    CallOutcome.NO_ANSWER: Status.TRANSIENT,
    CallOutcome.BUSY: Status.TRANSIENT,
    CallOutcome.FAILED: Status.PERMANENT,
}


@dataclass(frozen=True, slots=True)
class CallReceipt(Receipt):
    """A call's outcome: a :class:`Receipt` whose status may also be TRANSIENT ("call again
    later"), and which says whether the person confirmed (pressed the confirm digit)."""

    outcome: CallOutcome = CallOutcome.ANSWERED
    acknowledged: bool = False


@dataclass(frozen=True, slots=True)
class CallFormat:
    """Where a voice gateway puts each part of a call outcome, and which words mean what."""

    list_field: str = "calls"
    id: str = "id"  # the gateway's call id (Result.provider_ref at send time)
    reference: str = "reference"  # our idempotency key, echoed back (wp-<delivery id>)
    status: str = "status"
    digits: str = "digits"  # keys the person pressed during the call
    error: str = "error"
    at: str = "at"
    confirmed: frozenset[str] = frozenset({"confirmed", "acknowledged"})
    answered: frozenset[str] = frozenset({"answered", "completed"})
    no_answer: frozenset[str] = frozenset({"no_answer", "no-answer", "noanswer", "unanswered"})
    busy: frozenset[str] = frozenset({"busy"})
    failed: frozenset[str] = frozenset({"failed", "rejected", "invalid_number", "unreachable"})
    intermediate: frozenset[str] = frozenset(
        {"queued", "accepted", "initiated", "ringing", "in_progress", "in-progress"}
    )
    reference_prefixes: tuple[str, ...] = ("wp-", "")


DEFAULT_CALL_FORMAT = CallFormat()


class _ItemError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_call_outcomes(
    payload: bytes | str | Any, fmt: CallFormat = DEFAULT_CALL_FORMAT, confirm_digit: str = "1"
) -> list[CallReceipt]:
    """Every final call outcome in ``payload`` (raw JSON bytes/text or already decoded)."""
    items = _items(payload, fmt.list_field)
    out: list[CallReceipt] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        path = f"{fmt.list_field}[{index}]"
        if not isinstance(item, dict):
            errors.append(FieldError(path, "each item must be a JSON object"))
            continue
        try:
            receipt = _call(path, item, fmt, confirm_digit)
        except _ItemError as exc:
            errors.append(FieldError(exc.field, exc.message))
            continue
        if receipt is not None:
            out.append(receipt)
    if errors:
        raise invalid(
            f"{len(errors)} problem(s) in the call outcomes; nothing was recorded", errors
        )
    return out


def outcome_of(word: str, digits: str, fmt: CallFormat, confirm_digit: str) -> CallOutcome | None:
    """The outcome a status word (and the keys pressed) stands for; None for an intermediate
    status; :class:`ValueError` for an unknown word."""
    word = word.lower()
    if word in fmt.intermediate:
        return None
    if word in fmt.confirmed:
        return CallOutcome.CONFIRMED
    if word in fmt.answered:
        return CallOutcome.CONFIRMED if confirm_digit in digits else CallOutcome.ANSWERED
    if word in fmt.no_answer:
        return CallOutcome.NO_ANSWER
    if word in fmt.busy:
        return CallOutcome.BUSY
    if word in fmt.failed:
        return CallOutcome.FAILED
    known = sorted(
        fmt.confirmed | fmt.answered | fmt.no_answer | fmt.busy | fmt.failed | fmt.intermediate
    )
    raise ValueError(f"unknown status {word!r}; use one of {known}")


def _call(
    path: str, item: dict[str, Any], fmt: CallFormat, confirm_digit: str
) -> CallReceipt | None:
    word = _text(item, fmt.status, path, required=True)
    digits = _text(item, fmt.digits, path)
    try:
        outcome = outcome_of(word, digits, fmt, confirm_digit)
    except ValueError as exc:
        raise _ItemError(f"{path}.{fmt.status}", str(exc)) from None
    if outcome is None:
        return None
    provider_ref = _text(item, fmt.id, path) or None
    delivery_id = delivery_id_of(_text(item, fmt.reference, path), fmt.reference_prefixes)
    if provider_ref is None and delivery_id is None:
        raise _ItemError(
            path,
            f"name the call: give {fmt.id} (the gateway's call id) or {fmt.reference} "
            "(the idempotency key we sent: wp-<delivery id>)",
        )
    error = _text(item, fmt.error, path)
    if outcome is CallOutcome.NO_ANSWER:
        error = error or "no answer"
    elif outcome is CallOutcome.BUSY:
        error = error or "the line was busy"
    elif outcome is CallOutcome.FAILED:
        error = error or f"the call failed ({word})"
    else:
        error = ""
    return CallReceipt(
        status=OUTCOME_STATUS[outcome],
        provider_ref=provider_ref,
        delivery_id=delivery_id,
        error=mask(error)[:MAX_ERROR_CHARS],
        at=_time(item, fmt.at, path),
        outcome=outcome,
        acknowledged=outcome is CallOutcome.CONFIRMED,
    )


def _items(payload: bytes | str | Any, list_field: str) -> list[Any]:
    if isinstance(payload, bytes | bytearray | str):
        try:
            payload = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request(f"the call outcome body is not valid JSON: {exc}") from None
    if isinstance(payload, list):
        items = payload
    elif isinstance(payload, dict) and list_field in payload:
        items = payload[list_field]
        if not isinstance(items, list):
            raise invalid(
                f"{list_field} must be a list", [FieldError(list_field, "give a JSON array")]
            )
    elif isinstance(payload, dict):
        items = [payload]
    else:
        raise invalid("the call outcome body must be a JSON object or array")
    if not items:
        raise invalid(
            "no call outcomes in the body", [FieldError(list_field, "give at least one item")]
        )
    return items


def _text(item: dict[str, Any], key: str, path: str, *, required: bool = False) -> str:
    value = item.get(key)
    if value is None:
        if required:
            raise _ItemError(f"{path}.{key}", "this field is required")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _ItemError(f"{path}.{key}", "give a string")
    text = str(value).strip()
    if required and not text:
        raise _ItemError(f"{path}.{key}", "must not be empty")
    return text


def _time(item: dict[str, Any], key: str, path: str) -> datetime | None:
    value = item.get(key)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise _ItemError(
        f"{path}.{key}", "give an ISO 8601 time (2026-05-01T08:00:40Z) or Unix seconds"
    )
