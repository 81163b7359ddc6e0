"""A small county with known outcomes: people, devices and delivery rows written with chosen
states and times, so that every number of the report can be asserted exactly.

Received at T0, approved at T0 + 1 min. Liyang's areas; two villages of 社渚镇 and one of 戴埠镇.

| target | tier | where | needs | deliveries | outcome |
| --- | --- | --- | --- | --- | --- |
| P1 elderly alone, no phone | 1 special | 社渚村 | 1+8 | relay delivered T+5m, ack T+6m | reached, ack |
| P2 hearing impaired | 1 special | 社渚村 | 2 | sms failed unsent T+1m; relay sent T+12m, no receipt yet | pending |
| P3 visually impaired | 1 special | 戴北村 | 4 | voice failed unsent; relay sent, expired | unreached |
| P4 village contact | 2 contacts | 下西村 | - | sms delivered T+3m, ack T+8m (asked) | reached, ack |
| P5 village contact | 2 contacts | 戴北村 | - | sms sent, expired (asked) | unreached |
| P6 rural resident | 3 rural | 社渚村 | - | sms delivered T+4m; email sent (no receipt) | reached |
| P7 rural resident | 3 rural | 戴北村 | - | email sent (no receipt) | unreached |
| P8 rural resident | 3 rural | 戴北村 | - | sms delivered T+10m | reached |
| D1 loudspeaker | 0 devices | 社渚村 | - | speaker sent T+1m30s, delivered T+2m | reached |
| D2 notice board | 0 devices | 戴北村 | - | board sent, expired | unreached |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from tests.factories import World, seed
from warnpub.audiences.tables import Area, Device, Person
from warnpub.config import Settings
from warnpub.lastkm.tables import VisitTask
from warnpub.storage.engine import Database
from warnpub.storage.tables import Agency, Delivery, WarningRecord

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
APPROVED = T0 + timedelta(minutes=1)
V1 = "320481116200"  # 社渚村
V1B = "320481116201"  # 下西村
V2 = "320481103206"  # 戴北村
SHEZHU = "320481116000"
DAIBU = "320481103000"
P3_PHONE = "+8613912345678"


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclass
class County:
    world: World
    warning_id: str
    people: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)


async def build(
    db: Database,
    settings: Settings,
    *,
    status: str = "Actual",
    level: str = "orange",
    state: str = "dispatching",
) -> County:
    world = await seed(db, settings)
    county = County(world, "")
    async with db.session() as s:
        # Rural villages, so that the tiers below are the ones planning would choose.
        await s.execute(update(Area).where(Area.code.in_([V1, V1B, V2])).values(urban_rural="220"))
        agency_id = (await s.execute(select(Agency.id).where(Agency.code == "QX"))).scalar_one()
        warning = WarningRecord(
            agency_id=agency_id,
            sender="qx@320481",
            identifier=f"report-test-{status}",
            sent=T0,
            status=status,
            msg_type="Alert",
            scope="Public",
            level=level,
            level_rank=("red", "orange", "yellow", "blue").index(level),
            hazard="rainstorm",
            headline="暴雨橙色预警",
            state=state,
            content_hash="0" * 64,
            created_at=T0,
            updated_at=T0,
            decided_at=None if state in ("pending", "rejected") else APPROVED,
            planned_at=m(1.2),
        )
        s.add(warning)
        p5 = Person(name="联络员五", area_code=V2, role="village_contact", phone="+8613900000005")
        s.add(p5)
        await s.flush()
        people = {
            "P1": Person(name="老人一", area_code=V1, needs=1 | 8),
            "P2": Person(name="听障二", area_code=V1, needs=2, phone="+8613900000002"),
            "P3": Person(
                name="视障三", area_code=V2, needs=4, phone=P3_PHONE, relay_contact_id=p5.id
            ),
            "P4": Person(
                name="联络员四", area_code=V1B, role="village_contact", phone="+8613900000004"
            ),
            "P6": Person(
                name="村民六", area_code=V1, phone="+8613900000006", email="six@example.cn"
            ),
            "P7": Person(name="村民七", area_code=V2, email="seven@example.cn"),
            "P8": Person(name="村民八", area_code=V2, phone="+8613900000008"),
        }
        s.add_all(people.values())
        devices = {
            "D1": Device(kind="speaker_group", name="社渚村广播", area_code=V1, address="spk/v1"),
            "D2": Device(
                kind="board_digital", name="戴北村公告屏", area_code=V2, address="board-v2"
            ),
        }
        s.add_all(devices.values())
        await s.flush()
        county.warning_id = warning.id
        county.people = {k: p.id for k, p in people.items()} | {"P5": p5.id}
        county.devices = {k: d.id for k, d in devices.items()}
        pid, did = county.people, county.devices

        def row(kind: str, target: int, channel: str, tier: int, area: str, **kw: Any) -> Delivery:
            return Delivery(
                warning_id=warning.id,
                target_kind=kind,
                target_id=target,
                channel=channel,
                tier=tier,
                priority=tier * 10 + 1,
                area_code=area,
                next_attempt_at=m(1.2),
                created_at=m(1.2),
                **kw,
            )

        s.add_all(
            [
                row("person", pid["P1"], "relay", 1, V1, state="delivered", sent_at=m(4),
                    final_at=m(5), acknowledged_at=m(6)),
                row("person", pid["P2"], "sms", 1, V1, state="failed", final_at=m(1),
                    last_error="gateway refused the number"),
                row("person", pid["P2"], "relay", 1, V1, stage=1, state="sent", sent_at=m(12)),
                row("person", pid["P3"], "voice", 1, V2, state="failed", final_at=m(3),
                    last_error=f"number {P3_PHONE} unreachable"),
                row("person", pid["P3"], "relay", 1, V2, stage=1, state="expired", sent_at=m(10),
                    final_at=m(70), last_error="no delivery receipt in time"),
                row("person", pid["P4"], "sms", 2, V1B, state="delivered", sent_at=m(2.5),
                    final_at=m(3), acknowledged_at=m(8), ack_required=True),
                row("person", pid["P5"], "sms", 2, V2, state="expired", sent_at=m(2.5),
                    final_at=m(62.5), ack_required=True, last_error="no delivery receipt in time"),
                row("person", pid["P6"], "sms", 3, V1, state="delivered", sent_at=m(3),
                    final_at=m(4)),
                row("person", pid["P6"], "email", 3, V1, state="sent", sent_at=m(3), final_at=m(3)),
                row("person", pid["P7"], "email", 3, V2, state="sent", sent_at=m(3), final_at=m(3)),
                row("person", pid["P8"], "sms", 3, V2, state="delivered", sent_at=m(3),
                    final_at=m(10)),
                row("device", did["D1"], "speaker", 0, V1, state="delivered", sent_at=m(1.5),
                    final_at=m(2)),
                row("device", did["D2"], "board", 0, V2, state="expired", sent_at=m(1.5),
                    final_at=m(61.5), last_error="no delivery receipt in time"),
            ]
        )  # fmt: skip
    return county


async def add_visit(session: Any, county: County) -> None:
    """P3 (视障三, visually impaired) on her village contact P5's visit list, linked to her
    relay delivery (the privacy and forget tests)."""
    p3 = county.people["P3"]
    relay = (
        await session.execute(
            select(Delivery.id).where(Delivery.target_id == p3, Delivery.channel == "relay")
        )
    ).scalar_one()
    session.add(
        VisitTask(
            warning_id=county.warning_id,
            person_id=p3,
            contact_id=county.people["P5"],
            number=1,
            area_code=V2,
            needs=4,
            delivery_id=relay,
        )
    )
