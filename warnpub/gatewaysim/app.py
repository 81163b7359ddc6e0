"""The simulator's HTTP interface (aiohttp). See docs/channels.md for every endpoint.

``POST /sms`` one message, ``POST /sms/batch`` a list; ``POST /voice/calls`` one call (its
outcome is posted, signed, to the request's callback URL); ``POST /control`` and
``POST /reset`` change faults and state; ``GET /stats``, ``GET /messages`` and
``GET /voice/calls`` report; ``POST /inbound`` makes a person "reply" (forwarded, signed, to
the inbound URL); ``GET /health``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from warnpub.gatewaysim.callbacks import deliver, post_signed, pump_calls, pump_receipts
from warnpub.gatewaysim.config import SimConfig, SimConfigError, from_options, updated
from warnpub.gatewaysim.state import SimGateway, iso_ts

GATEWAY = web.AppKey("gateway", SimGateway)
SESSION = web.AppKey("session", aiohttp.ClientSession)
FORWARDING: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("forwarding", set)
SLOTS = web.AppKey("inbound_slots", asyncio.Semaphore)
INBOUND_CONNECTIONS = 8  # queued replies forwarded at once (inbound_mode "queue")
JSON = "application/json"


def create_sim_app(config: SimConfig | Mapping[str, Any] | None = None) -> web.Application:
    """The simulator as an aiohttp application (start it with web.AppRunner or web.run_app).

    ``config`` is a :class:`SimConfig` or a mapping of its knobs (validated: a bad knob raises
    :class:`SimConfigError` naming it)."""
    if config is None:
        config = SimConfig()
    elif not isinstance(config, SimConfig):
        config = from_options(config)
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[GATEWAY] = SimGateway(config)
    app[FORWARDING] = set()  # inbound messages being forwarded (inbound_mode "queue")
    app[SLOTS] = asyncio.Semaphore(INBOUND_CONNECTIONS)
    app.cleanup_ctx.append(_background)
    app.router.add_post("/sms", send_one)
    app.router.add_post("/sms/batch", send_batch)
    app.router.add_post("/voice/calls", place_call)
    app.router.add_get("/voice/calls", calls)
    app.router.add_post("/control", control)
    app.router.add_post("/reset", reset)
    app.router.add_get("/stats", stats)
    app.router.add_get("/messages", messages)
    app.router.add_post("/inbound", inbound)
    app.router.add_get("/health", health)
    return app


async def _background(app: web.Application) -> AsyncIterator[None]:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5), trust_env=False)
    app[SESSION] = session
    pumps = [
        asyncio.create_task(pump_receipts(app[GATEWAY], session), name="gateway-sim receipts"),
        asyncio.create_task(pump_calls(app[GATEWAY], session), name="gateway-sim calls"),
    ]
    yield
    for pump in [*pumps, *app[FORWARDING]]:
        pump.cancel()
    for pump in [*pumps, *app[FORWARDING]]:
        try:
            await pump
        except asyncio.CancelledError:
            pass
    await session.close()


def _json(status: int, body: Any, retry_after_s: float | None = None) -> web.Response:
    headers = None
    if retry_after_s is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))}
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        content_type=JSON,
        headers=headers,
    )


async def _admit(request: web.Request) -> tuple[SimGateway, Any] | web.Response:
    """Request-level faults and body parsing; a Response means the request ends there."""
    gateway = request.app[GATEWAY]
    gateway.counts["requests"] += 1
    config = gateway.config
    if config.auth_header is not None and config.auth_value is not None:
        given = request.headers.get(config.auth_header, "")
        if not hmac.compare_digest(given.encode(), config.auth_value.encode()):
            gateway.counts["unauthorized"] += 1
            return _json(
                401, {"code": "unauthorized", "error": f"wrong or missing {config.auth_header}"}
            )
    outage = gateway.outage_left()
    if outage > 0:
        gateway.counts["outage_refused"] += 1
        body = {"code": "outage", "error": "the gateway is down", "retry_after_s": round(outage, 3)}
        return _json(503, body, outage)
    raw = await request.read()  # read first: a client that gives up later leaves it accepted
    if config.latency_ms > 0:
        await asyncio.sleep(config.latency_ms / 1000)
    if gateway.inject_error():
        gateway.counts["injected_errors"] += 1
        return _json(500, {"code": "internal", "error": "injected fault: nothing was accepted"})
    try:
        return gateway, json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _json(400, {"code": "malformed", "error": f"the body is not valid JSON: {exc}"})


async def send_one(request: web.Request) -> web.Response:
    admitted = await _admit(request)
    if isinstance(admitted, web.Response):
        return admitted
    gateway, body = admitted
    if not isinstance(body, dict):
        return _json(
            400, {"code": "malformed", "error": "send one JSON object (to, text, reference)"}
        )
    outcome = gateway.submit(body)
    return _json(outcome.status, outcome.body, outcome.retry_after_s)


async def send_batch(request: web.Request) -> web.Response:
    admitted = await _admit(request)
    if isinstance(admitted, web.Response):
        return admitted
    gateway, body = admitted
    items = body.get("messages") if isinstance(body, dict) else body
    if not isinstance(items, list) or not items:
        return _json(
            400,
            {"code": "malformed", "error": 'send {"messages": [ … ]} with at least one message'},
        )
    if len(items) > gateway.config.max_batch:
        return _json(
            413,
            {
                "code": "batch_too_large",
                "error": f"{len(items)} messages; at most {gateway.config.max_batch} per batch",
            },
        )
    outcomes = [gateway.submit(item) for item in items]
    results = [o.body for o in outcomes]
    if all(o.status == 429 for o in outcomes):
        wait = min(o.retry_after_s or 1.0 for o in outcomes)
        return _json(429, {"results": results, "code": "throttled"}, wait)
    return _json(200, {"results": results})


async def place_call(request: web.Request) -> web.Response:
    """One call request (to, text, prompt, language, reference, callback_url)."""
    admitted = await _admit(request)
    if isinstance(admitted, web.Response):
        return admitted
    gateway, body = admitted
    outcome = gateway.voice.submit(body)
    return _json(outcome.status, outcome.body, outcome.retry_after_s)


async def calls(request: web.Request) -> web.Response:
    try:
        since = int(request.query.get("since", "0"))
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        return _json(400, {"code": "malformed", "error": "since and limit are whole numbers"})
    if since < 0 or not 1 <= limit <= 100_000:
        return _json(400, {"code": "malformed", "error": "since ≥ 0 and 1 ≤ limit ≤ 100000"})
    return _json(200, request.app[GATEWAY].voice.page(since, limit))


async def control(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    try:
        changes = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        return _json(400, {"code": "malformed", "error": f"the body is not valid JSON: {exc}"})
    if not isinstance(changes, dict):
        return _json(400, {"code": "malformed", "error": "send a JSON object of knobs"})
    try:
        config, outage = updated(gateway.config, changes)
    except SimConfigError as exc:
        return _json(400, {"code": "bad_control", "error": str(exc)})
    gateway.apply(config, outage)
    return _json(200, {**config.public(), "outage_left_s": round(gateway.outage_left(), 3)})


async def reset(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    gateway.reset()
    return _json(200, {"reset": True, **gateway.config.public()})


async def stats(request: web.Request) -> web.Response:
    numbers = request.query.get("numbers", "1") not in ("0", "false", "no")
    return _json(200, request.app[GATEWAY].stats(numbers=numbers))


async def messages(request: web.Request) -> web.Response:
    try:
        since = int(request.query.get("since", "0"))
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        return _json(400, {"code": "malformed", "error": "since and limit are whole numbers"})
    if since < 0 or not 1 <= limit <= 100_000:
        return _json(400, {"code": "malformed", "error": "since ≥ 0 and 1 ≤ limit ≤ 100000"})
    return _json(200, request.app[GATEWAY].messages(since, limit))


async def inbound(request: web.Request) -> web.Response:
    """Simulate a person's reply: {"from": "+86…", "text": "1", "to": "10690000"} → inbound URL."""
    gateway = request.app[GATEWAY]
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        return _json(400, {"code": "malformed", "error": f"the body is not valid JSON: {exc}"})
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("from"), str)
        or not isinstance(body.get("text"), str)
    ):
        return _json(400, {"code": "malformed", "error": 'send {"from": "+86…", "text": "…"}'})
    url = gateway.config.inbound_url
    if url is None:
        return _json(
            409, {"code": "no_inbound_url", "error": "set inbound_url first (POST /control)"}
        )
    gateway.inbound_seq += 1
    message = {
        "id": f"mo-{gateway.run_id}-{gateway.inbound_seq}",
        "from": body["from"],
        "to": str(body.get("to", "")),
        "text": body["text"],
        "at": iso_ts(time.time()),
    }
    if gateway.config.inbound_mode == "queue":
        # As a carrier does: taken now (stamped above), forwarded in the background with retries.
        task = asyncio.create_task(
            _forward(
                gateway, request.app[SESSION], request.app[SLOTS], url, {"messages": [message]}
            ),
            name="gateway-sim inbound",
        )
        forwarding = request.app[FORWARDING]
        forwarding.add(task)
        task.add_done_callback(forwarding.discard)
        return _json(202, {"id": message["id"], "queued": True, "forwarded": False})
    status = await post_signed(
        request.app[SESSION], url, gateway.config.secret, {"messages": [message]}
    )
    if status is not None and 200 <= status < 300:
        gateway.counts["inbound_forwarded"] += 1
    return _json(
        200,
        {
            "id": message["id"],
            "forwarded": status is not None and 200 <= status < 300,
            "status": status,
        },
    )


async def _forward(
    gateway: SimGateway,
    session: aiohttp.ClientSession,
    slots: asyncio.Semaphore,
    url: str,
    payload: dict[str, Any],
) -> None:
    async with slots:  # a carrier pushes replies over a few connections, not all at once
        taken = await deliver(gateway, session, url, payload, 1)
    if taken:
        gateway.counts["inbound_forwarded"] += 1
    else:
        gateway.counts["inbound_lost"] += 1


async def health(request: web.Request) -> web.Response:
    return _json(200, {"ok": True})
