"""Alembic environment: runs migrations on the async engine named by the caller."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import warnpub.audiences.tables
import warnpub.storage.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from warnpub.storage.engine import make_engine

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str, schema: str) -> None:
    engine = make_engine(url, schema=schema)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(
        _run_async(
            config.get_main_option("sqlalchemy.url") or "", config.attributes.get("schema", "")
        )
    )
