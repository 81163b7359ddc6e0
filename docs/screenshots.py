"""Screenshots of a digital board and a printed notice, for docs/boards.md.

Starts warnpub on 127.0.0.1 (a fresh SQLite database in a temporary folder) with a small demo
county: Liyang's areas, the weather bureau, two duty officers, a digital and a paper notice
board in 社渚村, and three warnings released through the real API. Then headless Chromium
(Debian package ``chromium``) opens the board page and the A4 notice and writes

    docs/img/board.png    the board page at 1920×1080
    docs/img/notice.png   the notice as it looks before printing (A4 sheet)

Run from the checkout:  .venv/bin/python docs/screenshots.py [--chromium PATH] [--keep]
Chinese text needs a CJK font (Debian: fonts-noto-cjk).
"""

from __future__ import annotations

import argparse
import asyncio
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
from warnpub.audiences.tables import Device  # noqa: E402
from warnpub.auth import agencies, operators  # noqa: E402
from warnpub.boards.tokens import issue  # noqa: E402
from warnpub.clock import new_id, utcnow  # noqa: E402
from warnpub.config import load_settings  # noqa: E402
from warnpub.storage.engine import Database  # noqa: E402
from warnpub.storage.migrate import upgrade  # noqa: E402

BEIJING = timezone(timedelta(hours=8))
TOWN = "320481116000"  # 社渚镇
VILLAGE = "320481116200"  # 社渚村
CITY = "320481000000"  # 溧阳市
OUT = ROOT / "docs" / "img"

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
]


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


async def county(db: Database, settings: Any) -> tuple[str, dict[str, str], dict[str, str]]:
    """Areas, the weather bureau, two duty officers and two boards: (API key, staff, tokens)."""
    async with db.session() as s:
        await load_areas(s, liyang_csv())
        qx = await agencies.add_agency(
            s, settings, code="QX", name="溧阳市气象局", sender="qx@320481",
            hazards=["rainstorm", "gale", "thunderstorm"], areas=[CITY], actor="screenshots",
        )  # fmt: skip
        staff = {}
        for username, role in (("duty1", "operator"), ("chief", "supervisor")):
            op = await operators.add_operator(
                s, username=username, display_name=username, role=role,
                password=new_id(), actor="screenshots",
            )  # fmt: skip
            staff[username] = await operators.issue_operator_token(s, op, 60, "screenshots")
        tokens = {}
        for address, kind, name in (
            ("board-320481116200", "board_digital", "社渚村村委会 电子显示屏"),
            ("paper-320481116200", "board_paper", "社渚村公告栏"),
        ):
            device = Device(kind=kind, name=name, area_code=VILLAGE, address=address)
            s.add(device)
            await s.flush()
            tokens[address] = (await issue(s, device, "screenshots")).token
    return qx.key.key, staff, tokens


async def release(base: str, key: str, staff: dict[str, str]) -> list[str]:
    ids = []
    async with aiohttp.ClientSession() as http:
        for w in WARNINGS:
            async with http.post(
                f"{base}/api/v1/warnings",
                json=alert(w),
                headers={"Authorization": f"Bearer {key}"},
            ) as r:
                body = await r.json()
                if r.status != 202:
                    raise SystemExit(f"submitting {w['event']} failed: {body}")
            for username in ("duty1", "chief"):
                if body["state"] != "pending":
                    break
                async with http.post(
                    f"{base}/api/v1/warnings/{body['id']}/approve",
                    headers={"Authorization": f"Bearer {staff[username]}"},
                ) as r:
                    body = await r.json()
                    if r.status != 200:
                        raise SystemExit(f"approving {w['event']} failed: {body}")
            ids.append(body["id"])
    return ids


async def shoot(chromium: str, url: str, out: Path, size: str, profile: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--window-size={size}",
        f"--screenshot={out}",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    if proc.returncode != 0 or not await asyncio.to_thread(out.exists):
        raise SystemExit(f"chromium failed for {url}:\n{err.decode(errors='replace')[-2000:]}")
    print(f"wrote {out.relative_to(ROOT)}")


async def main(chromium: str, keep: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="warnpub-shots-"))
    url = f"sqlite+aiosqlite:///{work / 'demo.db'}"
    try:
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        runner: web.AppRunner | None = None
        try:
            settings = load_settings(environ={"WARNPUB_DATABASE_URL": url})
            key, staff, tokens = await county(db, settings)
            runner = web.AppRunner(create_app(settings, db, run_timers=False), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            # The QR code on the notice leads to this server's public page.
            settings.server.public_url = base
            settings.render.full_text_url = f"{base}/w/{{id}}"
            ids = await release(base, key, staff)
            OUT.mkdir(parents=True, exist_ok=True)
            board = f"{base}/boards/board-320481116200?token={tokens['board-320481116200']}"
            notice = f"{base}/notices/{ids[0]}/{VILLAGE}?token={staff['duty1']}"
            await shoot(chromium, board, OUT / "board.png", "1920,1080", work / "profile-board")
            await shoot(chromium, notice, OUT / "notice.png", "900,1200", work / "profile-notice")
            if keep:
                print(f"board:  {board}\nnotice: {notice}\n(serving until Ctrl-C)")
                await asyncio.Event().wait()
        finally:
            if runner is not None:
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
