"""SMS gateway callbacks as values: delivery receipts → :class:`Receipt`, replies → :class:`InboundSms`.

The shapes (field names are adjustable per gateway with :class:`ReceiptFormat` and
:class:`InboundFormat`; the defaults are what ``warnpub gateway-sim`` posts)::

    {"receipts": [{"id": "sim-1f2e-17", "reference": "1042", "status": "delivered",
                   "error": "", "at": "2026-05-01T08:00:03Z"}, …]}
    {"messages": [{"id": "mo-9", "from": "+8613800138000", "to": "10690000", "text": "1",
                   "at": "2026-05-01T08:01:00Z"}, …]}

A bare list of items, or one item on its own, is accepted too. Unreadable JSON is a 400;
anything that breaks a rule is a 422 whose errors name each item and field to fix. Receipts
with an intermediate status (accepted, enroute, buffered, …) are skipped: only final states
become Receipt values.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import phonenumbers

from warnpub.channels.base import Receipt, Status
from warnpub.logs import mask
from warnpub.problems import FieldError, bad_request, invalid

MAX_ERROR_CHARS = 500
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReceiptFormat:
    """Where a gateway puts each part of a delivery receipt, and which words mean what."""

    list_field: str = "receipts"
    id: str = "id"  # the gateway's message id (Result.provider_ref at send time)
    reference: str = "reference"  # our idempotency key, echoed back (the delivery id)
    status: str = "status"
    error: str = "error"
    at: str = "at"
    delivered: frozenset[str] = frozenset({"delivered", "delivrd", "success", "ok"})
    failed: frozenset[str] = frozenset(
        {"failed", "undelivered", "undeliv", "undeliverable", "rejected", "rejectd", "expired"}
    )
    intermediate: frozenset[str] = frozenset(
        {"accepted", "acceptd", "enroute", "buffered", "queued", "sent", "pending"}
    )
    # A reference of the form <prefix><digits> names delivery <digits> (warnpub sends "wp-<id>").
    reference_prefixes: tuple[str, ...] = ("wp-", "")


@dataclass(frozen=True, slots=True)
class InboundFormat:
    """Where a gateway puts each part of an inbound (mobile-originated) message."""

    list_field: str = "messages"
    id: str = "id"
    sender: str = "from"
    recipient: str = "to"
    text: str = "text"
    at: str = "at"


@dataclass(frozen=True, slots=True)
class InboundSms:
    """One message a person sent to us (a village contact replying "1", …)."""

    sender: str  # E.164
    text: str
    recipient: str = ""  # the number or short code it was sent to, as the gateway wrote it
    provider_ref: str | None = None
    at: datetime | None = None


DEFAULT_RECEIPT_FORMAT = ReceiptFormat()
DEFAULT_INBOUND_FORMAT = InboundFormat()


def parse_receipts(
    payload: bytes | str | Any, fmt: ReceiptFormat = DEFAULT_RECEIPT_FORMAT
) -> list[Receipt]:
    """Every final receipt in ``payload`` (raw JSON bytes/text or already decoded)."""
    items = _items(payload, fmt.list_field, "receipts")
    out: list[Receipt] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        receipt = _collect(
            errors, f"{fmt.list_field}[{index}]", item, lambda p, i: _receipt(p, i, fmt)
        )
        if receipt is not None:
            out.append(receipt)
    if errors:
        raise invalid(
            f"{len(errors)} problem(s) in the delivery receipts; nothing was recorded", errors
        )
    return out


def parse_inbound(
    payload: bytes | str | Any, region: str = "CN", fmt: InboundFormat = DEFAULT_INBOUND_FORMAT
) -> list[InboundSms]:
    """Every inbound message in ``payload``; senders normalised to E.164 (``region`` for national numbers)."""
    items = _items(payload, fmt.list_field, "messages")
    out: list[InboundSms] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        message = _collect(
            errors, f"{fmt.list_field}[{index}]", item, lambda p, i: _inbound(p, i, fmt, region)
        )
        if message is not None:
            out.append(message)
    if errors:
        raise invalid(
            f"{len(errors)} problem(s) in the inbound messages; nothing was recorded", errors
        )
    return out


class _ItemError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _collect(
    errors: list[FieldError],
    path: str,
    item: Any,
    parse: Callable[[str, dict[str, Any]], T | None],
) -> T | None:
    if not isinstance(item, dict):
        errors.append(FieldError(path, "each item must be a JSON object"))
        return None
    try:
        return parse(path, item)
    except _ItemError as exc:
        errors.append(FieldError(exc.field, exc.message))
        return None


def _items(payload: bytes | str | Any, list_field: str, what: str) -> list[Any]:
    if isinstance(payload, bytes | bytearray | str):
        try:
            payload = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request(f"the {what} body is not valid JSON: {exc}") from None
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
        raise invalid(f"the {what} body must be a JSON object or array")
    if not items:
        raise invalid(f"no {what} in the body", [FieldError(list_field, "give at least one item")])
    return items


def _receipt(path: str, item: dict[str, Any], fmt: ReceiptFormat) -> Receipt | None:
    word = _text(item, fmt.status, path, required=True).lower()
    if word in fmt.intermediate:
        return None
    if word in fmt.delivered:
        status = Status.DELIVERED
    elif word in fmt.failed:
        status = Status.PERMANENT
    else:
        known = sorted(fmt.delivered | fmt.failed | fmt.intermediate)
        raise _ItemError(f"{path}.{fmt.status}", f"unknown status {word!r}; use one of {known}")
    provider_ref = _text(item, fmt.id, path) or None
    reference = _text(item, fmt.reference, path)
    delivery_id = delivery_id_of(reference, fmt.reference_prefixes)
    if provider_ref is None and delivery_id is None:
        raise _ItemError(
            path,
            f"name the message: give {fmt.id} (the gateway's id) or {fmt.reference} "
            "(the idempotency key we sent: wp-<delivery id>)",
        )
    error = _text(item, fmt.error, path)
    if status is Status.PERMANENT and not error:
        error = word
    return Receipt(
        status=status,
        provider_ref=provider_ref,
        delivery_id=delivery_id,
        error=mask(error)[:MAX_ERROR_CHARS],
        at=_time(item, fmt.at, path),
    )


def delivery_id_of(reference: str, prefixes: tuple[str, ...] = ("wp-", "")) -> int | None:
    """The delivery id in an echoed idempotency key ("wp-1042" or "1042"), else None."""
    for prefix in prefixes:
        if reference.startswith(prefix):
            digits = reference[len(prefix) :]
            if digits.isascii() and digits.isdigit() and len(digits) <= 18:
                return int(digits)
    return None


def _inbound(path: str, item: dict[str, Any], fmt: InboundFormat, region: str) -> InboundSms:
    raw = _text(item, fmt.sender, path, required=True)
    return InboundSms(
        sender=_e164(raw, region, f"{path}.{fmt.sender}"),
        text=_text(item, fmt.text, path, required=True, allow_empty=True),
        recipient=_text(item, fmt.recipient, path),
        provider_ref=_text(item, fmt.id, path) or None,
        at=_time(item, fmt.at, path),
    )


def _text(
    item: dict[str, Any],
    key: str,
    path: str,
    *,
    required: bool = False,
    allow_empty: bool = False,
) -> str:
    value = item.get(key)
    if value is None:
        if required:
            raise _ItemError(f"{path}.{key}", "this field is required")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _ItemError(f"{path}.{key}", "give a string")
    text = str(value).strip()
    if required and not text and not allow_empty:
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
        f"{path}.{key}", "give an ISO 8601 time (2026-05-01T08:00:03Z) or Unix seconds"
    )


def _e164(raw: str, region: str, field: str) -> str:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise _ItemError(field, f"{mask(raw)!r} is not a valid phone number (give E.164: +86…)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
