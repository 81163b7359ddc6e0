"""Operator review: queue order, four eyes, self-approval, rejection, cancel, illegal transitions."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.factories import PASSWORD, alert_json, cap_xml, seed
from warnpub.storage.tables import ReviewDecision, Timer

pytestmark = pytest.mark.postgres


@pytest.fixture
async def world(db, settings):
    return await seed(db, settings)


async def submit(client, world, agency="QX", **kw) -> dict:
    r = await client.post("/api/v1/warnings", json=alert_json(**kw), headers=world.agency(agency))
    assert r.status == 202, await r.text()
    return await r.json()


async def test_login_gives_a_token_and_bad_password_is_401(client, world):
    r = await client.post("/api/v1/auth/login", json={"username": "duty1", "password": PASSWORD})
    body = await r.json()
    assert r.status == 200 and body["token"].startswith("wpt_") and body["role"] == "operator"
    queue = await client.get(
        "/api/v1/review/queue", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert queue.status == 200
    bad = await client.post("/api/v1/auth/login", json={"username": "duty1", "password": "wrong"})
    assert bad.status == 401
    audit = await (
        await client.get("/api/v1/audit?action=login.failed", headers=world.operator("chief"))
    ).json()
    assert [e["subject"] for e in audit["entries"]] == ["operator:duty1"]


async def test_queue_is_ordered_by_level_then_deadline(client, world):
    blue = await submit(client, world, severity="Minor")
    yellow = await submit(client, world, severity="Moderate")
    orange = await submit(client, world, severity="Severe")
    queue = await (await client.get("/api/v1/review/queue", headers=world.operator("duty1"))).json()
    assert [w["id"] for w in queue["warnings"]] == [orange["id"], yellow["id"], blue["id"]]


async def test_yellow_needs_one_approval(client, world):
    w = await submit(client, world, severity="Moderate")
    r = await client.post(f"/api/v1/warnings/{w['id']}/approve", headers=world.operator("duty1"))
    assert r.status == 200 and (await r.json())["state"] == "approved"


async def test_orange_needs_two_different_approvers_one_a_supervisor(client, db, world):
    w = await submit(client, world, severity="Severe")
    url = f"/api/v1/warnings/{w['id']}/approve"
    first = await client.post(url, headers=world.operator("duty1"))
    assert first.status == 200 and (await first.json())["state"] == "pending"
    assert (await first.json())["approvals_given"] == 1
    again = await client.post(url, headers=world.operator("duty1"))
    assert again.status == 409 and "already approved" in (await again.json())["detail"]
    by_operator = await client.post(url, headers=world.operator("duty2"))
    assert by_operator.status == 403 and "supervisor" in (await by_operator.json())["detail"]
    final = await client.post(url, headers=world.operator("chief"))
    assert final.status == 200 and (await final.json())["state"] == "approved"
    async with db.session() as s:
        pending_deadlines = (
            await s.execute(
                select(func.count())
                .select_from(Timer)
                .where(Timer.kind == "review_deadline", Timer.state == "pending")
            )
        ).scalar_one()
    assert pending_deadlines == 0


async def test_submitter_never_approves_own_warning(client, db, world):
    r = await client.post(
        "/api/v1/warnings", json=alert_json(sender="qx@320481"), headers=world.operator("duty1")
    )
    wid = (await r.json())["id"]
    own = await client.post(f"/api/v1/warnings/{wid}/approve", headers=world.operator("duty1"))
    assert own.status == 403 and "a different operator" in (await own.json())["detail"]
    async with db.session() as s:
        assert (await s.execute(select(func.count()).select_from(ReviewDecision))).scalar_one() == 0
    other = await client.post(f"/api/v1/warnings/{wid}/approve", headers=world.operator("duty2"))
    assert other.status == 200


async def test_reject_needs_reason_and_is_final(client, world):
    w = await submit(client, world)
    url = f"/api/v1/warnings/{w['id']}"
    no_reason = await client.post(
        f"{url}/reject", json={"reason": " "}, headers=world.operator("duty1")
    )
    assert no_reason.status == 422
    r = await client.post(
        f"{url}/reject", json={"reason": "wrong area"}, headers=world.operator("duty1")
    )
    assert r.status == 200 and (await r.json())["state"] == "rejected"
    late = await client.post(f"{url}/approve", headers=world.operator("duty2"))
    body = await late.json()
    assert late.status == 409 and "it is rejected" in body["detail"] and body["state"] == "rejected"
    detail = await (await client.get(url, headers=world.agency("QX"))).json()
    assert detail["decisions"][0]["reason"] == "wrong area" and "by" not in detail["decisions"][0]


async def test_agency_cannot_review(client, world):
    w = await submit(client, world)
    r = await client.post(f"/api/v1/warnings/{w['id']}/approve", headers=world.agency("QX"))
    assert r.status == 403 and "only operators" in (await r.json())["detail"]


async def test_green_channel_warning_gets_post_review(client, world):
    w = await submit(client, world, severity="Extreme")
    assert w["state"] == "approved" and w["green_channel"]
    r = await client.post(f"/api/v1/warnings/{w['id']}/approve", headers=world.operator("duty1"))
    assert r.status == 200
    detail = await (
        await client.get(f"/api/v1/warnings/{w['id']}", headers=world.operator("duty1"))
    ).json()
    assert detail["post_reviewed"] is not None
    assert [d["decision"] for d in detail["decisions"]] == ["post_review"]


async def test_operator_cancel_and_cap_cancel(client, world):
    w = await submit(client, world)
    r = await client.post(
        f"/api/v1/warnings/{w['id']}/cancel",
        json={"reason": "drill over"},
        headers=world.operator("duty1"),
    )
    assert r.status == 200 and (await r.json())["state"] == "cancelled"
    again = await client.post(
        f"/api/v1/warnings/{w['id']}/cancel", json={"reason": "x"}, headers=world.operator("duty1")
    )
    assert again.status == 409 and "already cancelled" in (await again.json())["detail"]

    h = {**world.agency("QX"), "Content-Type": "application/cap+xml"}
    orig = await (
        await client.post(
            "/api/v1/warnings", data=cap_xml(identifier="qx-c1", severity="Moderate"), headers=h
        )
    ).json()
    ref = f"qx@320481,qx-c1,{orig['sent'].replace('Z', '+00:00')}"
    cancel = await (
        await client.post(
            "/api/v1/warnings",
            data=cap_xml(
                identifier="qx-c2", msg_type="Cancel", references=ref, severity="Moderate"
            ),
            headers=h,
        )
    ).json()
    assert cancel["msg_type"] == "Cancel" and cancel["state"] == "pending"
    await client.post(f"/api/v1/warnings/{cancel['id']}/approve", headers=world.operator("duty1"))
    cancelled = await (
        await client.get(f"/api/v1/warnings/{orig['id']}", headers=world.agency("QX"))
    ).json()
    assert cancelled["state"] == "cancelled"
    # An Update of a cancelled warning is refused.
    upd = await client.post(
        "/api/v1/warnings",
        data=cap_xml(identifier="qx-c3", msg_type="Update", references=ref),
        headers=h,
    )
    assert upd.status == 422 and "cancelled" in str(await upd.json())


async def test_unknown_warning_is_404(client, world):
    r = await client.post("/api/v1/warnings/NOPE/approve", headers=world.operator("duty1"))
    assert r.status == 404


async def test_audit_needs_supervisor(client, world):
    assert (await client.get("/api/v1/audit", headers=world.operator("duty1"))).status == 403
    r = await client.get("/api/v1/audit", headers=world.operator("root"))
    actions = [e["action"] for e in (await r.json())["entries"]]
    assert "agency.added" in actions and "operator.added" in actions
