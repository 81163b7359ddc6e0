"""Rows and documents for tests, made through the real services (never by hand-written SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import Any

from warnpub.audiences.areas import liyang_csv, load_areas
from warnpub.auth import agencies, operators
from warnpub.clock import new_id, utcnow
from warnpub.config import Settings
from warnpub.storage.engine import Database

BEIJING = timezone(timedelta(hours=8))
PASSWORD = "correct horse battery"
TOWN_SHEZHU = "320481116000"  # 社渚镇
TOWN_DAIBU = "320481103000"  # 戴埠镇
VILLAGE_SHEZHU = "320481116200"  # 社渚村


@dataclass
class World:
    keys: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def agency(self, code: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[code]}"}

    def operator(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}


async def seed(db: Database, settings: Settings) -> World:
    """Liyang's areas; agency QX (weather, whole city), SL (flood, 社渚镇 only); four staff."""
    world = World()
    async with db.session() as s:
        await load_areas(s, liyang_csv())
        qx = await agencies.add_agency(
            s,
            settings,
            code="QX",
            name="溧阳市气象局",
            sender="qx@320481",
            hazards=["rainstorm", "gale"],
            areas=["320481000000"],
            actor="test",
        )
        sl = await agencies.add_agency(
            s,
            settings,
            code="SL",
            name="溧阳市水利局",
            sender="sl@320481",
            hazards=["flood"],
            areas=[TOWN_SHEZHU],
            actor="test",
        )
        world.keys = {"QX": qx.key.key, "SL": sl.key.key}
        for username, role in (
            ("duty1", "operator"),
            ("duty2", "operator"),
            ("chief", "supervisor"),
            ("root", "admin"),
        ):
            op = await operators.add_operator(
                s,
                username=username,
                display_name=username,
                role=role,
                password=PASSWORD,
                actor="test",
            )
            world.tokens[username] = await operators.issue_operator_token(s, op, 60, "test")
    return world


def alert_json(
    *,
    severity: str = "Moderate",
    event: str = "暴雨",
    code: str = TOWN_SHEZHU,
    hours: float = 6,
    msg_type: str = "Alert",
    references: list[str] | None = None,
    identifier: str | None = None,
    sender: str | None = None,
    status: str = "Actual",
    **info_extra: Any,
) -> dict[str, Any]:
    sent = utcnow().astimezone(BEIJING).replace(microsecond=0)
    doc: dict[str, Any] = {
        "identifier": identifier or f"test-{new_id()}",
        "sent": sent.isoformat(),
        "status": status,
        "msg_type": msg_type,
        "scope": "Public",
        "infos": [
            {
                "language": "zh-CN",
                "categories": ["Met"],
                "event": event,
                "urgency": "Immediate",
                "severity": severity,
                "certainty": "Likely",
                "expires": (sent + timedelta(hours=hours)).isoformat(),
                "headline": f"{event}预警",
                "description": "测试",
                "instruction": "注意防范",
                "areas": [
                    {
                        "area_desc": "测试区域",
                        "geocodes": [{"value_name": "CPEAS Geographic Code", "value": code}],
                    }
                ],
                **info_extra,
            }
        ],
    }
    if references is not None:
        doc["references"] = references
    if sender is not None:
        doc["sender"] = sender
    return doc


def cap_xml(
    *,
    identifier: str | None = None,
    sender: str = "qx@320481",
    severity: str = "Severe",
    event: str = "暴雨",
    code: str = TOWN_SHEZHU,
    msg_type: str = "Alert",
    references: str | None = None,
    hours: float = 6,
) -> bytes:
    sent = utcnow().astimezone(BEIJING).replace(microsecond=0)
    refs = f"<references>{references}</references>" if references else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier or f"cap-{new_id()}"}</identifier>
  <sender>{sender}</sender>
  <sent>{sent.isoformat()}</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>
  {refs}
  <info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>{event}</event>
    <urgency>Immediate</urgency>
    <severity>{severity}</severity>
    <certainty>Likely</certainty>
    <expires>{(sent + timedelta(hours=hours)).isoformat()}</expires>
    <headline>{event}预警</headline>
    <area>
      <areaDesc>社渚镇</areaDesc>
      <geocode><valueName>CPEAS Geographic Code</valueName><value>{code}</value></geocode>
    </area>
  </info>
</alert>
""".encode()
