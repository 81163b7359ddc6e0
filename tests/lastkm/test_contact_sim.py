"""The simulated village contacts (warnpub/lastkm/contact_sim.py): reading the texts back, and
end to end with the real gateway simulator on loopback and the app — the contacts it plays
acknowledge by reply code and report their visits; a silent one does neither and escalates."""

from __future__ import annotations

from sqlalchemy import select

from tests.lastkm.conftest import PHONES, Village
from warnpub.lastkm import texts
from warnpub.lastkm.contact_sim import ContactSim, ContactSimOptions, ack_code, visit_list
from warnpub.lastkm.tables import Acknowledgement, VisitTask
from warnpub.storage.tables import Escalation, WarningRecord

DRILL = WarningRecord(id="w1", status="Exercise", level="yellow", headline="暴雨[9]预警", hazard="rainstorm")


def test_reads_visit_lists_and_ack_lines_in_both_languages():
    people = [(1, "张三", 1), (2, "李四", 2), (12, "王五", 4)]
    for language in ("zh-CN", "en"):
        listed = texts.visit_list(DRILL, people, "4163", "http://h/a/1a.abcdefghijkl", language)
        found = visit_list(listed)
        assert found is not None and (found.code, found.numbers) == ("4163", (1, 2, 12)), listed
        assert ack_code(listed) is None  # a visit list is answered with its numbers
        asked = "正文 " + texts.ack_line("4821", "http://h/a/2b.abcdefghijkl", language)
        assert ack_code(asked) == "4821" and visit_list(asked) is None


def test_leaves_other_texts_alone():
    others = [
        texts.visits_recorded([(1, "张三")], [(2, "李四")], [], "zh-CN"),
        texts.not_understood("4821", "zh-CN"),
        texts.not_understood("4821", "en"),
        texts.nothing_waiting("en"),
        texts.unacknowledged_alert(DRILL, "张三", "联络员", "社渚村", "+8613900000001", 5, "zh-CN"),
        "【演练】蓝色预警：减少外出。",
    ]
    for text in others:
        assert ack_code(text) is None and visit_list(text) is None, text


async def _acks(v: Village, warning_id: str) -> dict[int, str]:
    async with v.db.reader() as s:
        rows = (
            await s.execute(select(Acknowledgement).where(Acknowledgement.warning_id == warning_id))
        ).scalars()
        return {a.target_id: a.via for a in rows if a.target_kind == "person"}


async def _tasks(v: Village, warning_id: str) -> list[VisitTask]:
    async with v.db.reader() as s:
        return list(
            (await s.execute(select(VisitTask).where(VisitTask.warning_id == warning_id))).scalars()
        )


async def test_contacts_acknowledge_and_report_visits_and_a_silent_one_escalates(village: Village):
    v = village
    played = {PHONES[k] for k in ("contact_a", "contact_b", "contact_c", "officer")}
    contacts = ContactSim(
        ContactSimOptions(
            v.sim.url,
            phones=played,
            silent={PHONES["contact_c"]},
            delay_s=0.2,
            visit_delay_s=0.5,
            visit_per_person_s=0.1,
            poll_s=0.1,
        )
    )
    await contacts.start()
    try:
        warning_id = await v.submit_and_approve()
        a, b, c = (v.ids[k] for k in ("contact_a", "contact_b", "contact_c"))
        visited = {v.ids[k] for k in ("nophone_a", "visual", "elderly", "nophone_b")}

        async def acknowledged_and_visited():
            acks = await _acks(v, warning_id)
            tasks = await _tasks(v, warning_id)
            done = {t.person_id for t in tasks if t.state == "done"}
            return acks if a in acks and b in acks and visited <= done else None

        acks = await v.until(acknowledged_and_visited, "contacts A and B acknowledged and visited")

        async def console():
            async with v.db.reader() as s:
                return (
                    await s.execute(
                        select(Escalation).where(
                            Escalation.warning_id == warning_id, Escalation.kind == "unacknowledged"
                        )
                    )
                ).scalars().all()

        raised = await v.until(console, "an escalation for the silent contact C")
        assert await contacts.settle(5)
    finally:
        await contacts.stop()

    assert acks[a] == "sms_reply" and acks[b] == "sms_reply"
    assert all(acks[p] == "in_person" for p in visited)
    assert c not in await _acks(v, warning_id)
    assert len(raised) == 1 and "测试contact_c" in raised[0].message

    replies = contacts.replies
    assert all(r.forwarded for r in replies) and replies
    assert not [r for r in replies if r.phone == PHONES["contact_c"]]
    tasks = await _tasks(v, warning_id)
    for contact in ("contact_a", "contact_b"):
        mine = sorted(t.number for t in tasks if t.contact_id == v.ids[contact])
        reported = sorted(n for r in replies if r.phone == PHONES[contact] for n in r.numbers)
        assert reported == mine, contact
    s = contacts.stats
    assert s.acks_sent >= 2 and s.visit_replies >= 2 and s.visits_reported == len(tasks)
    assert s.ignored_silent >= 1 and s.replies_failed == 0
    # The silent contact got the warning (and a reminder) but never answered.
    assert v.texts_to("contact_c")


async def test_reports_each_person_as_told(village: Village):
    v = village
    contacts = ContactSim(
        ContactSimOptions(
            v.sim.url,
            phones={PHONES["contact_a"]},
            delay_s=0.1,
            visit_delay_s=0.2,
            visit_per_person_s=0.2,
            report_each=True,
            poll_s=0.1,
        )
    )
    await contacts.start()
    try:
        warning_id = await v.submit_and_approve()
        mine = {v.ids[k] for k in ("nophone_a", "visual", "elderly")}

        async def visited():
            tasks = await _tasks(v, warning_id)
            return mine <= {t.person_id for t in tasks if t.state == "done"}

        await v.until(visited, "contact A's people reported one by one")
        assert await contacts.settle(5)
    finally:
        await contacts.stop()
    visits = [r for r in contacts.replies if r.kind == "visit"]
    assert len(visits) >= 3 and all(len(r.numbers) == 1 for r in visits)
    assert contacts.stats.visits_reported == len(visits)
