"""The report of a real dispatch (gateway simulator on loopback, the real dispatcher) agrees
with the delivery rows counted one by one in Python."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from tests.dispatch.conftest import make_county, start_sim
from warnpub.reports import build_report
from warnpub.reports.timing import rank_for
from warnpub.storage.tables import Delivery

CITY = "320481000000"
FINAL = ("delivered", "failed", "expired", "cancelled")


async def test_report_matches_the_rows_of_a_real_dispatch(settings, db):
    sim, runner = await start_sim()
    county, client = await make_county(settings, db, [sim], people=300)
    try:
        w = await county.submit(severity="Moderate", code=CITY)
        await county.approve(w["id"])
        await county.wait_state(w["id"], "completed")
        report = await build_report(db, settings, w["id"], unreached=True)
        async with db.session() as s:
            rows = list(
                (await s.execute(select(Delivery).where(Delivery.warning_id == w["id"]))).scalars()
            )
    finally:
        await client.close()
        await runner.cleanup()

    by_target: dict[tuple[str, int], list[Delivery]] = defaultdict(list)
    for d in rows:
        by_target[(d.target_kind, d.target_id)].append(d)
    reached = {
        t: min(d.final_at for d in ds if d.state == "delivered")
        for t, ds in by_target.items()
        if any(d.state == "delivered" for d in ds)
    }
    unreached = {
        t
        for t, ds in by_target.items()
        if t not in reached
        and all(d.state in FINAL or (d.state == "sent" and d.final_at) for d in ds)
    }
    assert len(by_target) > 300
    assert report.totals.targeted == len(by_target)
    assert report.totals.delivered == len(reached) > 0
    assert report.totals.unreached == len(unreached) > 0  # people with no working channel here
    assert report.totals.pending == 0
    assert report.unreached is not None
    assert {(u.kind, u.id) for u in report.unreached} == unreached
    per_tier: dict[int, int] = defaultdict(int)
    for (kind, tid), ds in by_target.items():
        per_tier[ds[0].tier] += 1
    assert {int(r.key): r.counts.targeted for r in report.by_tier} == dict(per_tier)
    per_channel: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for d in rows:
        per_channel[d.channel].add((d.target_kind, d.target_id))
    assert {r.key: r.counts.targeted for r in report.by_channel} == {
        c: len(t) for c, t in per_channel.items()
    }
    times = sorted(reached.values())
    assert report.milestone("first_delivered").at == times[0]
    assert report.milestone("last_delivered").at == times[-1]
    k = rank_for(50, len(by_target))
    assert k is not None
    expected = times[k - 1] if k <= len(times) else None
    assert report.milestone("delivered_50").at == expected
    assert report.warning.state == "completed" and report.milestone("completed").at is not None
