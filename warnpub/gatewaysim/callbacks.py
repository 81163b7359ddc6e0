"""The simulator calling back: receipts in signed batches (retried), inbound messages on request."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp

from warnpub.callbacks.signing import HEADER, sign
from warnpub.gatewaysim.state import SimGateway

log = logging.getLogger("warnpub.gatewaysim")
MAX_BACKOFF_S = 5.0
FIRST_BACKOFF_S = 0.05


async def post_signed(
    session: aiohttp.ClientSession, url: str, secret: str | None, payload: dict[str, Any]
) -> int | None:
    """POST ``payload`` as JSON, signed when a secret is set; the HTTP status, or None if unreachable."""
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[HEADER] = sign(secret, body)
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.debug("callback to %s failed: %s", url, type(exc).__name__)
        return None


async def deliver(
    gateway: SimGateway, session: aiohttp.ClientSession, url: str, payload: dict[str, Any], n: int
) -> bool:
    """Send one callback with retries (exponential backoff); True once it was answered 2xx."""
    generation = gateway.generation
    delay = FIRST_BACKOFF_S
    for _ in range(gateway.config.callback_attempts):
        gateway.counts["callback_requests"] += 1
        status = await post_signed(session, url, gateway.config.secret, payload)
        if gateway.generation != generation:
            return False  # reset meanwhile: these receipts belong to a forgotten run
        if status is not None and 200 <= status < 300:
            return True
        gateway.counts["callback_failures"] += 1
        await asyncio.sleep(delay)
        delay = min(MAX_BACKOFF_S, delay * 2)
        if gateway.generation != generation:
            return False
    log.warning("dropping a callback of %d item(s): %s did not accept it", n, url)
    return False


async def pump_receipts(gateway: SimGateway, session: aiohttp.ClientSession) -> None:
    """Forever: wait for due receipts, post them in batches, count what happened."""
    gateway.wake = asyncio.Event()
    while True:
        batch = gateway.take_due(gateway.config.callback_batch)
        if not batch:
            gateway.wake.clear()
            try:
                await asyncio.wait_for(gateway.wake.wait(), timeout=gateway.next_due_in())
            except TimeoutError:
                pass
            continue
        url = gateway.config.callback_url
        generation = gateway.generation
        if url is None:
            gateway.counts["receipts_dropped"] += len(batch)
            continue
        ok = await deliver(gateway, session, url, {"receipts": batch}, len(batch))
        if gateway.generation != generation:
            continue
        gateway.counts["receipts_sent" if ok else "receipts_dropped"] += len(batch)


async def pump_calls(gateway: SimGateway, session: aiohttp.ClientSession) -> None:
    """Forever: end the calls whose time has come and post their outcomes, per callback URL."""
    voice = gateway.voice
    voice.wake = asyncio.Event()
    while True:
        groups = voice.take_due(gateway.config.callback_batch)
        if not groups:
            voice.wake.clear()
            try:
                await asyncio.wait_for(voice.wake.wait(), timeout=voice.next_due_in())
            except TimeoutError:
                pass
            continue
        generation = gateway.generation
        sent = await asyncio.gather(
            *(deliver(gateway, session, url, {"calls": calls}, len(calls)) for url, calls in groups)
        )
        if gateway.generation != generation:
            continue
        for ok, (_, calls) in zip(sent, groups, strict=True):
            voice.counts["callbacks_sent" if ok else "callbacks_dropped"] += len(calls)
