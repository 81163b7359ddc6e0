"""Reading request bodies into plain values, with a 4xx that says what to fix."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from warnpub.api.context import services
from warnpub.cap.json_parse import load_json
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
    """A JSON object; malformed JSON, duplicate keys, NaN and non-UTF-8 bodies are 400s."""
    doc = load_json(raw)
    if not isinstance(doc, dict):
        raise bad_request("the JSON body must be an object")
    return doc


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused with 413 once it passes ``limit`` bytes (also when sent chunked)."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(request.content_length, limit)
    # read(n) returns what has arrived so far (up to n bytes), not n bytes: read until the end.
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise too_large(None, limit)
    return b"".join(chunks)


def too_large(size: int | None, limit: int) -> Problem:
    got = (
        f"the request body is {size} bytes" if size is not None else "the request body is too large"
    )
    return Problem(413, "Body too large", f"{got}; the limit is {limit} bytes", "body-too-large")


async def json_object(request: web.Request) -> dict[str, Any]:
    require_type(request, JSON_TYPES)
    return parse_json_object(
        await read_body(request, services(request).settings.server.max_body_bytes)
    )


def text_field(doc: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = doc.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise invalid(f"give {name!r} as a non-empty string", [FieldError(name, "required text")])
    return value
