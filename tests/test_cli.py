"""The ``warnpub`` command line, run as a real process through its entry point."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from warnpub.cli.main import main

COMMANDS = [
    [],
    ["serve"],
    ["demo"],
    ["db"],
    ["db", "upgrade"],
    ["agency"],
    ["agency", "add"],
    ["agency", "list"],
    ["agency", "revoke"],
    ["agency", "rotate"],
    ["operator"],
    ["operator", "add"],
    ["operator", "list"],
    ["audit"],
    ["audit", "verify"],
    ["areas"],
    ["areas", "load"],
    ["cap"],
    ["cap", "validate"],
    ["config"],
    ["config", "show"],
    ["audience"],
    ["audience", "import"],
    ["demo-data"],
    ["worker"],
    ["gateway-sim"],
    ["speaker-sim"],
    ["visits"],
    ["drill"],
    ["drill", "run"],
    ["report"],
]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "WARNPUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "WARNPUB_SECURITY_SECRET_KEY": "s3cret-value",
    }
    env.pop("WARNPUB_CONFIG", None)
    return env


@pytest.fixture
def cli_process(tmp_path: Path):
    """`python -m warnpub …` in a process of its own."""
    env = _env(tmp_path)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "warnpub", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
        )

    run.db = tmp_path / "cli.db"  # type: ignore[attr-defined]
    return run


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`warnpub …` run in this process (the same ``main`` as the entry point, with the same
    environment, working directory, stdin and exit codes): a process of its own would spend
    most of each call importing. ``cli_process`` keeps one real process per kind of test."""
    env = _env(tmp_path)
    for key in [k for k in os.environ if k not in env]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    # `main` configures logging for the process; put the test run's handlers and level back
    # afterwards (setLevel also clears the loggers' cached levels).
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    level = root.level

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            monkeypatch.context() as m,
        ):
            m.setattr(sys, "stdin", io.StringIO(stdin or ""))
            try:
                code = main(list(args))
            except SystemExit as done:  # argparse: --help, bad arguments
                code = done.code if isinstance(done.code, int) else 2
        return subprocess.CompletedProcess(["warnpub", *args], code, out.getvalue(), err.getvalue())

    run.db = tmp_path / "cli.db"  # type: ignore[attr-defined]
    yield run
    root.setLevel(level)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "warnpub")
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0 and "usage: warnpub" in capsys.readouterr().out


def test_entry_point_runs_as_a_process(cli_process):
    r = cli_process("--help")
    assert r.returncode == 0 and "agency" in r.stdout


def test_admin_workflow(cli):
    assert cli("agency", "list").returncode == 2  # no schema yet: clear error
    first, second = cli("db", "upgrade"), cli("db", "upgrade")
    assert first.returncode == second.returncode == 0, first.stderr
    areas = Path(__file__).resolve().parents[1] / "audiences" / "liyang-divisions.csv"
    assert "loaded 33 areas" in cli("areas", "load", str(areas)).stdout
    added = cli(
        "agency",
        "add",
        "--code",
        "QX",
        "--name",
        "溧阳市气象局",
        "--sender",
        "qx@320481",
        "--hazards",
        "rainstorm,gale",
        "--areas",
        "320481000000",
    )
    assert added.returncode == 0, added.stderr
    key = re.search(r"wpk_\w+_\S+", added.stdout).group(0)
    with sqlite3.connect(cli.db) as conn:
        stored = [r[0] for r in conn.execute("SELECT key_hash FROM agency_keys")]
    assert key not in stored and len(stored) == 1  # only a hash is stored
    bad = cli(
        "agency",
        "add",
        "--code",
        "qx",
        "--name",
        "x",
        "--sender",
        "y",
        "--hazards",
        "meteor",
        "--areas",
        "320481",
    )
    assert bad.returncode == 2 and "hazards" in bad.stderr and "12 digits" in bad.stderr
    listed = cli("agency", "list").stdout
    assert "QX" in listed and "溧阳市气象局" in listed
    rotated = cli("agency", "rotate", "QX", "--keep-old")
    assert rotated.returncode == 0 and "wpk_" in rotated.stdout
    assert "revoked 2 key(s)" in cli("agency", "revoke", "QX").stdout
    op = cli(
        "operator",
        "add",
        "alice",
        "--role",
        "supervisor",
        "--password-stdin",
        stdin="a long password\n",
    )
    assert op.returncode == 0 and "password (shown once)" not in op.stdout
    gen = cli("operator", "add", "bob")
    assert "password (shown once)" in gen.stdout
    assert "alice" in cli("operator", "list").stdout
    assert cli("operator", "add", "carol", "--password-stdin", stdin="short\n").returncode == 2
    ok = cli("audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout
    with sqlite3.connect(cli.db) as conn:
        conn.execute("UPDATE audit_log SET details = '{}' WHERE seq = 2")
    broken = cli("audit", "verify")
    assert broken.returncode == 1 and "entry 2" in broken.stdout


def test_config_show_masks_secrets(cli):
    out = cli("config", "show").stdout
    assert 'secret_key = "***"' in out and "s3cret-value" not in out


def test_config_env_override_and_bad_value(cli, tmp_path):
    site = tmp_path / "site.toml"
    site.write_text("[server]\nport = 9999\n")
    assert "port = 9999" in cli("--config", str(site), "config", "show").stdout
    site.write_text("[server]\nport = 'many'\n")
    r = cli("--config", str(site), "config", "show")
    assert r.returncode == 2 and "server.port" in r.stderr


def test_cap_validate_reports_each_file(cli):
    valid = sorted(p for p in (SHARED_DATA / "cap").glob("*") if p.suffix in (".cap", ".xml"))
    invalid = sorted((SHARED_DATA / "cap-invalid").glob("*.cap"))
    assert len(valid) == 10 and len(invalid) == 4
    good = cli("cap", "validate", *map(str, valid))
    assert good.returncode == 0, good.stdout
    assert good.stdout.count(": valid CAP 1.2") == len(valid)
    bad = cli("cap", "validate", *map(str, invalid))
    assert bad.returncode == 1 and bad.stdout.count("INVALID") == len(invalid), bad.stdout
    mixed = cli("cap", "validate", str(valid[0]), str(invalid[0]))
    assert mixed.returncode == 1


# The README demo (`warnpub demo`) is run once, in
# tests/drills/test_drill_run.py::test_the_demo_ends_with_a_drill_report, which checks the
# guide it prints as well as the drill it ends with.
