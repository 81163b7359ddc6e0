"""Follow-ups and the ladder's edges: a Cancel stops escalations and closes visit lists, the
ladder in force is the one frozen at release, an Update takes over from what it updates, a
final report (Update + responseType AllClear) asks for no escalation, and a review deadline
that passes is told to the supervisors through the channels."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.factories import VILLAGE_SHEZHU, alert_json
from tests.lastkm.conftest import Village
from warnpub.clock import utcnow
from warnpub.config import LadderConfig
from warnpub.lastkm.tables import AckPlan, LadderState, VisitTask
from warnpub.storage.tables import Timer, WarningRecord

pytestmark = pytest.mark.postgres


async def _ladders(v: Village, warning_id: str) -> dict[int, LadderState]:
    async with v.db.reader() as s:
        rows = await s.execute(select(LadderState).where(LadderState.warning_id == warning_id))
        return {r.person_id: r for r in rows.scalars()}


async def _plan(v: Village, warning_id: str) -> AckPlan:
    async with v.db.reader() as s:
        plan = await s.get(AckPlan, warning_id)
    assert plan is not None
    return plan


async def test_cancel_stops_escalations_and_closes_visit_lists(village: Village):
    v = village
    warning_id = await v.submit_and_approve()

    async def climbing():
        found = await _ladders(v, warning_id)
        return found if found and all(s.taken >= 1 for s in found.values()) else None

    await v.until(climbing, "the silent contacts' ladders started")
    r = await v.client.post(
        f"/api/v1/warnings/{warning_id}/cancel",
        json={"reason": "wrong village"},
        headers=v.world.operator("duty1"),
    )
    assert r.status == 200, await r.text()
    taken = {pid: s.taken for pid, s in (await _ladders(v, warning_id)).items()}
    officer_before = len(v.texts_to("officer"))
    for _ in range(15):  # 1.5 s of ticks: at wait_s = 0.5 s the ladder would have moved twice
        await v.dispatcher.sweep()
        await v.runner.tick()
        await asyncio.sleep(0.1)
    after = await _ladders(v, warning_id)
    assert {pid: s.taken for pid, s in after.items()} == taken
    assert {s.state for s in after.values()} <= {"stopped", "acknowledged"}
    assert len(v.texts_to("officer")) == officer_before
    assert (await _plan(v, warning_id)).closed_at is not None
    async with v.db.reader() as s:
        tasks = (await s.execute(select(VisitTask).where(VisitTask.warning_id == warning_id))).scalars().all()
        pending = (
            await s.execute(
                select(Timer).where(Timer.warning_id == warning_id, Timer.kind == "ladder.tick", Timer.state == "pending")
            )
        ).scalars().all()
    assert all(t.state == "closed" for t in tasks)
    assert not pending


async def test_the_ladder_is_frozen_at_release(village: Village):
    v = village
    warning_id = await v.submit_and_approve()
    frozen = (await _plan(v, warning_id)).ladder
    assert frozen["steps"] == ["resend", "duty_officer", "console"] and frozen["wait_s"] == 0.5
    # An edit after release changes nothing in flight.
    v.settings.escalation.ladders = {"yellow": LadderConfig(wait_s=600, steps=["console"])}  # type: ignore[misc]

    async def reminded():
        return [t for t in v.texts_to("contact_c") if t.startswith("【提醒】")]

    await v.until(reminded, "contact C reminded by the frozen ladder's resend step")
    assert (await _plan(v, warning_id)).ladder == frozen


async def test_an_update_takes_over_and_a_final_report_asks_no_escalation(village: Village):
    v = village
    first = await v.submit_and_approve(identifier="lk-first")
    async with v.db.reader() as s:
        original = await s.get(WarningRecord, first)
        assert original is not None
        ref = f"{original.sender},{original.identifier},{original.alert['sent']}"
    update_id = await v.submit_and_approve(identifier="lk-update", msg_type="Update", references=[ref])
    assert (await _plan(v, first)).closed_at is not None
    assert (await _plan(v, update_id)).closed_at is None
    # The update's own messages ask the contacts again, marked as an update.
    async def update_sent():
        return all(any(t.startswith("【续报】") for t in v.texts_to(c)) for c in ("contact_a", "contact_c"))

    await v.until(update_sent, "the update reached the contacts")
    async with v.db.reader() as s:
        upd = await s.get(WarningRecord, update_id)
        assert upd is not None
        ref2 = f"{upd.sender},{upd.identifier},{upd.alert['sent']}"
    final = await v.submit_and_approve(
        identifier="lk-final", msg_type="Update", references=[ref2], response_types=["AllClear"]
    )
    assert (await _plan(v, update_id)).closed_at is not None
    final_plan = await _plan(v, final)
    assert final_plan.closed_at is not None and final_plan.ladder["steps"] == []
    async with v.db.reader() as s:
        ticks = (
            await s.execute(select(Timer).where(Timer.kind == "ladder.tick", Timer.state == "pending"))
        ).scalars().all()
    assert not ticks


async def test_a_review_deadline_that_passes_is_told_to_supervisors(village: Village):
    v = village
    v.settings.escalation.supervisors = ["+8613900000099"]
    r = await v.client.post(
        "/api/v1/warnings",
        json=alert_json(code=VILLAGE_SHEZHU),
        headers=v.world.agency("QX"),
    )
    assert r.status == 202
    warning_id = (await r.json())["id"]
    async with v.db.session() as s:
        await s.execute(
            update(Timer)
            .where(Timer.warning_id == warning_id, Timer.kind == "review_deadline")
            .values(due_at=utcnow() - timedelta(seconds=1))
        )

    async def told():
        return [
            m["text"]
            for m in v.sim.gateway.messages(0, 1000)["messages"]
            if m["to"] == "+8613900000099"
        ]

    texts = await v.until(told, "the supervisor told of the passed review deadline")
    assert "【审核超时】" in texts[0]
    body = await (await v.client.get(f"/api/v1/warnings/{warning_id}", headers=v.world.operator("duty1"))).json()
    assert body["state"] == "pending"


async def test_acknowledgements_are_asked_only_at_the_configured_levels(village: Village):
    v = village
    v.settings.audiences.ack_required.levels = ["red"]  # type: ignore[list-item]
    warning_id = await v.submit_and_approve()  # yellow

    async def contacts_messaged():
        return all(v.texts_to(c) for c in ("contact_a", "contact_c"))

    await v.until(contacts_messaged, "the contacts got the yellow warning")
    assert not any("收到请回复" in t for t in v.texts_to("contact_a"))
    for _ in range(20):
        await v.dispatcher.sweep()
        await v.runner.tick()
    assert not await _ladders(v, warning_id)
