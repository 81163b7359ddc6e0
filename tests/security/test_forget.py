"""``warnpub audience forget ID``: the person and every copy of their name, number and replies
gone; every count of every report the same as before; one transaction; idempotent."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlmodel import SQLModel

import warnpub.storage.tables  # noqa: F401  (every table on the metadata)
from tests.reports.county import P3_PHONE, V2, County, add_visit, build, m
from warnpub.audiences import forget as forget_module
from warnpub.audiences.forget import forget_person
from warnpub.audiences.tables import Person
from warnpub.audit.log import verify
from warnpub.boards.tables import BoardWarning
from warnpub.cli.main import main
from warnpub.lastkm.tables import Acknowledgement, LadderState, Notice, VisitTask
from warnpub.problems import Problem
from warnpub.reports import build_report
from warnpub.storage.engine import Database
from warnpub.storage.tables import AuditEntry, Delivery, Escalation, InboundMessage

P3_NAME = "视障三"
P3_NATIONAL = P3_PHONE.removeprefix("+86")
OTHER_PHONE = "+8613800000099"
NEEDLES = (P3_NAME, P3_PHONE, P3_NATIONAL)


async def traces(db: Database, settings) -> County:
    """The report county, plus everything the last kilometre writes about P3 (视障三, visually
    impaired, visited by her village contact P5 联络员五)."""
    county = await build(db, settings, status="Exercise")
    p3, p5 = county.people["P3"], county.people["P5"]
    async with db.session() as s:
        await add_visit(s, county)
        s.add(
            Acknowledgement(
                warning_id=county.warning_id,
                target_kind="person",
                target_id=p3,
                via="in_person",
                at=m(30),
                reported_by=p5,
            )
        )
        s.add(LadderState(warning_id=county.warning_id, person_id=p3, next_at=m(40)))
        # A visit list to the contact that names her; an answer to her own reply (unsent).
        s.add(
            Notice(
                warning_id=county.warning_id,
                kind="visit_list",
                channel="sms",
                address="+8613900000005",
                person_id=p5,
                text=f"请走访: 1 {P3_NAME} {P3_NATIONAL} 视障",
            )
        )
        answer = Notice(
            warning_id=county.warning_id,
            kind="reply_answer",
            channel="sms",
            address=P3_PHONE,
            person_id=p3,
            text="已收到您的回复",
        )
        s.add(answer)
        await s.flush()
        s.add(
            Delivery(
                warning_id=county.warning_id,
                target_kind="notice",
                target_id=answer.id,
                channel="sms",
                area_code=V2,
                state="queued",
                next_attempt_at=m(31),
            )
        )
        s.add_all(
            [
                InboundMessage(gateway="sim", sender=P3_PHONE, text="收到", received_at=m(20)),
                InboundMessage(
                    gateway="sim",
                    sender="+8613900000005",
                    text=f"2 {P3_NAME}已告知",
                    received_at=m(21),
                ),
                InboundMessage(gateway="sim", sender=OTHER_PHONE, text="1", received_at=m(22)),
            ]
        )
        s.add(
            Escalation(
                warning_id=county.warning_id,
                kind="unacknowledged",
                message=f"{P3_NAME} ({P3_PHONE}) did not acknowledge",
            )
        )
        s.add(
            BoardWarning(
                device_id=county.devices["D2"],
                warning_id=county.warning_id,
                posted_by=P3_NAME,
                posted_at=m(50),
            )
        )
    return county


async def snapshot(db: Database) -> dict[str, list[str]]:
    """Every row of every table, as text."""
    out: dict[str, list[str]] = {}
    async with db.session() as s:
        for table in SQLModel.metadata.sorted_tables:
            rows = (await s.execute(select(table))).all()
            out[table.name] = sorted(repr(tuple(r)) for r in rows)
    return out


def alltext(tables: dict[str, list[str]]) -> str:
    return "\n".join(row for rows in tables.values() for row in rows)


def figures(report) -> dict:
    """Every count of the report, by every breakdown."""
    rows = lambda xs: {(r.key, r.label): r.counts.as_dict() for r in xs}  # noqa: E731
    return {
        "totals": report.totals.as_dict(),
        "people": report.people.as_dict(),
        "devices": report.devices.as_dict(),
        "town": rows(report.by_town),
        "village": rows(report.by_village),
        "tier": rows(report.by_tier),
        "needs": rows(report.by_needs),
        "channel": rows(report.by_channel),
        "milestones": {x.name: x.at for x in report.milestones},
        "unreached": report.unreached_total,
        "checks": {c.name: (c.status, c.measured) for c in report.checks},
    }


@pytest.mark.postgres
async def test_forgetting_keeps_every_count_and_leaves_no_trace(db, settings):
    county = await traces(db, settings)
    p3, p5 = county.people["P3"], county.people["P5"]
    before = await build_report(db, settings, county.warning_id, unreached=True)
    dump = alltext(await snapshot(db))
    assert all(n in dump for n in NEEDLES), "the test must start with the traces in place"

    async with db.session() as s:
        done = await forget_person(s, p3, actor="cli:test")
    assert not done.already and done.counts["deliveries"] == 2

    after = await build_report(db, settings, county.warning_id, unreached=True)
    assert figures(after) == figures(before)
    # She is still one of the unreached (the counts say so), listed by no name.
    gone = [u for u in after.unreached if u.id == -p3]
    assert gone and gone[0].name == "(forgotten)" and gone[0].phone == ""
    assert gone[0].needs == ["visually_impaired"] and gone[0].area_code == V2

    tables = await snapshot(db)
    for name, rows in tables.items():
        text = "\n".join(rows)
        for needle in NEEDLES:
            assert needle not in text, f"{needle} is still in {name}"
    async with db.session() as s:
        assert await s.get(Person, p3) is None
        assert await s.get(Person, p5) is not None  # her contact stays
        # Nothing more goes to her: the answer to her reply was cancelled.
        notice_rows = (
            (await s.execute(select(Delivery.state).where(Delivery.target_kind == "notice")))
            .scalars()
            .all()
        )
        assert notice_rows == ["cancelled"]
        assert (await s.execute(select(LadderState.state))).scalar_one() == "stopped"
        assert (await s.execute(select(VisitTask.state))).scalar_one() == "closed"
        ack = (await s.execute(select(Acknowledgement))).scalar_one()
        assert (ack.target_id, ack.reported_by) == (-p3, p5)
        senders = sorted((await s.execute(select(InboundMessage.sender))).scalars())
        assert senders == sorted(["+8613900000005", OTHER_PHONE])  # hers deleted, others kept
        entry = (
            await s.execute(select(AuditEntry).where(AuditEntry.action == "person.forgotten"))
        ).scalar_one()
        assert entry.subject == f"person:{p3}" and entry.actor == "cli:test"
        assert all(n not in repr(entry.details) for n in NEEDLES)
        assert (await verify(s)).ok


@pytest.mark.postgres
async def test_forgetting_a_village_contact_unlinks_the_people_she_visits(db, settings):
    county = await traces(db, settings)
    p3, p5 = county.people["P3"], county.people["P5"]
    before = figures(await build_report(db, settings, county.warning_id, unreached=True))
    async with db.session() as s:
        await forget_person(s, p5, actor="cli:test")
    after = await build_report(db, settings, county.warning_id, unreached=True)
    assert figures(after) == before
    async with db.session() as s:
        assert (await s.get(Person, p3)).relay_contact_id is None
        task = (await s.execute(select(VisitTask))).scalar_one()
        assert task.contact_id == -p5 and task.person_id == p3
        ack = (await s.execute(select(Acknowledgement))).scalar_one()
        assert ack.reported_by == -p5
    dump = alltext(await snapshot(db))
    assert "联络员五" not in dump and "+8613900000005" not in dump and "13900000005" not in dump


@pytest.mark.postgres
async def test_a_shared_family_phone_keeps_the_other_persons_replies(db, settings):
    county = await traces(db, settings)
    async with db.session() as s:
        s.add(Person(name="视障三的儿子", area_code=V2, phone=P3_PHONE))
    async with db.session() as s:
        await forget_person(s, county.people["P3"], actor="cli:test")
    async with db.session() as s:
        senders = list((await s.execute(select(InboundMessage.sender))).scalars())
    assert P3_PHONE in senders


@pytest.mark.postgres
async def test_forgetting_again_changes_nothing_and_unknown_ids_are_refused(db, settings):
    county = await traces(db, settings)
    p3 = county.people["P3"]
    async with db.session() as s:
        await forget_person(s, p3, actor="cli:test")
    first = await snapshot(db)
    async with db.session() as s:
        again = await forget_person(s, p3, actor="cli:test")
    assert again.already and await snapshot(db) == first
    for bad in (987654, 0, -p3):
        with pytest.raises(Problem) as refused:
            async with db.session() as s:
                await forget_person(s, bad, actor="cli:test")
        assert refused.value.status in (404, 422) and "person" in refused.value.detail
        assert await snapshot(db) == first


@pytest.mark.postgres
@pytest.mark.parametrize("crash_at", ["_redact_column", "audit"])
async def test_a_crash_midway_leaves_the_person_intact(db, settings, monkeypatch, crash_at):
    county = await traces(db, settings)
    before = await snapshot(db)
    calls = {"n": 0}
    real = getattr(forget_module, crash_at)

    async def crash(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # well after the deliveries and acknowledgements were re-pointed
            raise RuntimeError("power cut")
        return await real(*args, **kwargs)

    async def crash_now(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(forget_module, crash_at, crash if crash_at != "audit" else crash_now)
    with pytest.raises(RuntimeError, match="power cut"):
        async with db.session() as s:
            await forget_person(s, county.people["P3"], actor="cli:test")
    assert await snapshot(db) == before


def test_cli_forget(settings, monkeypatch, capsys):
    monkeypatch.delenv("WARNPUB_CONFIG", raising=False)
    monkeypatch.setenv("WARNPUB_DATABASE_URL", settings.database.url)

    async def setup() -> County:
        db = Database(settings.database.url)
        try:
            return await traces(db, settings)
        finally:
            await db.dispose()

    async def dump() -> dict[str, list[str]]:
        db = Database(settings.database.url)
        try:
            return await snapshot(db)
        finally:
            await db.dispose()

    county = asyncio.run(setup())
    p3 = county.people["P3"]
    assert main(["audience", "forget", "987654"]) == 2
    assert "no person with id 987654" in capsys.readouterr().err
    assert main(["audience", "forget", "张三"]) == 2
    assert "is not a person id" in capsys.readouterr().err
    untouched = asyncio.run(dump())
    assert main(["audience", "forget", "987654"]) == 2 and asyncio.run(dump()) == untouched

    assert main(["audience", "forget", str(p3)]) == 0
    out = capsys.readouterr().out
    assert f"person {p3} forgotten: 2 delivery row(s) kept" in out
    assert P3_NAME not in out and P3_PHONE not in out
    done = asyncio.run(dump())
    assert main(["audience", "forget", str(p3)]) == 0
    assert "already forgotten" in capsys.readouterr().out
    assert asyncio.run(dump()) == done
    assert main(["audit", "verify"]) == 0
    entries = [r for r in done["audit_log"] if "person.forgotten" in r]
    assert len(entries) == 1 and f"person:{p3}" in entries[0] and "'cli" in entries[0]


@pytest.mark.postgres
async def test_timestamps_of_cancelled_rows_are_set(db, settings):
    """Rows cancelled for a forgotten person are final (the report no longer waits for them)."""
    county = await traces(db, settings)
    p8 = county.people["P8"]
    async with db.session() as s:
        s.add(
            Delivery(
                warning_id=county.warning_id,
                target_kind="person",
                target_id=p8,
                channel="email",
                stage=1,
                area_code=V2,
                state="planned",
                next_attempt_at=m(2),
            )
        )
    async with db.session() as s:
        done = await forget_person(s, p8, actor="cli:test")
    assert done.counts["deliveries_cancelled"] == 1
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Delivery.state, Delivery.final_at, Delivery.route).where(
                    Delivery.target_id == -p8
                )
            )
        ).all()
        assert sorted(r.state for r in rows) == ["cancelled", "delivered"]
        assert all(r.final_at is not None for r in rows)
        assert {r.route for r in rows} == {"forgotten:0"}
        n = (await s.execute(select(func.count()).select_from(Person))).scalar_one()
    assert n == 7
