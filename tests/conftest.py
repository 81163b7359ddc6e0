"""Shared fixtures: a migrated database per test (SQLite, and PostgreSQL for marked tests),
settings pointing at it, and an HTTP client for the real aiohttp application on loopback."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from warnpub.api.app import create_app
from warnpub.config import Settings, load_settings
from warnpub.storage.engine import Database
from warnpub.storage.migrate import upgrade

PG_URL = os.environ.get("WARNPUB_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Copies of ../shared/data kept in the repository (sources and licences in tests/data/README.md).
SHARED_DATA = Path(__file__).resolve().parent / "data"


# An async test (with its fixtures) still running after this many seconds is a hang: the
# watchdog prints every task's stack and cancels the test, so the suite goes on and the report
# shows the await that never returned.
HANG_S = float(os.environ.get("WARNPUB_TEST_HANG_S", "240"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            item.fixturenames.insert(0, "_hang_watchdog")  # type: ignore[attr-defined]


def _dump_and_cancel(name: str, after_s: float) -> None:
    tasks = [t for t in asyncio.all_tasks() if not t.done()]
    print(
        f"\n=== {name}: still running after {after_s:g} s; {len(tasks)} tasks ===", file=sys.stderr
    )
    for task in tasks:
        print(f"--- {task.get_name()}", file=sys.stderr)
        task.print_stack(limit=30, file=sys.stderr)
    for task in tasks:
        task.cancel(f"hang watchdog: {name} ran longer than {after_s:g} s")


@pytest.fixture
async def _hang_watchdog(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    # @pytest.mark.hang_after(seconds): a test that may rightly take longer on a loaded machine.
    marker = request.node.get_closest_marker("hang_after")
    after_s = float(marker.args[0]) if marker is not None else HANG_S
    handle = loop.call_later(after_s, _dump_and_cancel, request.node.nodeid, after_s)
    try:
        yield
    finally:
        handle.cancel()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = ["sqlite"]
        if metafunc.definition.get_closest_marker("postgres"):
            backends.append("postgres")
        metafunc.parametrize("backend", backends, scope="function")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _pg_available() -> str | None:
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"), timeout=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def require_pg() -> None:
    """Fail (with CI=true) or skip (elsewhere) when PostgreSQL cannot be reached."""
    problem = asyncio.run(_pg_available())
    if problem is not None:
        message = f"PostgreSQL at {PG_URL} is not reachable ({problem})"
        if IN_CI:
            pytest.fail(message + "; CI needs it (see .ci/run)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A private schema in database ``test``, migrated once, dropped at the end of the session."""
    require_pg()
    schema = f"wp_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def ddl(statement: str) -> None:
        db = Database(PG_URL)
        async with db.engine.begin() as conn:
            await conn.execute(text(statement))
        await db.dispose()

    asyncio.run(ddl(f'CREATE SCHEMA "{schema}"'))
    upgrade(PG_URL, schema=schema)
    yield schema
    asyncio.run(ddl(f'DROP SCHEMA "{schema}" CASCADE'))


async def _truncate_pg(db: Database) -> None:
    async with db.session() as s:
        names = (
            (
                await s.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
                    )
                )
            )
            .scalars()
            .all()
        )
        await s.execute(
            text("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " RESTART IDENTITY CASCADE")
        )
        await s.execute(
            text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)"), {"h": "0" * 64}
        )


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Settings:
    if backend == "postgres":
        schema = request.getfixturevalue("pg_schema")
        env = {"WARNPUB_DATABASE_URL": PG_URL, "WARNPUB_DATABASE_SCHEMA_NAME": schema}
    else:
        path = tmp_path / "warnpub.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        env = {"WARNPUB_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}
    env["WARNPUB_SERVER_PUBLIC_URL"] = "http://127.0.0.1:8080"
    return load_settings(environ=env)


@pytest.fixture
async def db(settings: Settings, backend: str) -> AsyncIterator[Database]:
    database = Database(settings.database.url, schema=settings.database.schema_name)
    if backend == "postgres":
        await _truncate_pg(database)
    yield database
    await database.dispose()


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[TestClient]:
    app = create_app(settings, db, run_timers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c
