"""Drills end to end: `warnpub drill run` in process against the gateway simulator, and the
drill marker (演练 / DRILL) in what the simulator receives."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from tests.dispatch.conftest import make_county
from tests.factories import alert_json
from warnpub.drills.audience import PARAMETER

CSV = Path(__file__).resolve().parents[2] / "audiences" / "liyang-divisions.csv"


def test_drill_run_end_to_end_over_the_simulators(cli, tmp_path):
    for args in (
        ("db", "upgrade"),
        ("areas", "load", str(CSV)),
        ("demo-data", "--people", "600", "--villages-per-town", "2"),
        ("agency", "add", "--code", "QX", "--name", "溧阳市气象局", "--sender", "qx@320481",
         "--hazards", "rainstorm", "--areas", "320481000000"),
        ("operator", "add", "duty1", "--role", "operator"),
        ("operator", "add", "chief", "--role", "supervisor"),
    ):  # fmt: skip
        done = cli(*args)
        assert done.returncode == 0, (args, done.stderr)
    with sqlite3.connect(cli.db) as conn:
        village, people = conn.execute(
            "SELECT area_code, count(*) FROM people GROUP BY area_code ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
    html = tmp_path / "drill.html"
    done = cli(
        "drill", "run", "--area", village, "--simulators", "--port", "0", "--wait", "60",
        "--level", "orange", "--html", str(html), "--csv", str(tmp_path / "csv"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert "DRILL 演练" in out
    assert "state    : completed" in out
    # Orange needs four eyes: an operator and a supervisor approved it.
    assert "approved : by duty1, chief" in out
    assert "Not reached" in out
    assert html.read_text("utf-8").count("演练") >= 1
    assert (tmp_path / "csv" / "unreached.csv").exists()
    with sqlite3.connect(cli.db) as conn:
        status, state = conn.execute("SELECT status, state FROM warnings").fetchone()
        targeted = conn.execute("SELECT count(DISTINCT target_id) FROM deliveries WHERE target_kind = 'person'").fetchone()[0]
        areas = {a for (a,) in conn.execute("SELECT DISTINCT area_code FROM deliveries")}
    assert (status, state) == ("Exercise", "completed")
    assert areas == {village}
    assert 0 < targeted <= people
    # The report's coverage table counts the same people.
    assert re.search(rf"people\s+{targeted}\s", out), out
    # The simulated village contacts acknowledged and reported their visits (the relay channel).
    acked = re.search(r"Village contacts acknowledged: (\d+) of (\d+)", out)
    assert acked and acked.group(1) == acked.group(2) != "0", out
    visits = re.search(r"Visits confirmed: (\d+) of (\d+)", out)
    assert visits and visits.group(1) == visits.group(2) != "0", out


def test_drill_run_refuses_without_channels(cli):
    assert cli("db", "upgrade").returncode == 0
    done = cli("drill", "run", "--area", "320481116200")
    assert done.returncode == 2
    assert "no channels are configured" in done.stderr and "--simulators" in done.stderr


def test_drill_run_checks_the_audience_options(cli):
    done = cli("drill", "run", "--area", "320481116200", "--audience", "list", "--simulators")
    assert done.returncode == 2 and "--people" in done.stderr


async def test_drill_messages_say_drill(settings, db, sim):
    county, client = await make_county(settings, db, [sim], people=200)
    try:
        doc = alert_json(
            status="Exercise",
            code="320481116000",
            parameters=[{"value_name": PARAMETER, "value": "area"}],
        )
        r = await client.post("/api/v1/warnings", json=doc, headers=county.world.agency("QX"))
        body = await r.json()
        assert r.status == 202, body
        await county.approve(body["id"])
        await county.wait_state(body["id"], "completed")
        texts = [m.text for m in sim.gateway.accepted]
        assert texts, "nothing was sent"
        assert all(t.startswith("【演练】") or t.startswith("[DRILL]") for t in texts), texts[:3]
        assert any("演练" in t for t in texts)
    finally:
        await client.close()


def test_the_demo_ends_with_a_drill_report(cli, tmp_path):
    done = cli("demo", "--no-serve", "--port", "0", "--people", "2000", "--database", str(tmp_path / "d.db"))
    assert done.returncode == 0, done.stderr
    guide, _, drill = done.stdout.partition("=== A drill (应急演练) on one town")
    # The guide: where to look, the keys and operators, three warnings waiting for review and
    # the green-channel one sent through the built-in gateway simulator.
    assert "/api/v1/openapi.json" in guide and "GREEN CHANNEL" in guide
    assert guide.count("pending") == 3 and "wpk_" in guide and "duty1" in guide
    assert "red warning is completed" in guide
    assert '{channel="sms",state="delivered"}' in guide
    assert "state    : completed" in drill and "DRILL 演练" in drill
    assert "Not reached" in drill and "Coverage" in drill
    assert (tmp_path / "d-drill" / "report.html").exists()
    assert (tmp_path / "d-drill" / "csv" / "unreached.csv").exists()
    assert f"Report page : {tmp_path / 'd-drill' / 'report.html'}" in drill
    # The simulated village contacts: all but one acknowledged, every visit was reported, and
    # the silent one was escalated (the demo's short blue ladder).
    acked = re.search(r"Village contacts acknowledged: (\d+) of (\d+)", drill)
    assert acked and int(acked.group(1)) == int(acked.group(2)) - 1 > 0, drill
    visits = re.search(r"Visits confirmed: (\d+) of (\d+)", drill)
    assert visits and visits.group(1) == visits.group(2) != "0", drill
    assert "1 raised in the console" in drill, drill
