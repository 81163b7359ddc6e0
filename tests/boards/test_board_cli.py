"""``warnpub board token`` and ``warnpub board list``, through the command line's ``main``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.boards.conftest import DIGITAL, add_boards
from warnpub.audiences.areas import liyang_csv, load_areas
from warnpub.auth.secrets import sha256_hex
from warnpub.cli.main import main
from warnpub.storage.engine import Database
from warnpub.storage.migrate import upgrade


@pytest.fixture
def county(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
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
    monkeypatch.setenv("WARNPUB_DATABASE_URL", url)
    monkeypatch.setenv("WARNPUB_SERVER_PUBLIC_URL", "http://kiosk.example:8080")
    monkeypatch.delenv("WARNPUB_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        """`warnpub …` in this process (the entry point's own ``main``; a process of its own
        would spend most of each call importing — tests/test_cli.py runs one)."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 2
        return subprocess.CompletedProcess(["warnpub", *args], code, out.getvalue(), err.getvalue())

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
