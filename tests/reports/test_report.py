"""The report's numbers and times, asserted exactly for a county with known outcomes
(tests/reports/county.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.reports.county import DAIBU, P3_PHONE, SHEZHU, V1, V1B, V2, build, m
from warnpub.config import CoverageTarget, TimeTarget
from warnpub.problems import Problem
from warnpub.reports import build_report
from warnpub.reports.model import Counts, Report

pytestmark = pytest.mark.postgres


def counts(rows, key: str) -> dict[str, int]:
    row = next(r for r in rows if r.key == key)
    d = row.counts.as_dict()
    return {
        k: d[k] for k in ("targeted", "sent", "delivered", "acknowledged", "unreached", "pending")
    }


def c(targeted, sent, delivered, acknowledged, unreached, pending) -> dict[str, int]:
    return dict(
        targeted=targeted,
        sent=sent,
        delivered=delivered,
        acknowledged=acknowledged,
        unreached=unreached,
        pending=pending,
    )


def check(report: Report, name: str):
    return next(x for x in report.checks if x.name == name)


async def test_counts_per_target_not_per_delivery(db, settings):
    county = await build(db, settings)
    r = await build_report(db, settings, county.warning_id)
    assert r.totals == Counts(10, 10, 5, 2, 4, 2)
    assert r.totals.pending == 1 and r.totals.coverage == 0.5
    assert r.people == Counts(8, 8, 4, 2, 3, 2)
    assert r.devices == Counts(2, 2, 1, 0, 1, 0)
    assert [row.key for row in r.by_town] == [DAIBU, SHEZHU]
    assert [row.label for row in r.by_town] == ["戴埠镇", "社渚镇"]
    assert counts(r.by_town, SHEZHU) == c(5, 5, 4, 2, 0, 1)
    assert counts(r.by_town, DAIBU) == c(5, 5, 1, 0, 4, 0)
    assert counts(r.by_village, V1) == c(4, 4, 3, 1, 0, 1)
    assert counts(r.by_village, V1B) == c(1, 1, 1, 1, 0, 0)
    assert counts(r.by_village, V2) == c(5, 5, 1, 0, 4, 0)
    assert [(row.key, row.label) for row in r.by_tier] == [
        ("0", "devices"),
        ("1", "special_needs"),
        ("2", "village_contacts"),
        ("3", "rural_residents"),
    ]
    assert counts(r.by_tier, "0") == c(2, 2, 1, 0, 1, 0)
    assert counts(r.by_tier, "1") == c(3, 3, 1, 1, 1, 1)
    assert counts(r.by_tier, "2") == c(2, 2, 1, 1, 1, 0)
    assert counts(r.by_tier, "3") == c(3, 3, 2, 0, 1, 0)


async def test_needs_groups_count_a_person_in_each_of_their_needs(db, settings):
    county = await build(db, settings)
    r = await build_report(db, settings, county.warning_id)
    assert [row.key for row in r.by_needs] == [
        "none",
        "elderly_alone",
        "hearing_impaired",
        "visually_impaired",
        "no_phone",
    ]
    assert counts(r.by_needs, "elderly_alone") == c(1, 1, 1, 1, 0, 0)
    assert counts(r.by_needs, "no_phone") == c(1, 1, 1, 1, 0, 0)
    assert counts(r.by_needs, "hearing_impaired") == c(1, 1, 0, 0, 0, 1)
    assert counts(r.by_needs, "visually_impaired") == c(1, 1, 0, 0, 1, 0)
    assert counts(r.by_needs, "none") == c(5, 5, 3, 1, 2, 0)
    assert next(row for row in r.by_needs if row.key == "elderly_alone").label == (
        "elderly_alone 独居老人"
    )


async def test_channels_count_every_target_tried_on_them(db, settings):
    county = await build(db, settings)
    r = await build_report(db, settings, county.warning_id)
    assert [row.key for row in r.by_channel] == [
        "board",
        "email",
        "relay",
        "sms",
        "speaker",
        "voice",
    ]
    assert counts(r.by_channel, "sms") == c(5, 4, 3, 1, 2, 0)
    assert counts(r.by_channel, "relay") == c(3, 3, 1, 1, 1, 1)
    # E-mail has no receipts: sent is not proof of delivery.
    assert counts(r.by_channel, "email") == c(2, 2, 0, 0, 2, 0)
    assert counts(r.by_channel, "voice") == c(1, 0, 0, 0, 1, 0)
    assert counts(r.by_channel, "speaker") == c(1, 1, 1, 0, 0, 0)
    assert counts(r.by_channel, "board") == c(1, 1, 0, 0, 1, 0)


async def test_milestones_and_percentiles(db, settings):
    county = await build(db, settings)
    r = await build_report(db, settings, county.warning_id)
    at = {x.name: x.at for x in r.milestones}
    assert at["received"] == m(0) and at["approved"] == m(1)
    assert at["first_sent"] == m(1.5)
    assert at["first_delivered"] == m(2)
    # 10 targets: 50 % is the 5th reached (P8 at T+10m); 90 % and 99 % were never reached.
    assert at["delivered_50"] == m(10)
    assert at["delivered_90"] is None and at["delivered_99"] is None
    assert at["last_delivered"] == m(10)
    assert at["last_acknowledged"] == m(8)
    assert at["completed"] is None
    first = r.milestone("first_sent")
    assert first.since_received_s == 90 and first.since_approved_s == 30
    assert r.milestone("delivered_50").since_approved_s == 540
    tiers = {t.name: t for t in r.tier_times}
    assert tiers["devices"].milestones["delivered_50"].at == m(2)
    assert tiers["devices"].milestones["delivered_90"].at is None
    assert tiers["special_needs"].milestones["delivered_50"].at is None
    assert tiers["village_contacts"].milestones["delivered_50"].since_approved_s == 120
    assert tiers["rural_residents"].milestones["delivered_50"].at == m(10)
    # Chart curves start at approval and climb one target at a time.
    everyone = next(s for s in r.series if s.tier is None)
    assert everyone.points == [(60.0, 1), (120.0, 2), (180.0, 3), (240.0, 4), (540.0, 5)]
    rural = next(s for s in r.series if s.name == "rural_residents")
    assert rural.targeted == 3 and rural.points == [(180.0, 1), (540.0, 2)]


async def test_clocks_and_targets(db, settings):
    county = await build(db, settings)
    settings.reports.time_targets.append(
        TimeTarget(name="first delivery", milestone="first_delivered", since="received", minutes=2)
    )
    settings.reports.coverage_targets.append(
        CoverageTarget(name="half the devices", group="devices", percent=50)
    )
    r = await build_report(db, settings, county.warning_id)
    statuses = {x.name: x.status for x in r.checks}
    assert statuses == {
        "major event: authoritative information within 3 h 00 min": "met",
        "major event: authoritative information never later than 5 h 00 min": "met",
        # 90 % never reached, and more than 10 minutes have passed since approval.
        "reach the public": "missed",
        "special needs first": "missed",
        # 50 % of 10 reached, one still pending while the warning is dispatching.
        "everyone reached": "pending",
        "contacts acknowledged": "pending",
        "first delivery": "met",
        "half the devices": "met",
    }
    assert check(r, "first delivery").value == 120
    assert check(r, "everyone reached").measured == "50.0 % (5 of 10)"
    assert check(r, "contacts acknowledged").measured == "50.0 % (1 of 2)"
    assert check(r, "major event: authoritative information within 3 h 00 min").value == 90


async def test_a_finished_warning_misses_what_it_did_not_reach(db, settings):
    county = await build(db, settings, level="yellow", state="completed")
    r = await build_report(db, settings, county.warning_id)
    statuses = {x.name: x.status for x in r.checks}
    assert statuses["major event: authoritative information within 3 h 00 min"] == "not_applicable"
    assert statuses["everyone reached"] == "missed"
    assert statuses["contacts acknowledged"] == "missed"


async def test_drill_lists_everyone_not_reached(db, settings):
    county = await build(db, settings, status="Exercise")
    r = await build_report(db, settings, county.warning_id)
    assert r.warning.drill
    assert r.unreached is not None and r.unreached_total == 4 and not r.unreached_truncated
    # By area, then tier, kind and id: 戴北村's board, P3, P5, P7.
    assert [(u.kind, u.name) for u in r.unreached] == [
        ("device", "戴北村公告屏"),
        ("person", "视障三"),
        ("person", "联络员五"),
        ("person", "村民七"),
    ]
    p3 = r.unreached[1]
    assert p3.area_code == V2 and p3.area_name == "戴北村"
    assert p3.needs == ["visually_impaired"] and p3.tier_name == "special_needs"
    assert p3.relay_contact == "联络员五"
    assert p3.phone == "**********5678"
    assert [(a.channel, a.state) for a in p3.attempts] == [
        ("voice", "failed"),
        ("relay", "expired"),
    ]
    # Phone numbers never appear, not even inside a gateway's error text.
    text = str(r.as_dict())
    assert P3_PHONE not in text and P3_PHONE[3:] not in text
    assert "seven@example.cn" not in text


async def test_actual_warning_lists_unreached_only_when_asked(db, settings):
    county = await build(db, settings)
    assert (await build_report(db, settings, county.warning_id)).unreached is None
    asked = await build_report(db, settings, county.warning_id, unreached=True)
    assert asked.unreached is not None and len(asked.unreached) == 4
    settings.reports.unreached_limit = 2
    limited = await build_report(db, settings, county.warning_id, unreached=True)
    assert len(limited.unreached or []) == 2 and limited.unreached_truncated
    assert limited.unreached_total == 4


async def test_warning_without_deliveries(db, settings):
    county = await build(db, settings, state="pending")
    async with db.session() as s:
        from sqlalchemy import delete

        from warnpub.storage.tables import Delivery

        await s.execute(delete(Delivery).where(Delivery.warning_id == county.warning_id))
    r = await build_report(db, settings, county.warning_id)
    assert r.totals == Counts() and r.by_town == [] and r.tier_times == []
    assert r.milestone("approved").at is None
    assert all(s.points == [] for s in r.series)
    statuses = {x.name: x.status for x in r.checks}
    assert statuses["reach the public"] == "pending"
    assert statuses["everyone reached"] == "not_applicable"


async def test_unknown_warning_is_a_404(db, settings):
    await build(db, settings)
    with pytest.raises(Problem) as e:
        await build_report(db, settings, "01NOSUCHWARNING0000000000")
    assert e.value.status == 404 and "01NOSUCHWARNING0000000000" in e.value.detail


async def test_contact_points_typed_into_names_are_masked(db, settings):
    county = await build(db, settings, status="Exercise")
    from sqlalchemy import update

    from warnpub.audiences.tables import Person

    async with db.session() as s:
        await s.execute(
            update(Person)
            .where(Person.id == county.people["P7"])
            .values(name="村民七 13912345678 seven@example.cn")
        )
    r = await build_report(db, settings, county.warning_id)
    p7 = next(u for u in (r.unreached or []) if u.id == county.people["P7"])
    assert p7.name == "村民七 *******5678 s***@example.cn"
