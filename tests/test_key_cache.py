"""A valid agency key is remembered for a few seconds (warnpub.auth.key_cache): revoked in this
process it stops at once; revoked by another process, within ``api_key_cache_seconds``; unknown,
revoked and inactive agencies' keys are never remembered."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tests.factories import seed
from warnpub.auth import key_cache
from warnpub.auth.agencies import revoke_keys
from warnpub.clock import utcnow
from warnpub.storage.tables import Agency, AgencyKey

pytestmark = pytest.mark.postgres


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(key_cache, "_now", c)
    return c


@pytest.fixture
async def world(db, settings):
    return await seed(db, settings)


async def status(client, headers) -> int:
    return (await client.get("/api/v1/warnings", headers=headers)).status


async def revoke_elsewhere(db) -> None:
    """As another process would (the CLI while `serve` runs): straight in the database."""
    async with db.session() as s:
        await s.execute(update(AgencyKey).values(revoked_at=utcnow()))


async def test_a_key_revoked_in_this_process_stops_at_once(client, db, world, clock):
    assert await status(client, world.agency("QX")) == 200  # remembered now
    async with db.session() as s:
        await revoke_keys(s, "QX", actor="test")
    assert await status(client, world.agency("QX")) == 401


async def test_a_key_revoked_elsewhere_stops_within_the_cache_seconds(
    client, db, settings, world, clock
):
    assert settings.security.api_key_cache_seconds == 2
    assert await status(client, world.agency("QX")) == 200
    await revoke_elsewhere(db)
    clock.t += 1.9
    assert await status(client, world.agency("QX")) == 200  # not looked up: remembered
    clock.t += 0.2
    assert await status(client, world.agency("QX")) == 401  # looked up again
    clock.t += 10
    assert await status(client, world.agency("QX")) == 401  # and not remembered since


async def test_with_the_cache_off_every_request_looks_the_key_up(
    client, db, settings, world, clock
):
    settings.security.api_key_cache_seconds = 0
    assert await status(client, world.agency("QX")) == 200
    await revoke_elsewhere(db)
    assert await status(client, world.agency("QX")) == 401


async def test_an_inactive_agency_is_not_remembered(client, db, world, clock):
    async with db.session() as s:
        await s.execute(update(Agency).where(Agency.code == "QX").values(active=False))
    assert await status(client, world.agency("QX")) == 403
    async with db.session() as s:
        await s.execute(update(Agency).where(Agency.code == "QX").values(active=True))
    assert await status(client, world.agency("QX")) == 200


async def test_a_remembered_key_must_still_match_in_full(client, db, world, clock):
    headers = world.agency("QX")
    assert await status(client, headers) == 200
    key = headers["Authorization"].removeprefix("Bearer ")
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")  # same prefix
    assert await status(client, {"Authorization": f"Bearer {forged}"}) == 401
    assert await status(client, {"Authorization": "Bearer wpk_nope"}) == 401
    await revoke_elsewhere(db)  # the real key is still remembered: a forgery evicts nothing
    assert await status(client, headers) == 200


async def test_each_request_gets_its_own_agency_object(client, db, world, clock):
    assert await status(client, world.agency("QX")) == 200
    where = db.url + "#" + db.schema
    key = world.agency("QX")["Authorization"].removeprefix("Bearer ")
    first, second = key_cache.agency_for(where, key), key_cache.agency_for(where, key)
    assert first is not None and second is not None and first is not second
    assert first.code == "QX" and first.areas == second.areas and first.areas is not second.areas
