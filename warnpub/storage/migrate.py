"""Schema migrations (Alembic), run from the package so an installed wheel can upgrade itself."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from warnpub.storage.engine import make_engine


def alembic_config(url: str, schema: str = "") -> Config:
    cfg = Config()
    cfg.attributes["schema"] = schema
    cfg.set_main_option("script_location", str(resources.files("warnpub.storage") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head", *, schema: str = "") -> None:
    """Bring the schema to ``revision``. Idempotent: at head, it does nothing. Not in a running loop."""
    command.upgrade(alembic_config(url, schema), revision)


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def is_current(url: str, schema: str = "") -> bool:
    engine = make_engine(url, schema=schema)
    try:
        return await current_revision(engine) == head_revision(url)
    finally:
        await engine.dispose()
