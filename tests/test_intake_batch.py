"""Submissions that arrive together are written in one transaction (warnpub.intake.batch):
each still gets its own answer — refusals, duplicates and replays included — and what is
stored is what one transaction per submission would have stored."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from tests.factories import TOWN_DAIBU, alert_json, cap_xml, seed
from warnpub.audit.log import verify
from warnpub.intake import batch
from warnpub.storage.tables import AuditEntry, IdempotencyRecord, Timer, WarningArea, WarningRecord


async def test_submissions_together_are_answered_each_and_stored_once(client, db, settings):
    world = await seed(db, settings)
    qx = world.agency("QX")
    twin = alert_json(identifier="batch-twin")
    keyed = alert_json(identifier="batch-keyed")
    requests = [
        *(("json", alert_json(identifier=f"batch-{i}"), qx, None) for i in range(20)),
        ("json", twin, qx, None),
        ("json", twin, qx, None),  # the same warning twice: stored once, 200 the second time
        ("json", keyed, qx, "k-1"),
        ("json", keyed, qx, "k-1"),  # replayed Idempotency-Key
        ("json", alert_json(identifier="batch-out", code=TOWN_DAIBU), world.agency("SL"), None),
        ("json", alert_json(identifier="batch-unknown", code="320481999000"), qx, None),
        ("xml", cap_xml(identifier="batch-xml", severity="Moderate"), qx, None),
    ]

    async def post(kind, body, headers, key):
        headers = {**headers, **({"Idempotency-Key": key} if key else {})}
        if kind == "xml":
            headers["Content-Type"] = "application/cap+xml"
            r = await client.post("/api/v1/warnings", data=body, headers=headers)
        else:
            r = await client.post("/api/v1/warnings", json=body, headers=headers)
        return r.status, await r.json()

    answers = await asyncio.gather(*(post(*r) for r in requests))
    statuses = [status for status, _ in answers]
    assert statuses[:20] == [202] * 20
    assert sorted(statuses[20:22]) == [200, 202] and answers[20][1]["id"] == answers[21][1]["id"]
    assert statuses[22:24] == [202, 202] and answers[22][1] == answers[23][1]
    assert statuses[24] == 403 and answers[24][1]["type"].endswith("out-of-scope")
    assert statuses[25] == 422 and "320481999000" in str(answers[25][1])
    assert statuses[26] == 202

    writer = batch._writers[db]
    assert writer.batches >= 1 and writer.fallbacks == 0
    async with db.reader() as s:
        warnings = (await s.execute(select(func.count()).select_from(WarningRecord))).scalar_one()
        areas = (await s.execute(select(func.count()).select_from(WarningArea))).scalar_one()
        timers = (await s.execute(select(func.count()).select_from(Timer))).scalar_one()
        keys = (await s.execute(select(func.count()).select_from(IdempotencyRecord))).scalar_one()
        submitted = (
            await s.execute(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "warning.submitted")
            )
        ).scalar_one()
        chain = await verify(s)
    assert warnings == 23 and areas == 23 and timers == 46 and submitted == 23
    assert keys == 1
    assert chain.ok, chain

    # Together again, against what is stored now: duplicates, replays and Updates of it.
    first = {body["identifier"]: body for _, body in answers[:20]}
    again = [
        ("json", alert_json(identifier="batch-3", severity="Minor"), qx, None),  # other content
        ("json", twin, qx, None),
        ("json", keyed, qx, "k-1"),
        *(
            (
                "json",
                alert_json(
                    identifier=f"batch-update-{i}",
                    msg_type="Update",
                    references=[
                        f"qx@320481,batch-{i}," + first[f"batch-{i}"]["sent"].replace("Z", "+00:00")
                    ],
                ),
                qx,
                None,
            )
            for i in range(10)
        ),
    ]
    answers = await asyncio.gather(*(post(*r) for r in again))
    statuses = [status for status, _ in answers]
    assert statuses[0] == 409 and answers[0][1]["type"].endswith("identifier-reused")
    assert statuses[1] == 200 and answers[1][1]["duplicate"] is True
    assert statuses[2] == 202  # the first answer to key k-1, replayed
    assert statuses[3:] == [202] * 10, answers[3:]
    async with db.reader() as s:
        refs = (
            await s.execute(
                select(func.count())
                .select_from(WarningRecord)
                .where(WarningRecord.msg_type == "Update")
            )
        ).scalar_one()
        chain = await verify(s)
    assert refs == 10 and chain.ok and chain.entries >= 33
