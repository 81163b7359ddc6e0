"""What the benchmarks share: the generated population, a city-wide warning, agency QX, the
operator on duty.

Run from the checkout (``python bench/<name>.py``): this directory is then on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.auth import agencies, operators
from warnpub.clock import utcnow
from warnpub.config import Settings

CITY = "320481000000"


def generate(db_path: Path, people: int, seed: int) -> float:
    """Migrate ``db_path`` and generate ``people`` with `warnpub demo-data` in a subprocess (so
    its memory does not count against the benchmark); returns the seconds it took."""
    env = {**os.environ, "WARNPUB_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}"}
    started = time.perf_counter()
    for args in (["db", "upgrade"], ["demo-data", "--people", str(people), "--seed", str(seed)]):
        subprocess.run(
            [sys.executable, "-m", "warnpub", *args], env=env, check=True, stdout=subprocess.DEVNULL
        )
    return time.perf_counter() - started


def city_alert(
    identifier: str,
    *,
    severity: str,
    headline: str,
    description: str,
    instruction: str,
    hours: float,
) -> dict[str, Any]:
    """A rainstorm warning for the whole city (Liyang, 320481) in warnpub's JSON form."""
    sent = utcnow().replace(microsecond=0)
    return {
        "identifier": identifier,
        "sent": sent.isoformat(),
        "status": "Actual",
        "msg_type": "Alert",
        "scope": "Public",
        "infos": [
            {
                "language": "zh-CN",
                "categories": ["Met"],
                "event": "暴雨",
                "urgency": "Immediate",
                "severity": severity,
                "certainty": "Likely",
                "expires": (sent + timedelta(hours=hours)).isoformat(),
                "sender_name": "溧阳市气象局",
                "headline": headline,
                "description": description,
                "instruction": instruction,
                "areas": [
                    {
                        "area_desc": "溧阳市",
                        "geocodes": [{"value_name": "CPEAS Geographic Code", "value": CITY}],
                    }
                ],
            }
        ],
    }


def yellow_rainstorm(identifier: str, *, hours: float = 24) -> dict[str, Any]:
    """The city-wide yellow rainstorm warning the benchmarks send."""
    return city_alert(
        identifier,
        severity="Moderate",
        headline="溧阳市气象台发布暴雨黄色预警",
        description="预计未来6小时内我市将出现50毫米以上降水，局地伴有雷电和短时大风。",
        instruction="减少外出，远离河道和低洼地带。",
        hours=hours,
    )


async def add_duty_operator(session: AsyncSession, minutes: int) -> str:
    """Operator duty1; a bearer token of theirs valid ``minutes``."""
    op = await operators.add_operator(
        session,
        username="duty1",
        display_name="duty1",
        role="operator",
        password="bench password 1",
        actor="bench",
    )
    return await operators.issue_operator_token(session, op, minutes, "bench")


async def add_weather_bureau(session: AsyncSession, settings: Settings) -> str:
    """Agency QX (the city's weather bureau), scoped to rainstorms over the city; its API key."""
    qx = await agencies.add_agency(
        session,
        settings,
        code="QX",
        name="溧阳市气象局",
        sender="qx@320481",
        hazards=["rainstorm"],
        areas=[CITY],
        actor="bench",
    )
    return qx.key.key
