"""Where each claimed delivery goes: read at send time, so a corrected number is used at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Device, Person
from warnpub.dispatch.outbox import Claimed
from warnpub.lastkm.tables import Notice


async def addresses(
    session: AsyncSession, rows: Sequence[Claimed], partners: Mapping[int, str] | None = None
) -> dict[int, str | None]:
    """delivery id → address (E.164 number, e-mail, device address, partner instance name);
    None when there is none. ``partners``: partner id → instance name (see outbox.claim)."""
    person_ids = {r.target_id for r in rows if r.target_kind == "person"}
    device_ids = {r.target_id for r in rows if r.target_kind == "device"}
    people: dict[int, tuple[str | None, str | None, int | None]] = {}
    if person_ids:
        q = select(Person.id, Person.phone, Person.email, Person.relay_contact_id).where(
            Person.id.in_(person_ids)
        )
        people = {
            pid: (phone, email, relay)
            for pid, phone, email, relay in (await session.execute(q)).all()
        }
    relay_phones: dict[int, str | None] = {}
    relay_ids = {p[2] for p in people.values() if p[2] is not None}
    if relay_ids and any(r.channel == "relay" for r in rows):
        q = select(Person.id, Person.phone).where(Person.id.in_(relay_ids))
        relay_phones = dict((await session.execute(q)).all())
    notice_ids = {r.target_id for r in rows if r.target_kind == "notice"}
    notices: dict[int, str] = {}
    if notice_ids:
        q = select(Notice.id, Notice.address).where(Notice.id.in_(notice_ids))
        notices = dict((await session.execute(q)).all())
    devices: dict[int, str] = {}
    if device_ids:
        q = select(Device.id, Device.address).where(Device.id.in_(device_ids))
        devices = dict((await session.execute(q)).all())
    out: dict[int, str | None] = {}
    for r in rows:
        if r.target_kind == "partner":
            out[r.id] = (partners or {}).get(r.target_id)
            continue
        if r.target_kind == "device":
            out[r.id] = devices.get(r.target_id)
            continue
        if r.target_kind == "notice":
            out[r.id] = notices.get(r.target_id)
            continue
        phone, email, relay = people.get(r.target_id, (None, None, None))
        if r.channel in ("sms", "voice"):
            out[r.id] = phone
        elif r.channel == "email":
            out[r.id] = email
        elif r.channel == "relay":
            out[r.id] = relay_phones.get(relay) if relay is not None else None
        else:
            out[r.id] = None
    return out
