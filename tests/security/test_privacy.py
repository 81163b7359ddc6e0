"""Names and phone numbers leave the system only as far as the reader's role needs them.

- exports (``warnpub report`` text/JSON/CSV/HTML, drill after-action files, ``warnpub visits``):
  names to their first character, phone numbers to their last four digits;
- ``--unmasked``: in full, and recorded in the audit log;
- the signed-in operator's views (API, console): full names, phone numbers masked;
- logs and the audit log: phone numbers and e-mail addresses masked, names in log fields cut.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from tests.reports.county import P3_PHONE, County, add_visit, build
from warnpub.audiences.tables import Person
from warnpub.audit.log import append, verify
from warnpub.cli.main import main
from warnpub.drills.run import report_text
from warnpub.logs import JsonFormatter, MaskingTextFormatter
from warnpub.reports import build_report
from warnpub.storage.engine import Database
from warnpub.storage.tables import AuditEntry

HOSTILE = "<script>alert(1)</script>"
FULL_NAMES = ("视障三", "联络员五")
P5_PHONE = "+8613900000005"


async def county_with_visits(db: Database, settings) -> County:
    county = await build(db, settings, status="Exercise")
    async with db.session() as s:
        await add_visit(s, county)
        await s.execute(update(Person).where(Person.id == county.people["P7"]).values(name=HOSTILE))
    return county


def make(settings) -> County:
    async def setup() -> County:
        db = Database(settings.database.url)
        try:
            return await county_with_visits(db, settings)
        finally:
            await db.dispose()

    return asyncio.run(setup())


def audit_actions(settings) -> list[tuple[str, str, str, dict]]:
    async def read() -> list[tuple[str, str, str, dict]]:
        db = Database(settings.database.url)
        try:
            async with db.session() as s:
                rows = (await s.execute(select(AuditEntry).order_by(AuditEntry.seq))).scalars()
                out = [(e.actor, e.action, e.subject, e.details) for e in rows]
                assert (await verify(s)).ok
                return out
        finally:
            await db.dispose()

    return asyncio.run(read())


@pytest.fixture
def cli(settings, monkeypatch):
    monkeypatch.delenv("WARNPUB_CONFIG", raising=False)
    monkeypatch.setenv("WARNPUB_DATABASE_URL", settings.database.url)
    return settings


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_report_exports_mask_names_and_numbers(cli, tmp_path, capsys):
    county = make(cli)
    out_dir, page = tmp_path / "csv", tmp_path / "r.html"
    args = ["report", county.warning_id, "--csv", str(out_dir), "--html", str(page)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert main(["report", county.warning_id, "--json"]) == 0
    as_json = capsys.readouterr().out
    unreached = read_csv(out_dir / "unreached.csv")
    p3 = next(r for r in unreached if r["id"] == str(county.people["P3"]))
    assert p3["name"] == "视**" and p3["relay_contact"] == "联***"
    assert p3["phone"] == "**********5678"
    outputs = [text, as_json, (out_dir / "unreached.csv").read_text("utf-8-sig"), page.read_text()]
    for output in outputs:
        for secret in (*FULL_NAMES, P3_PHONE, P3_PHONE[3:], "seven@example.cn", "script"):
            assert secret not in output
    # Places are not people: the villages' devices keep their names.
    assert "戴北村公告屏" in text
    # Nobody took people's data out in full: no audit entry.
    assert not [a for a in audit_actions(cli) if a[1] == "export.unmasked"]


def test_unmasked_report_is_in_full_escaped_and_audited(cli, tmp_path, capsys):
    county = make(cli)
    out_dir, page = tmp_path / "csv", tmp_path / "r.html"
    args = ["report", county.warning_id, "--csv", str(out_dir), "--html", str(page), "--unmasked"]
    assert main(args) == 0
    text = capsys.readouterr().out
    unreached = read_csv(out_dir / "unreached.csv")
    p3 = next(r for r in unreached if r["id"] == str(county.people["P3"]))
    assert (p3["name"], p3["relay_contact"], p3["phone"]) == (
        "视障三",
        "联络员五",
        "'" + P3_PHONE,
    )  # "+…" kept as text
    assert "视障三" in text and P3_PHONE in text
    html = page.read_text()
    assert "视障三" in html and "<script>" not in html and "&lt;script&gt;" in html
    entries = [a for a in audit_actions(cli) if a[1] == "export.unmasked"]
    assert len(entries) == 1
    actor, _, subject, details = entries[0]
    assert actor.startswith("cli") and subject == f"warning:{county.warning_id}"
    assert details == {"command": "report", "csv": True, "html": True}


def test_unmasked_report_of_an_unknown_warning_writes_nothing(cli, capsys):
    make(cli)
    before = audit_actions(cli)
    assert main(["report", "01NOSUCHWARNING00000000000", "--unmasked"]) == 2
    assert "no warning" in capsys.readouterr().err.lower()
    assert audit_actions(cli) == before


def test_visits_are_masked_unless_asked(cli, capsys):
    county = make(cli)
    assert main(["visits", county.warning_id, "--json"]) == 0
    masked = json.loads(capsys.readouterr().out)
    task = masked["villages"][0]["tasks"][0]
    assert (task["name"], task["contact_name"]) == ("视**", "联***")
    assert task["contact_phone"] == "**********0005"
    assert main(["visits", county.warning_id]) == 0
    text = capsys.readouterr().out
    assert "视**" in text and "视障三" not in text
    assert main(["visits", county.warning_id, "--json", "--unmasked"]) == 0
    task = json.loads(capsys.readouterr().out)["villages"][0]["tasks"][0]
    assert (task["name"], task["contact_phone"]) == ("视障三", P5_PHONE)
    entries = [a for a in audit_actions(cli) if a[1] == "export.unmasked"]
    assert [e[3]["command"] for e in entries] == ["visits"]


@pytest.mark.postgres
async def test_operator_views_keep_names_and_mask_numbers(db, settings):
    county = await county_with_visits(db, settings)
    report = await build_report(db, settings, county.warning_id)
    p3 = next(u for u in report.unreached if u.id == county.people["P3"])
    # The duty officer who follows up must know whom to visit; the number is not needed.
    assert (p3.name, p3.relay_contact, p3.phone) == ("视障三", "联络员五", "**********5678")
    assert P3_PHONE not in json.dumps([u.as_dict() for u in report.unreached])


@pytest.mark.postgres
async def test_drill_after_action_files_are_exports(db, settings, tmp_path):
    county = await county_with_visits(db, settings)
    drill = SimpleNamespace(warning_id=county.warning_id)
    text, _ = await report_text(db, settings, drill, csv_dir=tmp_path / "d")
    rows = read_csv(tmp_path / "d" / "unreached.csv")
    assert "视**" in text and "视障三" not in text and P3_PHONE not in text
    assert {r["name"] for r in rows} >= {"视**", "联***"}
    full, _ = await report_text(db, settings, drill, privacy="full")
    assert "视障三" in full


@pytest.mark.postgres
async def test_audit_log_masks_contact_points_and_secrets(db, settings):
    async with db.session() as s:
        await append(
            s,
            "operator:duty1",
            "warning.rejected",
            "warning:x",
            reason=f"call 张三 at {P3_PHONE} or zhang.san@example.cn first",
            token="wpt_" + "q" * 40,
            key_prefix="0123456789ab",
            nested={"password": "pw-in-a-detail", "count": 3},
        )
    async with db.session() as s:
        entry = (await s.execute(select(AuditEntry))).scalar_one()
        stored = json.dumps(entry.details, ensure_ascii=False)
        assert (await verify(s)).ok
    for secret in (P3_PHONE, "zhang.san", "q" * 40, "pw-in-a-detail"):
        assert secret not in stored
    assert "5678" in entry.details["reason"] and entry.details["key_prefix"] == "0123456789ab"
    assert entry.details["nested"]["count"] == 3


def test_names_and_numbers_in_log_fields_are_masked():
    record = logging.LogRecord(
        "warnpub.test", logging.INFO, __file__, 1, "visit for %s", (P3_PHONE,), None
    )
    record.person_name = "视障三"
    record.contact = {"name": "联络员五", "phone": P5_PHONE}
    for line in (JsonFormatter().format(record), MaskingTextFormatter().format(record)):
        for secret in ("视障三", "联络员五", P3_PHONE, P5_PHONE):
            assert secret not in line
        assert "视**" in line and "联***" in line and "5678" in line


@pytest.mark.postgres
async def test_needs_breakdown_still_counts_every_person(db, settings):
    """by_needs no longer joins people only (a forgotten person counts with the needs its
    deliveries kept, tests/security/test_forget.py): everyone is still counted once per need."""
    county = await county_with_visits(db, settings)
    report = await build_report(db, settings, county.warning_id)
    needs = {r.key: r.counts.targeted for r in report.by_needs}
    assert needs["visually_impaired"] == 1 and needs["none"] == 5
    assert report.people.targeted == 8
