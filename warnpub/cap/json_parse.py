"""JSON warnings (the documented schema is ``Alert.model_json_schema()``) into the model.

400 ``malformed`` when the bytes are not JSON (or repeat a key, or use NaN/Infinity); 422
``cap-too-large`` past :data:`MAX_VALUES` values; 422 with
one :class:`FieldError` per problem, at a dotted path such as ``infos.0.expires``, otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from warnpub.cap.field_errors import field_errors
from warnpub.cap.model import Alert
from warnpub.problems import FieldError, bad_request, invalid

_SET_BY_WARNPUB = frozenset({"has_signature"})
# As many as the XML parser's element limit (warnpub.cap.xml_parse.MAX_ELEMENTS).
MAX_VALUES = 10_000
_JSON_TYPES = {"list": "an array", "str": "a string", "int": "a number", "float": "a number",
               "bool": "true or false", "NoneType": "null"}  # fmt: skip


class _Malformed(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Malformed(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise _Malformed(f"{name} is not a JSON number")


def load_json(data: bytes) -> Any:
    """Decode JSON strictly (duplicate keys and NaN/Infinity refused); 400 on failure."""
    try:
        return json.loads(data, object_pairs_hook=_object, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"the JSON is malformed: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except UnicodeDecodeError as exc:
        raise bad_request(f"the JSON is not valid UTF-8 (byte {exc.start})") from None
    except _Malformed as exc:
        raise bad_request(f"the JSON is malformed: {exc}") from None
    except RecursionError:
        raise bad_request("the JSON is nested too deeply") from None


def _count_values(obj: Any, stop: int) -> int:
    """How many JSON values (objects, arrays, strings, numbers…) ``obj`` holds, counting no
    further than ``stop``: checked before validation, whose time (and error list) grows with it."""
    seen, pending = 0, [obj]
    while pending and seen < stop:
        value = pending.pop()
        seen += 1
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return seen


def parse_alert_json(data: bytes | dict[str, Any]) -> Alert:
    """Read one alert from JSON bytes or an already-decoded object."""
    obj = load_json(data) if isinstance(data, bytes | bytearray) else data
    if not isinstance(obj, dict):
        raise invalid(
            "the body must be a JSON object holding one alert",
            [
                FieldError(
                    "body",
                    f"got {_JSON_TYPES.get(type(obj).__name__, 'a value')}, expected an object",
                )
            ],
        )
    if _count_values(obj, MAX_VALUES + 1) > MAX_VALUES:
        message = (
            f"the alert has more than {MAX_VALUES} JSON values; a CAP alert needs a few hundred "
            "at most: send several alerts, or fewer geocodes per area"
        )
        raise invalid(message, [FieldError("body", message)], kind="cap-too-large")
    own = sorted(_SET_BY_WARNPUB & obj.keys())
    if own:
        raise invalid(
            "the alert sets fields that only warnpub sets",
            [FieldError(key, "is set by warnpub, not by the sender; remove it") for key in own],
        )
    try:
        return Alert.model_validate(obj)
    except ValidationError as exc:
        raise invalid(
            f"the alert is not valid ({exc.error_count()} problem(s))", field_errors(exc)
        ) from None
