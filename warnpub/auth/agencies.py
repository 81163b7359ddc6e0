"""Agencies (发布责任单位): who may warn about what, where; their API keys."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.areas import unknown_codes
from warnpub.audiences.divisions import covers, is_division_code
from warnpub.audit.log import append as audit
from warnpub.auth import key_cache
from warnpub.auth.secrets import IssuedKey, issue_api_key
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.problems import FieldError, conflict, invalid, not_found
from warnpub.storage.tables import Agency, AgencyKey

_CODE = re.compile(r"^[A-Z][A-Z0-9_-]{0,31}$")


@dataclass(frozen=True, slots=True)
class NewAgency:
    agency: Agency
    key: IssuedKey


async def add_agency(
    session: AsyncSession,
    settings: Settings,
    *,
    code: str,
    name: str,
    sender: str,
    hazards: list[str],
    areas: list[str],
    actor: str,
) -> NewAgency:
    errors: list[FieldError] = []
    if not _CODE.match(code):
        errors.append(
            FieldError(
                "code",
                "use 1-32 capital letters, digits, '-' or '_', starting with a letter (e.g. QX)",
            )
        )
    if not name.strip():
        errors.append(FieldError("name", "give the agency's name"))
    if not sender.strip():
        errors.append(FieldError("sender", "give the CAP sender this agency uses (e.g. qx@320481)"))
    bad_h = [h for h in hazards if h not in settings.cap.hazards]
    if not hazards or bad_h:
        errors.append(
            FieldError(
                "hazards",
                f"unknown hazard types {bad_h}; known: {', '.join(settings.cap.hazards)}"
                if bad_h
                else "give at least one hazard type",
            )
        )
    bad_a = [a for a in areas if not is_division_code(a)]
    if not areas or bad_a:
        errors.append(
            FieldError(
                "areas",
                f"write division codes out to 12 digits: {bad_a}"
                if bad_a
                else "give at least one area code",
            )
        )
    elif missing := await unknown_codes(session, areas):
        errors.append(
            FieldError("areas", f"unknown area codes {missing}; load the area tree first")
        )
    if errors:
        raise invalid("the agency cannot be added", errors)
    clash = (
        (
            await session.execute(
                select(Agency).where((Agency.code == code) | (Agency.sender == sender))
            )
        )
        .scalars()
        .first()
    )
    if clash is not None:
        raise conflict(f"an agency with code {clash.code} or sender {clash.sender} already exists")
    agency = Agency(
        code=code,
        name=name.strip(),
        sender=sender.strip(),
        hazards=sorted(set(hazards)),
        areas=sorted(set(areas)),
    )
    session.add(agency)
    await session.flush()
    key = await _new_key(session, agency, actor)
    await audit(
        session,
        actor,
        "agency.added",
        f"agency:{code}",
        name=agency.name,
        sender=agency.sender,
        hazards=agency.hazards,
        areas=agency.areas,
    )
    return NewAgency(agency, key)


async def _new_key(session: AsyncSession, agency: Agency, actor: str) -> IssuedKey:
    key = issue_api_key()
    assert agency.id is not None
    session.add(AgencyKey(agency_id=agency.id, prefix=key.prefix, key_hash=key.key_hash))
    await audit(session, actor, "agency.key_issued", f"agency:{agency.code}", key_prefix=key.prefix)
    return key


async def get_agency(session: AsyncSession, code: str) -> Agency:
    agency = (await session.execute(select(Agency).where(Agency.code == code))).scalars().first()
    if agency is None:
        raise not_found(f"no agency with code {code!r}")
    return agency


async def rotate_key(
    session: AsyncSession, code: str, *, actor: str, revoke_old: bool
) -> IssuedKey:
    """Issue a new key; with ``revoke_old`` every earlier key stops working at once."""
    agency = await get_agency(session, code)
    if revoke_old:
        await revoke_keys(session, code, actor=actor)
    return await _new_key(session, agency, actor)


async def revoke_keys(
    session: AsyncSession, code: str, *, actor: str, prefix: str | None = None
) -> int:
    """Revoke one key (by prefix) or all keys of an agency. Returns how many were revoked."""
    agency = await get_agency(session, code)
    key_cache.forget_when_committed(session)
    stmt = update(AgencyKey).where(AgencyKey.agency_id == agency.id, AgencyKey.revoked_at.is_(None))
    if prefix is not None:
        stmt = stmt.where(AgencyKey.prefix == prefix)
    count = (await session.execute(stmt.values(revoked_at=utcnow()))).rowcount or 0
    if prefix is not None and count == 0:
        raise not_found(f"agency {code} has no live key with prefix {prefix}")
    await audit(
        session,
        actor,
        "agency.key_revoked",
        f"agency:{code}",
        key_prefix=prefix or "*",
        count=count,
    )
    return count


async def list_agencies(session: AsyncSession) -> list[tuple[Agency, int]]:
    """Every agency with its number of live keys."""
    agencies = (await session.execute(select(Agency).order_by(Agency.code))).scalars().all()
    live: dict[int, int] = {}
    for key in (
        await session.execute(select(AgencyKey).where(AgencyKey.revoked_at.is_(None)))
    ).scalars():
        live[key.agency_id] = live.get(key.agency_id, 0) + 1
    return [(a, live.get(a.id or 0, 0)) for a in agencies]


def area_in_scope(agency: Agency, code: str) -> bool:
    return any(covers(scope, code) for scope in agency.areas)
