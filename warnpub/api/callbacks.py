"""Gateway callbacks, signed with HMAC: SMS delivery receipts and inbound messages, voice-call
outcomes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from warnpub.api.bodies import read_body
from warnpub.api.context import services
from warnpub.api.routes import RouteTable
from warnpub.callbacks.signing import HEADER, verify
from warnpub.callbacks.sms_receipts import ReceiptFormat, parse_inbound, parse_receipts
from warnpub.callbacks.voice_calls import parse_call_outcomes
from warnpub.channels.base import ChannelError
from warnpub.channels.voice_http import HttpVoice
from warnpub.dispatch.receipts import RetrySchedule, apply_receipts
from warnpub.lastkm.inbox import ReplyInbox
from warnpub.problems import Problem, not_found

routes = RouteTable()
SIGNED = (
    {
        "name": HEADER,
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "description": "t=<unix seconds>,v1=<hex HMAC-SHA256 of t.body> (docs/channels.md)",
    },
)


def _gateway(request: web.Request) -> dict[str, Any]:
    name = request.match_info["gateway"]
    for entry in services(request).settings.channels.get("sms", []):
        if entry.get("name") == name:
            return entry
    raise not_found(f"no SMS gateway named {name!r} is configured")


async def _verified_body(request: web.Request) -> tuple[dict[str, Any], bytes]:
    gateway = _gateway(request)
    body = await read_body(request, services(request).settings.server.max_body_bytes)
    verify(str(gateway.get("callback_secret") or ""), request.headers.get(HEADER), body)
    return gateway, body


def _receipt_format(gateway: dict[str, Any]) -> ReceiptFormat:
    fields = gateway.get("receipt_fields") or {}
    return ReceiptFormat(
        **{k: v for k, v in fields.items() if k in ReceiptFormat.__dataclass_fields__}
    )


@routes.route(
    "POST",
    "/api/v1/callbacks/sms/{gateway}/receipts",
    auth="gateway signature",
    summary="Delivery receipts from an SMS gateway, signed with its callback secret.",
    params=SIGNED,
    errors=(400, 401, 404, 413, 422),
    response={
        "200": {
            "description": "Receipts recorded",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "applied": {"type": "integer"},
                            "unmatched": {"type": "integer"},
                        },
                    }
                }
            },
        }
    },
)
async def sms_receipts(request: web.Request) -> web.Response:
    svc = services(request)
    gateway, body = await _verified_body(request)
    receipts = parse_receipts(body, _receipt_format(gateway))
    async with svc.db.session() as session:
        applied, unmatched = await apply_receipts(
            session, gateway["name"], receipts, frozenset(svc.settings.channels)
        )
    if svc.dispatcher is not None and applied:
        svc.dispatcher.poke()  # failed receipts may have queued the next step of a route
    return web.json_response({"applied": applied, "unmatched": unmatched})


@routes.route(
    "POST",
    "/api/v1/callbacks/sms/{gateway}/inbound",
    auth="gateway signature",
    summary="Replies people sent through an SMS gateway, signed with its callback secret: stored, then read as acknowledgements and visit reports.",
    params=SIGNED,
    errors=(400, 401, 404, 413, 422),
    response={
        "200": {
            "description": (
                "Messages stored, and what each did: acknowledged, visits (people reported "
                "told in person), not_understood / unknown_code / nothing (answered politely), "
                "unknown_sender (nothing changed)"
            ),
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "stored": {"type": "integer"},
                            "outcomes": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                }
            },
        }
    },
)
async def sms_inbound(request: web.Request) -> web.Response:
    svc = services(request)
    gateway, body = await _verified_body(request)
    messages = parse_inbound(body, svc.settings.audiences.phone_region)
    if svc.inbox is None:
        svc.inbox = ReplyInbox(svc.db)
    # Applied with the callbacks that came at the same time, in one transaction (lastkm.inbox).
    outcomes = await svc.inbox.apply(gateway["name"], messages) if messages else []
    return web.json_response({"stored": len(messages), "outcomes": outcomes})


VOICE_ADAPTER = "http_voice"


def _voice_gateway(request: web.Request) -> HttpVoice:
    """The configured ``http_voice`` instance the callback names (its secret, retry schedule
    and outcome format); 404 when there is none."""
    name = request.match_info["gateway"]
    for entry in services(request).settings.channels.get("voice", []):
        if entry.get("name") != name:
            continue
        if entry.get("adapter") != VOICE_ADAPTER:
            raise not_found(f"the voice channel {name!r} does not use the {VOICE_ADAPTER} adapter")
        try:
            return HttpVoice(name, entry)
        except ChannelError as exc:
            raise Problem(
                500, "Voice gateway misconfigured", f"channels.voice (name {name!r}): {exc}"
            ) from None
    raise not_found(f"no voice gateway named {name!r} is configured")


@routes.route(
    "POST",
    "/api/v1/callbacks/voice/{gateway}/outcomes",
    auth="gateway signature",
    summary=(
        "Call outcomes from a voice gateway (answered, 1 pressed, no answer, busy, failed), "
        "signed with its callback secret."
    ),
    params=SIGNED,
    errors=(400, 401, 404, 413, 422),
    response={
        "200": {
            "description": (
                "Outcomes recorded: answered → delivered (acknowledged when 1 was pressed); "
                "no answer / busy → called again on the gateway's retry schedule, then failed; "
                "failed → the route's next step"
            ),
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "applied": {"type": "integer"},
                            "unmatched": {"type": "integer"},
                        },
                    }
                }
            },
        }
    },
)
async def voice_outcomes(request: web.Request) -> web.Response:
    svc = services(request)
    gateway = _voice_gateway(request)
    body = await read_body(request, svc.settings.server.max_body_bytes)
    verify(gateway.callback_secret, request.headers.get(HEADER), body)
    outcomes = parse_call_outcomes(body, gateway.outcome_format, gateway.confirm_digit)
    schedule = RetrySchedule(gateway.retries, gateway.retry_interval_s)
    async with svc.db.session() as session:
        applied, unmatched = await apply_receipts(
            session, gateway.name, outcomes, frozenset(svc.settings.channels), retry=schedule
        )
    if svc.dispatcher is not None and applied:
        svc.dispatcher.poke()  # a failed call may have queued the next step of a route
    return web.json_response({"applied": applied, "unmatched": unmatched})
