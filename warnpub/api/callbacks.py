"""Gateway callbacks: SMS delivery receipts and inbound messages, signed with HMAC."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from warnpub.api.bodies import read_body
from warnpub.api.context import services
from warnpub.api.routes import RouteTable
from warnpub.callbacks.signing import HEADER, verify
from warnpub.callbacks.sms_receipts import ReceiptFormat, parse_inbound, parse_receipts
from warnpub.clock import utcnow
from warnpub.dispatch.receipts import apply_receipts
from warnpub.problems import not_found
from warnpub.storage.tables import InboundMessage

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
    summary="Messages people sent to us through an SMS gateway (replies), signed with its callback secret.",
    params=SIGNED,
    errors=(400, 401, 404, 413, 422),
    response={
        "200": {
            "description": "Messages stored",
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": {"stored": {"type": "integer"}}}
                }
            },
        }
    },
)
async def sms_inbound(request: web.Request) -> web.Response:
    svc = services(request)
    gateway, body = await _verified_body(request)
    messages = parse_inbound(body, svc.settings.audiences.phone_region)
    async with svc.db.session() as session:
        session.add_all(
            [
                InboundMessage(
                    gateway=gateway["name"],
                    sender=m.sender,
                    text=m.text[:2000],
                    received_at=m.at or utcnow(),
                )
                for m in messages
            ]
        )
    return web.json_response({"stored": len(messages)})
