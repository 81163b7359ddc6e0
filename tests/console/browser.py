"""Browser fixtures for the operator console: a real warnpub server on 127.0.0.1 (the app with
its timers and dispatcher, the gateway simulator, a small generated population) and headless
Debian Chromium driven by Playwright for Python.

Chromium is ``/usr/bin/chromium`` (Debian package ``chromium``, installed by ``.ci/run``);
Playwright's own browser downloads are never used. Without that binary, or without the
``playwright`` package, the browser tests skip with the reason — except under ``CI=true``,
where they fail, so CI cannot pass by silently not running them.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from tests.dispatch.conftest import Sim, sms_config, start_sim
from tests.factories import PASSWORD, World, alert_json, seed
from warnpub.api.app import create_app
from warnpub.audiences.demo_data import DemoOptions, generate
from warnpub.channels.registry import build_channels
from warnpub.config import Settings
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.storage.engine import Database

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

CHROMIUM = os.environ.get("WARNPUB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
# Playwright's default is 30 s per action; a console page answers in well under a second.
ACTION_TIMEOUT_MS = 15_000


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        return f"playwright for Python is not installed ({exc}); pip install -e '.[test]'"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium fonts-noto-cjk)"
    return None


def need_browser() -> None:
    problem = browser_problem()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"{problem}; CI needs it (see .ci/run)")
    pytest.skip(problem)


@dataclass
class Console:
    """The running server and what the tests need to know about it."""

    base: str
    db: Database
    settings: Settings
    world: World
    sim: Sim
    http: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    async def submit(self, **kw: Any) -> dict[str, Any]:
        """A warning from agency QX through the real intake API; pending unless yellow/blue…"""
        async with self.http.post(
            self.url("/api/v1/warnings"), json=alert_json(**kw), headers=self.world.agency("QX")
        ) as r:
            body = await r.json()
            assert r.status == 202, body
            return body

    async def warning(self, warning_id: str) -> dict[str, Any]:
        async with self.http.get(
            self.url(f"/api/v1/warnings/{warning_id}"), headers=self.world.operator("root")
        ) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def wait_state(self, warning_id: str, state: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = await self.warning(warning_id)
            if body["state"] == state:
                return body
            await asyncio.sleep(0.2)
        raise AssertionError(
            f"warning {warning_id} is {body.get('state')}, not {state}, after {timeout} s"
        )


async def start_console(
    settings: Settings, db: Database, *, people: int = 300, **sim_knobs: Any
) -> tuple[Console, Callable[[], Awaitable[None]]]:
    """Seed (tests.factories.seed + a generated population), start the simulator and the app
    on free loopback ports; return the console and its shutdown."""
    world = await seed(db, settings)
    async with db.session() as s:
        await generate(s, DemoOptions(people=people, seed=7, villages_per_town=2))
    sim, sim_runner = await start_sim()
    # Red warnings from QX would take the green channel (released at once); the console
    # tests want them in the review queue, waiting for two approvers.
    settings.review.green_channel = []
    settings.channels = {"sms": [sms_config(sim, "sim0")]}
    settings.dispatch.receipt_timeout_s = 30
    dispatcher = Dispatcher(db, settings, build_channels(settings))
    app = create_app(settings, db, run_timers=True, dispatcher=dispatcher)
    # Open event streams end on shutdown (warnpub/console/streams.py); the short timeout is
    # only a safety net so that no other handler holds the end of a test for long.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    settings.server.public_url = base
    await sim.control(callback_url=f"{base}/api/v1/callbacks/sms/sim0/receipts", **sim_knobs)
    http = aiohttp.ClientSession(trust_env=False)

    async def stop() -> None:
        await http.close()
        await runner.cleanup()
        await sim_runner.cleanup()

    return Console(base, db, settings, world, sim, http), stop


@pytest.fixture
async def console(settings: Settings, db: Database) -> AsyncIterator[Console]:
    need_browser()
    # Receipts come 0.8 s after each message is accepted: the warning page is open before the
    # first delivery, so the delivered count it shows can only have moved by live updates.
    c, stop = await start_console(settings, db, receipt_delay_ms=800)
    try:
        yield c
    finally:
        await stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    need_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


async def new_page(
    browser: Browser, console: Console, viewport: dict[str, int] = DESKTOP, **context: Any
) -> tuple[BrowserContext, Page]:
    """A fresh browser context (its own cookies: one signed-in operator) and a page in it."""
    ctx = await browser.new_context(
        base_url=console.base, viewport=viewport, locale="zh-CN", **context
    )
    ctx.set_default_timeout(ACTION_TIMEOUT_MS)
    page = await ctx.new_page()
    # A confirmation dialog (approve / cancel "are you sure?") is answered yes.
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    return ctx, page


async def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    """Sign in through the form; ends on the review queue."""
    await page.goto("/console/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    async with page.expect_navigation():
        await page.click("[data-testid=sign-in]")
    await page.wait_for_url(re.compile(r"/console/?$"))


async def signed_in(
    browser: Browser, console: Console, username: str, viewport: dict[str, int] = DESKTOP
) -> tuple[BrowserContext, Page]:
    ctx, page = await new_page(browser, console, viewport)
    await sign_in(page, username)
    return ctx, page


def number_in(text: str) -> int:
    """The count in a text such as ``已送达 1,234`` or ``1 234 delivered``."""
    digits = re.sub(r"[^0-9]", "", text)
    assert digits, f"no number in {text!r}"
    return int(digits)


async def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the viewport (0 = no horizontal scroll)."""
    return await page.evaluate(
        "() => Math.max(0, document.documentElement.scrollWidth - window.innerWidth)"
    )
