"""Helpers shared by the CLI commands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.config import Settings
from warnpub.problems import Problem
from warnpub.storage.engine import Database
from warnpub.storage.migrate import is_current

CLI_ACTOR = "cli"

UNMASKED_HELP = (
    "show names and phone numbers in full (default: names to their first character, phone "
    "numbers to their last four digits); for the duty officer who must call or visit people. "
    "Recorded in the audit log"
)


def add_unmasked(parser: Any) -> None:
    parser.add_argument("--unmasked", action="store_true", help=UNMASKED_HELP)


def cli_actor() -> str:
    """``cli:<login name>``: who ran a command, for the audit log."""
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return CLI_ACTOR
    return f"{CLI_ACTOR}:{user[:60]}"


async def record_unmasked(db: Database, command: str, subject: str, **details: Any) -> None:
    """An audit entry for an export with names and phone numbers in full, committed before the
    export is made: whoever took the people's data out is on record even if the export fails."""
    from warnpub.audit.log import append

    async with db.session() as session:
        await append(session, cli_actor(), "export.unmasked", subject, command=command, **details)


def run(body: Callable[[], Awaitable[int]]) -> int:
    return asyncio.run(body())


@asynccontextmanager
async def database(settings: Settings, *, check_schema: bool = True) -> AsyncIterator[Database]:
    db = Database(
        settings.database.url, echo=settings.database.echo, schema=settings.database.schema_name
    )
    try:
        if check_schema and not await is_current(
            settings.database.url, settings.database.schema_name
        ):
            raise Problem(
                400,
                "Database not ready",
                "the database schema is missing or old; run `warnpub db upgrade` first",
            )
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def transaction(settings: Settings) -> AsyncIterator[AsyncSession]:
    async with database(settings) as db, db.session() as session:
        yield session


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header, *[[("" if c is None else str(c)) for c in r] for r in rows]]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(_pad(c, w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _width(text: str) -> int:
    # East Asian wide characters take two columns in a terminal.
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]
