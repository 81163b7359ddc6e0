"""Scale-out tests run on the real PostgreSQL only: ``settings`` and ``db`` here replace the
root fixtures (no SQLite variant), on the session's private migrated schema. Without
PostgreSQL they skip, and with CI=true they fail (the root ``pg_schema`` fixture decides)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.conftest import PG_URL, _truncate_pg
from tests.factories import World, alert_json, seed
from warnpub.api.app import create_app
from warnpub.audiences.demo_data import DemoOptions, generate
from warnpub.config import Settings, load_settings
from warnpub.storage.engine import Database


@pytest.fixture
def settings(pg_schema: str) -> Settings:
    return load_settings(
        environ={
            "WARNPUB_DATABASE_URL": PG_URL,
            "WARNPUB_DATABASE_SCHEMA_NAME": pg_schema,
            "WARNPUB_SERVER_PUBLIC_URL": "http://127.0.0.1:8080",
            "WARNPUB_LOGGING_LEVEL": "WARNING",
        }
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database.url, schema=settings.database.schema_name)
    await _truncate_pg(database)
    yield database
    await database.dispose()


async def county(settings: Settings, db: Database, people: int = 60) -> tuple[World, TestClient]:
    """Liyang's areas and staff, a small population, and the API without a dispatcher (the
    process that approves is not the one that sends)."""
    world = await seed(db, settings)
    async with db.session() as s:
        await generate(s, DemoOptions(people=people, seed=7, villages_per_town=2))
    client = TestClient(TestServer(create_app(settings, db, run_timers=False), host="127.0.0.1"))
    await client.start_server()
    return world, client


async def release(client: TestClient, world: World, **alert: Any) -> str:
    r = await client.post("/api/v1/warnings", json=alert_json(**alert), headers=world.agency("QX"))
    assert r.status == 202, await r.text()
    warning_id = str((await r.json())["id"])
    r = await client.post(f"/api/v1/warnings/{warning_id}/approve", headers=world.operator("duty1"))
    assert r.status == 200, await r.text()
    return warning_id


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)
    return found
