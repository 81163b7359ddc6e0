"""The Alembic migrations create exactly the schema the models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import warnpub.audiences.tables
import warnpub.storage.tables  # noqa: F401
from warnpub.storage.migrate import head_revision, upgrade

pytestmark = pytest.mark.postgres


async def test_migrated_schema_matches_models(db):
    def diff(connection):
        ctx = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(ctx, SQLModel.metadata)

    async with db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == [], f"models and migrations differ; add a migration: {changes}"


async def test_upgrade_is_idempotent(settings, db):
    import asyncio

    await asyncio.to_thread(upgrade, settings.database.url, schema=settings.database.schema_name)
    from warnpub.storage.migrate import current_revision

    assert await current_revision(db.engine) == head_revision(settings.database.url)
