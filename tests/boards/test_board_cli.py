"""``warnpub board token`` and ``warnpub board list``, run as real processes."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.boards.conftest import DIGITAL, add_boards
from warnpub.audiences.areas import liyang_csv, load_areas
from warnpub.auth.secrets import sha256_hex
from warnpub.cli.main import main
from warnpub.storage.engine import Database
from warnpub.storage.migrate import upgrade


@pytest.fixture
def county(tmp_path: Path):
    path = tmp_path / "boards.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)

    async def fill() -> None:
        db = Database(url)
        async with db.session() as s:
            await load_areas(s, liyang_csv())
        await add_boards(db)
        await db.dispose()

    asyncio.run(fill())
    env = {
        **os.environ,
        "WARNPUB_DATABASE_URL": url,
        "WARNPUB_SERVER_PUBLIC_URL": "http://kiosk.example:8080",
    }
    env.pop("WARNPUB_CONFIG", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "warnpub", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    run.path = path  # type: ignore[attr-defined]
    return run


def stored_hash(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        (row,) = conn.execute(
            "SELECT token_hash FROM board_credentials JOIN devices ON devices.id = device_id "
            "WHERE devices.address = ?",
            (DIGITAL,),
        ).fetchall()
    return row[0]


def test_token_is_issued_rotated_and_only_its_hash_kept(county) -> None:
    first = county("board", "token", DIGITAL)
    assert first.returncode == 0, first.stderr
    token = re.search(r"wpb_\S+", first.stdout).group(0)
    assert "token rotated" in first.stdout, "the test county issued one already"
    assert f"http://kiosk.example:8080/boards/{DIGITAL}?token={token}" in first.stdout
    assert stored_hash(county.path) == sha256_hex(token)
    second = county("board", "token", f"test-{DIGITAL}")  # by external id
    assert second.returncode == 0, second.stderr
    rotated = re.search(r"wpb_\S+", second.stdout).group(0)
    assert rotated != token and stored_hash(county.path) == sha256_hex(rotated)
    listed = county("board", "list", "--area", "320481116")
    assert (
        listed.returncode == 0
        and DIGITAL in listed.stdout
        and "board-320481103206" not in listed.stdout
    )


def test_unknown_board_is_a_clear_error(county) -> None:
    r = county("board", "token", "no-such-board")
    assert r.returncode == 2 and "no notice board" in r.stderr


@pytest.mark.parametrize("command", [["board"], ["board", "token"], ["board", "list"]])
def test_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0 and "usage: warnpub" in capsys.readouterr().out
