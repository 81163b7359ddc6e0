"""``warnpub report WARNING_ID``: tables on stdout, CSV files, a self-contained HTML page."""

from __future__ import annotations

import asyncio
import csv
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import update

from tests.reports.county import P3_PHONE, County, build
from warnpub.audiences.tables import Person
from warnpub.cli.main import main
from warnpub.config import Settings
from warnpub.storage.engine import Database

HOSTILE = "<script>alert(1)</script>=HYPERLINK(1)"


def make(settings: Settings, **kw) -> County:
    async def setup() -> County:
        db = Database(settings.database.url)
        try:
            county = await build(db, settings, **kw)
            async with db.session() as s:
                await s.execute(
                    update(Person)
                    .where(Person.id == county.people["P7"])
                    .values(name="=" + HOSTILE)
                )
            return county
        finally:
            await db.dispose()

    return asyncio.run(setup())


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("WARNPUB_CONFIG", raising=False)
    monkeypatch.setenv("WARNPUB_DATABASE_URL", settings.database.url)
    return settings


def read_csv(path: Path) -> list[dict[str, str]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf"), "CSV without a byte-order mark"
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_tables_on_stdout(env, capsys):
    county = make(env)
    assert main(["report", county.warning_id]) == 0
    out = capsys.readouterr().out
    assert "DRILL" not in out and "Not reached" not in out
    lines = out.splitlines()
    all_row = next(line for line in lines if line.startswith("all targets"))
    assert all_row.split()[2:] == ["10", "10", "5", "2", "4", "1", "50.0", "%"]
    town = next(line for line in lines if line.startswith("320481103000"))
    assert town.split() == ["320481103000", "戴埠镇", "5", "5", "1", "0", "4", "0", "20.0", "%"]
    times = next(line for line in lines if line.startswith("delivered_50 "))
    assert re.split(r"\s{2,}", times) == [
        "delivered_50",
        "2026-06-01 08:10:00 +08:00",
        "10 min 00 s",
        "9 min 00 s",
    ]
    assert "MET" in out and "MISSED" in out


def test_drill_csv_and_html(env, tmp_path, capsys):
    county = make(env, status="Exercise")
    out_dir, page = tmp_path / "csv", tmp_path / "report.html"
    assert main(["report", county.warning_id, "--csv", str(out_dir), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("DRILL 演练") and "Not reached (4)" in out
    assert P3_PHONE not in out and "**********5678" in out
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "by_channel.csv",
        "by_needs.csv",
        "by_tier.csv",
        "by_town.csv",
        "by_village.csv",
        "checks.csv",
        "milestones.csv",
        "summary.csv",
        "tier_times.csv",
        "unreached.csv",
    ]
    towns = {r["name"]: r for r in read_csv(out_dir / "by_town.csv")}
    assert towns["戴埠镇"]["unreached"] == "4" and towns["社渚镇"]["pending"] == "1"
    summary = read_csv(out_dir / "summary.csv")
    assert [(r["scope"], r["targeted"], r["delivered"]) for r in summary] == [
        ("all", "10", "5"),
        ("people", "8", "4"),
        ("devices", "2", "1"),
    ]
    unreached = read_csv(out_dir / "unreached.csv")
    assert len(unreached) == 4
    # Names are cut to their first character in exports (warnpub.reports.privacy).
    p3 = next(r for r in unreached if r["name"] == "视**")
    assert p3["phone"] == "**********5678" and p3["relay_contact"] == "联***"
    assert p3["tried"].startswith("voice failed (number **********5678 unreachable); relay expired")
    # A name that a spreadsheet would run as a formula is written as text.
    assert any(r["name"] == "'=" + "*" * len(HOSTILE) for r in unreached)
    assert P3_PHONE not in (out_dir / "unreached.csv").read_text("utf-8-sig")
    html = page.read_text("utf-8")
    assert html.count("<svg") == 2
    assert "Delivery over time, by tier" in html and "Coverage by town" in html
    assert "演练 DRILL" in html and "视**" in html and "戴埠镇" in html
    assert "视障三" not in html and "<script>" not in html
    assert P3_PHONE not in html
    # Self-contained: nothing is fetched from elsewhere.
    assert "http://" not in html.replace("http://www.w3.org", "").replace(
        "http://purl.org", ""
    ).replace("http://creativecommons.org", "")
    assert "src=" not in html


def test_json_output(env, capsys):
    county = make(env)
    assert main(["report", county.warning_id, "--json", "--unreached"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["totals"]["targeted"] == 10 and len(body["unreached"]) == 4


def test_unknown_warning(env, capsys):
    make(env)
    assert main(["report", "01NOSUCHWARNING0000000000"]) == 2
    assert "no warning with id '01NOSUCHWARNING0000000000'" in capsys.readouterr().err


def test_bad_output_paths_change_nothing(env, tmp_path, capsys):
    county = make(env)
    missing = tmp_path / "no" / "such" / "dir" / "r.html"
    assert main(["report", county.warning_id, "--html", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not missing.parent.exists()
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    assert main(["report", county.warning_id, "--csv", str(a_file)]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert a_file.read_text() == "keep me"
    assert main(["report", county.warning_id, "--html", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["report", "--help"])
    assert done.value.code == 0 and "--csv DIR" in capsys.readouterr().out
