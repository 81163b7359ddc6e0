"""Reading request bodies into plain values, with a 4xx that says what to fix."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from warnpub.problems import FieldError, Problem, bad_request, invalid

JSON_TYPES = ("application/json",)
CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")


def media_type(request: web.Request) -> str:
    return request.content_type.lower()


def require_type(request: web.Request, allowed: tuple[str, ...]) -> str:
    kind = media_type(request)
    if kind not in allowed:
        raise Problem(
            415,
            "Unsupported media type",
            f"send the body as {' or '.join(allowed)} (got {kind or 'no Content-Type'})",
            "unsupported-media-type",
        )
    return kind


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise bad_request(f"the body is not UTF-8 (byte {exc.start}); send UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(doc, dict):
        raise bad_request("the JSON body must be an object")
    return doc


async def json_object(request: web.Request) -> dict[str, Any]:
    require_type(request, JSON_TYPES)
    return parse_json_object(await request.read())


def text_field(doc: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = doc.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise invalid(f"give {name!r} as a non-empty string", [FieldError(name, "required text")])
    return value
