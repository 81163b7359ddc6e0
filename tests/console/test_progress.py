"""Live progress against a real dispatch: a county with the gateway simulator on loopback; a
red warning approved by two operators through the console's forms; the event stream counts
deliveries until the warning completes, then ends. A server shutting down ends open streams at
once; a stream whose browser went away ends within an interval."""

from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp
from aiohttp import web

from tests.console.helpers import post_form, sign_in
from tests.dispatch.conftest import make_county, start_sim
from tests.factories import alert_json, seed
from warnpub.api.app import create_app
from warnpub.console.routes import STREAMS


async def test_progress_stream_follows_a_warning_to_completion(settings, db):
    sim, runner = await start_sim()
    county, client = await make_county(settings, db, [sim], people=120)
    try:
        r = await client.post(
            "/api/v1/warnings",
            json=alert_json(event="洪水", severity="Extreme"),
            headers=county.world.agency("SL"),
        )
        assert r.status == 202, await r.text()
        wid = (await r.json())["id"]
        page = f"/console/warnings/{wid}"
        for who in ("duty1", "chief"):
            client.session.cookie_jar.clear()
            assert (await sign_in(client, who)).status == 303
            assert (await post_form(client, page, f"{page}/approve")).status == 303
        events = await client.get(f"{page}/events")
        assert events.status == 200
        async with asyncio.timeout(90):
            body = (await events.read()).decode()
        progress = [
            json.loads(m) for m in re.findall(r"event: progress\ndata: (.*)\n\n", body)
        ]
        assert progress and "event: end" in body
        last = progress[-1]
        assert last["state"] == "completed" and last["ended"]
        assert last["totals"]["delivered"] > 0
        assert sum(t["delivered"] for t in last["tiers"]) == last["totals"]["delivered"]
        assert sum(t["delivered"] for t in last["towns"]) == last["totals"]["delivered"]
        assert all(t["name"] for t in last["towns"])
        # Tiers in words (zh by default), not their group codes.
        assert all(t["name"] and t["name"] != t["group"] for t in last["tiers"])
        text = await (await client.get(page)).text()
        delivered = re.search(r'data-testid="progress-delivered">(\d+)<', text).group(1)
        assert int(delivered) == last["totals"]["delivered"]
        assert 'data-state="completed"' in text
        report = await client.get(f"{page}/report")
        assert report.status == 200 and 'data-testid="report"' in await report.text()
    finally:
        await client.close()
        await runner.cleanup()


async def _open_stream(settings, db):
    """A real server (AppRunner with aiohttp's default shutdown timeout, 60 s) and a signed-in
    client holding a pending warning's event stream open."""
    world = await seed(db, settings)
    app = create_app(settings, db, run_timers=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    http = aiohttp.ClientSession(
        base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True), trust_env=False
    )
    r = await http.post(
        "/api/v1/warnings",
        json=alert_json(event="洪水", severity="Extreme"),
        headers=world.agency("SL"),
    )
    assert r.status == 202, await r.text()
    wid = (await r.json())["id"]
    assert (await sign_in(http, "duty1")).status == 303
    events = await http.get(f"/console/warnings/{wid}/events")
    assert events.status == 200
    async with asyncio.timeout(10):
        first = await events.content.readuntil(b"event: progress\n")
    assert b"retry:" in first
    return app, runner, http, events


async def test_server_shutdown_ends_an_open_stream_at_once(settings, db):
    app, runner, http, events = await _open_stream(settings, db)
    try:
        assert app[STREAMS].open == 1
        started = time.monotonic()
        await runner.cleanup()
        took = time.monotonic() - started
        assert took < 2.0, f"the shutdown waited {took:.1f} s for the event stream"
        assert app[STREAMS].open == 0
        async with asyncio.timeout(5):
            rest = await events.content.read()  # the stream ended: no hanging read
        assert b"event: end" not in rest  # the warning did not end; the server did
    finally:
        events.close()
        await http.close()
        await runner.cleanup()


async def test_a_stream_whose_browser_went_away_ends_within_an_interval(settings, db):
    app, runner, http, events = await _open_stream(settings, db)
    try:
        assert app[STREAMS].open == 1
        events.close()  # the browser closes the page
        async with asyncio.timeout(3 * settings.console.progress_interval_s + 2):
            while app[STREAMS].open:
                await asyncio.sleep(0.05)
    finally:
        await http.close()
        await runner.cleanup()
