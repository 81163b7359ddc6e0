"""Pydantic validation errors as :class:`FieldError`s: a path to the field and what to fix.

JSON input gets dotted model paths (``infos.0.expires``); XML input gets CAP element paths
(``alert/info[1]/expires``) so the sender can find the spot in the document they wrote.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from warnpub.cap.elements import xml_path
from warnpub.cap.model import CAP_DATETIME_EXAMPLE
from warnpub.problems import FieldError

_DATETIME_TYPES = frozenset(
    {"datetime_type", "datetime_parsing", "datetime_from_date_parsing", "datetime_object_invalid"}
)
_FIXED = {
    "missing": "is required; add it",
    "extra_forbidden": (
        "is not a field of this object; remove it or check the spelling "
        "(field names are snake_case, e.g. msg_type)"
    ),
    "string_type": "must be text (a JSON string)",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number, not NaN or infinity",
    "list_type": "must be a list",
    "tuple_type": "must be a [lat, lon] pair",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
}


MAX_ERRORS = 100  # a reply lists at most this many; the rest are counted


def field_errors(exc: ValidationError, *, xml: bool = False) -> list[FieldError]:
    """One :class:`FieldError` per pydantic error, in plain words, without repeats.

    At most ``MAX_ERRORS`` are listed, then one more entry counts the rest. Linear in the number
    of errors: 30 kB of ``{"infos": [{}, {}, …]}`` carries forty thousand of them.
    """
    unique: dict[FieldError, None] = {}
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        field = xml_path(path) if xml else (path or "body")
        unique.setdefault(FieldError(field, plain_message(error)))
    errors = list(unique)
    if len(errors) > MAX_ERRORS:
        hidden = len(errors) - MAX_ERRORS
        where = "alert" if xml else "body"
        errors = [*errors[:MAX_ERRORS], FieldError(where, f"… and {hidden} more errors")]
    return errors


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plain_message(error: Any) -> str:
    """Rewrite one pydantic error (an ``ErrorDetails`` dict) as an instruction."""
    kind: str = error["type"]
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind == "missing" and error["loc"] and isinstance(error["loc"][-1], int):
        return "is missing; write each point as [lat, lon]"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{_show(error['input'])} is not allowed; use one of {ctx.get('expected', '')}"
    if kind in _DATETIME_TYPES:
        return f"{_show(error['input'])} is not a date-time; write it like {CAP_DATETIME_EXAMPLE}"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length', 1)} item(s)"
    if kind == "string_too_long":
        return f"is too long: at most {ctx.get('max_length')} characters"
    if kind == "too_long":
        return f"has too many items (at most {ctx.get('max_length')}); a point is [lat, lon]"
    if kind in _FIXED:
        return _FIXED[kind]
    return str(error["msg"])
