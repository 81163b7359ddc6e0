"""Screenshots of the operator console, for the README.

Starts warnpub on 127.0.0.1 (a fresh SQLite database in a temporary folder) with the gateway
simulator and a generated county of a few hundred people (Liyang's areas, the weather bureau,
a duty officer and a supervisor), submits four warnings through the real API, and drives
headless Chromium (Debian package ``chromium``) with Playwright for Python through the console:

    docs/img/console-queue.png          the review queue (1366×768)
    docs/img/console-warning.png        an orange warning while it is being sent (1366×768)
    docs/img/console-report.png         its report once sending is complete (1366×768)
    docs/img/console-import.png         a roster dry run with a bad row (1366×768)
    docs/img/console-phone.png          a red warning waiting for review, on a phone (390×844)

The orange warning is approved in the browser by two different people (duty officer, then
supervisor), as four eyes require. The simulator is slowed down so that the warning page can
be caught while the live progress is still moving.

Run from the checkout:  .venv/bin/python docs/console_screenshots.py [--chromium PATH] [--keep]
Chinese text needs a CJK font (Debian: fonts-noto-cjk). Playwright's own browsers are not used.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from warnpub.api.app import create_app  # noqa: E402
from warnpub.audiences.areas import liyang_csv, load_areas  # noqa: E402
from warnpub.audiences.demo_data import DemoOptions, generate  # noqa: E402
from warnpub.auth import agencies, operators  # noqa: E402
from warnpub.channels.registry import build_channels  # noqa: E402
from warnpub.clock import new_id, utcnow  # noqa: E402
from warnpub.config import Settings, load_settings  # noqa: E402
from warnpub.dispatch.dispatcher import Dispatcher  # noqa: E402
from warnpub.gatewaysim.app import create_sim_app  # noqa: E402
from warnpub.storage.engine import Database  # noqa: E402
from warnpub.storage.migrate import upgrade  # noqa: E402

BEIJING = timezone(timedelta(hours=8))
TOWN = "320481116000"  # 社渚镇
VILLAGE = "320481116200"  # 社渚村
CITY = "320481000000"  # 溧阳市
OUT = ROOT / "docs" / "img"
PASSWORD = "screenshots only"  # noqa: S105 (a throwaway database)
SECRET = "screenshots-callback-secret"  # noqa: S105
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking"]

WARNINGS: list[dict[str, Any]] = [
    {
        "severity": "Extreme",
        "event": "暴雨",
        "code": TOWN,
        "area": "社渚镇",
        "headline": "溧阳市气象台发布暴雨红色预警信号",
        "description": "过去3小时社渚镇降雨量已达110毫米，预计未来3小时仍有100毫米以上强降雨，"
        "山区可能发生山洪、滑坡，低洼地带积水严重。",
        "instruction": "立即停止户外活动，低洼和山边住户马上转移到村委会安置点；不要涉水过河。",
    },
    {
        "severity": "Severe",
        "event": "大风",
        "code": CITY,
        "area": "溧阳市全境",
        "headline": "溧阳市气象台发布大风橙色预警信号",
        "description": "受强对流云团影响，今天夜间全市将出现10级以上阵风。",
        "instruction": "加固围板、棚架和广告牌，人员留在室内，远离临时搭建物。",
    },
    {
        "severity": "Moderate",
        "event": "雷电",
        "code": CITY,
        "area": "溧阳市全境",
        "headline": "溧阳市气象台发布雷电黄色预警信号",
        "description": "未来6小时全市有雷电活动，局地伴有短时强降水。",
        "instruction": "减少户外活动，不要在大树下避雨。",
    },
    {
        "severity": "Minor",
        "event": "大风",
        "code": TOWN,
        "area": "社渚镇",
        "headline": "溧阳市气象台发布大风蓝色预警信号",
        "description": "预计今天下午社渚镇将出现6级阵风。",
        "instruction": "注意关好门窗，收好晾晒物品。",
    },
]

# docs/roster-import.md: the header is row 1; row 3 has a phone number that cannot be one.
ROSTER = (
    "编号,姓名,手机号码,所属村/社区,特殊人群类别\n"
    f"SZ-001,周桂英,13861200001,{VILLAGE},独居老人\n"
    f"SZ-002,吴建国,1386120,{VILLAGE},\n"
    f"SZ-003,陈秀兰,0519-87216543,{VILLAGE},听障\n"
).encode()


def alert(w: dict[str, Any]) -> dict[str, Any]:
    sent = utcnow().astimezone(BEIJING).replace(microsecond=0)
    return {
        "identifier": f"demo-{new_id()}",
        "sent": sent.isoformat(),
        "status": "Actual",
        "msg_type": "Alert",
        "scope": "Public",
        "infos": [
            {
                "language": "zh-CN",
                "categories": ["Met"],
                "event": w["event"],
                "urgency": "Immediate",
                "severity": w["severity"],
                "certainty": "Likely",
                "sender_name": "溧阳市气象台",
                "expires": (sent + timedelta(hours=6)).isoformat(),
                "headline": w["headline"],
                "description": w["description"],
                "instruction": w["instruction"],
                "areas": [
                    {
                        "area_desc": w["area"],
                        "geocodes": [{"value_name": "CPEAS Geographic Code", "value": w["code"]}],
                    }
                ],
            }
        ],
    }


async def county(db: Database, settings: Settings) -> str:
    """Areas, the weather bureau, a duty officer and a supervisor, 600 people: the API key."""
    async with db.session() as s:
        await load_areas(s, liyang_csv())
        qx = await agencies.add_agency(
            s, settings, code="QX", name="溧阳市气象局", sender="qx@320481",
            hazards=["rainstorm", "gale", "thunderstorm"], areas=[CITY], actor="screenshots",
        )  # fmt: skip
        for username, name, role in (("duty1", "值班员 王敏", "operator"), ("chief", "值班主任 李强", "supervisor")):  # fmt: skip
            await operators.add_operator(
                s, username=username, display_name=name, role=role,
                password=PASSWORD, actor="screenshots",
            )  # fmt: skip
        await generate(s, DemoOptions(people=600, seed=11, villages_per_town=2))
    return qx.key.key


async def submit(base: str, key: str) -> list[str]:
    ids = []
    async with aiohttp.ClientSession(trust_env=False) as http:
        for w in WARNINGS:
            async with http.post(
                f"{base}/api/v1/warnings",
                json=alert(w),
                headers={"Authorization": f"Bearer {key}"},
            ) as r:
                body = await r.json()
                if r.status != 202 or body["state"] != "pending":
                    raise SystemExit(f"submitting {w['event']} failed: {r.status} {body}")
            ids.append(body["id"])
    return ids


async def sign_in(browser: Any, base: str, username: str, viewport: dict[str, int]) -> Any:
    ctx = await browser.new_context(base_url=base, viewport=viewport, locale="zh-CN")
    ctx.set_default_timeout(30_000)
    page = await ctx.new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto("/console/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    async with page.expect_navigation():
        await page.click("[data-testid=sign-in]")
    if not re.search(r"/console/?$", page.url):
        raise SystemExit(f"{username} could not sign in: still at {page.url}")
    return page


async def shot(page: Any, name: str, *, full_page: bool = False) -> None:
    out = OUT / name
    await page.screenshot(path=str(out), full_page=full_page)
    print(f"wrote {out.relative_to(ROOT)}")


async def approve(page: Any, base: str, warning_id: str) -> None:
    await page.goto(f"{base}/console/warnings/{warning_id}")
    async with page.expect_navigation():
        await page.click("[data-testid=approve]")


async def run_browser(chromium: str, base: str, ids: list[str]) -> None:
    from playwright.async_api import async_playwright

    red, orange = ids[0], ids[1]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        try:
            duty = await sign_in(browser, base, "duty1", DESKTOP)
            await duty.locator("[data-testid=queue-row]").first.wait_for()
            await asyncio.sleep(1.5)  # let the countdowns tick once
            await shot(duty, "console-queue.png")

            phone = await sign_in(browser, base, "duty1", PHONE)
            await phone.goto(f"{base}/console/warnings/{red}")
            await phone.locator("[data-testid=approve]").wait_for()
            await shot(phone, "console-phone.png")

            # Four eyes: the duty officer approves first, the supervisor releases.
            await approve(duty, base, orange)
            chief = await sign_in(browser, base, "chief", DESKTOP)
            await approve(chief, base, orange)
            await chief.locator("[data-testid=progress]").wait_for()
            await chief.wait_for_function(
                """() => {
                    const el = document.querySelector('[data-testid=progress-delivered]');
                    return el && parseInt(el.textContent.replace(/[^0-9]/g, ''), 10) >= 60;
                }""",
                timeout=60_000,
            )
            # The live progress is below the warning's details: bring it up, keeping the
            # heading with the level in view where the window allows.
            await chief.evaluate(
                """() => {
                    const el = document.querySelector('[data-testid=progress]');
                    const top = el.getBoundingClientRect().top + window.scrollY;
                    window.scrollTo(0, Math.max(0, top - 120));
                }"""
            )
            await shot(chief, "console-warning.png")
            await wait_completed(chief, base, orange)
            async with chief.expect_navigation():
                await chief.click("[data-testid=report-link]")
            await chief.locator("[data-testid=report]").wait_for()
            await shot(chief, "console-report.png")

            await duty.goto(f"{base}/console/audience/import")
            await duty.set_input_files(
                "input[name=roster]",
                files=[{"name": "社渚村花名册.csv", "mimeType": "text/csv", "buffer": ROSTER}],
            )
            async with duty.expect_navigation():
                await duty.click("[data-testid=dry-run]")
            await duty.locator("[data-testid=import-error]").first.wait_for()
            await shot(duty, "console-import.png")
        finally:
            await browser.close()


async def wait_completed(page: Any, base: str, warning_id: str, seconds: float = 180) -> None:
    """Reload the warning page until it says completed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        await asyncio.sleep(2)
        await page.goto(f"{base}/console/warnings/{warning_id}")
        state = await page.locator("[data-testid=state]").get_attribute("data-state")
        if state == "completed":
            return
    raise SystemExit(f"warning {warning_id} did not complete in {seconds} s")


async def main(chromium: str, keep: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="warnpub-console-shots-"))
    url = f"sqlite+aiosqlite:///{work / 'demo.db'}"
    runners: list[web.AppRunner] = []
    try:
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        try:
            settings = load_settings(environ={"WARNPUB_DATABASE_URL": url})
            # Red warnings from the weather bureau would take the green channel (released at
            # once); here they wait in the review queue like every other level.
            settings.review.green_channel = []
            key = await county(db, settings)
            # The gateway simulator, slowed down (35 messages a second, receipts after 1.5 s)
            # so that the warning page is caught while sending.
            sim = web.AppRunner(create_sim_app({"secret": SECRET}), access_log=None)
            await sim.setup()
            runners.append(sim)
            await web.TCPSite(sim, "127.0.0.1", 0).start()
            sim_url = f"http://127.0.0.1:{sim.addresses[0][1]}"
            settings.channels = {
                "sms": [
                    {
                        "name": "sim",
                        "adapter": "http_json",
                        "url": f"{sim_url}/sms",
                        "rate_per_s": 35,
                        "concurrency": 4,
                        "callback_secret": SECRET,
                        "timeout_s": 5,
                    }
                ]
            }
            dispatcher = Dispatcher(db, settings, build_channels(settings))
            app = web.AppRunner(
                create_app(settings, db, run_timers=True, dispatcher=dispatcher), access_log=None
            )
            await app.setup()
            runners.append(app)
            await web.TCPSite(app, "127.0.0.1", 0).start()
            base = f"http://127.0.0.1:{app.addresses[0][1]}"
            settings.server.public_url = base
            settings.render.full_text_url = f"{base}/w/{{id}}"
            async with (
                aiohttp.ClientSession(trust_env=False) as http,
                http.post(
                    f"{sim_url}/control",
                    json={
                        "callback_url": f"{base}/api/v1/callbacks/sms/sim/receipts",
                        "receipt_delay_ms": 1500,
                    },
                ) as r,
            ):
                r.raise_for_status()
            ids = await submit(base, key)
            OUT.mkdir(parents=True, exist_ok=True)
            await run_browser(chromium, base, ids)
            if keep:
                print(f"console: {base}/console/  (duty1 / chief, password {PASSWORD!r})")
                print("(serving until Ctrl-C)")
                await asyncio.Event().wait()
        finally:
            for runner in reversed(runners):
                await runner.cleanup()
            await db.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--keep", action="store_true", help="keep serving after the screenshots")
    args = parser.parse_args()
    asyncio.run(main(args.chromium, args.keep))
