"""Issue 6, end to end on a synthetic village with every needs group: contacts acknowledge by
reply code and by link, one stays silent and the ladder escalates to the town duty officer,
visit tasks are made for the no-phone and visually impaired people and closed by the
contacts' reports, and the report's numbers match what happened."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.lastkm.conftest import CODE_IN_TEXT, LINK_IN_TEXT, Village
from warnpub.lastkm.tables import Acknowledgement, LadderState, VisitTask
from warnpub.storage.tables import Escalation

pytestmark = pytest.mark.postgres


async def test_acknowledgements_escalation_visits_and_report(village: Village):
    v = village
    warning_id = await v.submit_and_approve()

    def warning_texts(who: str) -> list[str]:
        return [t for t in v.texts_to(who) if not t.startswith("【上门告知】")]

    async def contacts_messaged():
        return all(warning_texts(c) for c in ("contact_a", "contact_b", "contact_c"))

    await v.until(contacts_messaged, "the three contacts got the warning")
    first_a = warning_texts("contact_a")[0]
    code_match = CODE_IN_TEXT.search(first_a)
    assert code_match, first_a
    code = code_match.group(1)
    assert LINK_IN_TEXT.search(first_a), first_a
    # Residents are not asked to acknowledge.
    assert not CODE_IN_TEXT.search(v.texts_to("resident")[0])

    # Contact A acknowledges by reply code.
    await v.reply("contact_a", code)
    # Contact B by the link: the page records nothing until the button is pressed.
    link = LINK_IN_TEXT.search(warning_texts("contact_b")[0]).group(1)  # type: ignore[union-attr]
    path = link.split(str(v.client.server.port), 1)[1]
    page = await v.client.get(path)
    assert page.status == 200 and "我已收到" in await page.text()
    async with v.db.reader() as s:
        assert not (
            await s.execute(
                select(Acknowledgement).where(Acknowledgement.target_id == v.ids["contact_b"])
            )
        ).first()
    done = await v.client.post(path, data={})
    assert done.status == 200

    # Visit tasks: no phone, visually impaired (speaker and voice are not there: the route
    # falls to the contact), elderly living alone (SMS and a visit at once).
    async def tasks():
        async with v.db.reader() as s:
            rows = (await s.execute(select(VisitTask).where(VisitTask.warning_id == warning_id))).scalars().all()
        by_person = {t.person_id: t for t in rows}
        wanted = {v.ids[k] for k in ("nophone_a", "visual", "elderly", "nophone_b")}
        return by_person if wanted <= set(by_person) else None

    by_person = await v.until(tasks, "visit tasks for the people only a visit reaches")
    assert by_person[v.ids["nophone_a"]].contact_id == v.ids["contact_a"]
    assert by_person[v.ids["nophone_b"]].contact_id == v.ids["contact_b"]
    assert v.ids["hearing"] not in by_person and v.ids["resident"] not in by_person

    async def visit_lists():
        a = [t for t in v.texts_to("contact_a") if "【上门告知】" in t]
        b = [t for t in v.texts_to("contact_b") if "【上门告知】" in t]
        return (a, b) if a and b else None

    lists_a, lists_b = await v.until(visit_lists, "visit lists sent to contacts A and B")
    assert "测试nophone_a" in "".join(lists_a) and "无手机" in "".join(lists_a)
    assert "视障" in "".join(lists_a)

    # Contact A reports by SMS, "2 5" style, with the code first.
    numbers_a = sorted(t.number for t in by_person.values() if t.contact_id == v.ids["contact_a"])
    body = await v.reply("contact_a", f"{code} " + " ".join(map(str, numbers_a)))
    assert body["forwarded"]
    # Contact B ticks the checklist on the page the visit list links to.
    list_link = LINK_IN_TEXT.search(lists_b[0]).group(1)  # type: ignore[union-attr]
    list_path = list_link.split(str(v.client.server.port), 1)[1]
    page = await v.client.get(list_path)
    text = await page.text()
    assert "测试nophone_b" in text and 'type="checkbox"' in text
    number_b = by_person[v.ids["nophone_b"]].number
    r = await v.client.post(list_path, data={"reached": str(number_b)})
    assert r.status == 200 and "已全部告知" in await r.text()

    # Contact C stays silent: reminder, then the town duty officer, then the console.
    async def officer_alerted():
        return [t for t in v.texts_to("officer") if "【预警升级】" in t]

    alerts = await v.until(officer_alerted, "the town duty officer alerted about contact C")
    assert "测试contact_c" in alerts[0] and "+8613900000003" in alerts[0]
    assert any(t.startswith("【提醒】") for t in v.texts_to("contact_c"))

    async def console():
        async with v.db.reader() as s:
            return (
                await s.execute(
                    select(Escalation).where(
                        Escalation.warning_id == warning_id, Escalation.kind == "unacknowledged"
                    )
                )
            ).scalars().all()

    raised = await v.until(console, "an escalation in the console for contact C")
    assert len(raised) == 1 and "测试contact_c" in raised[0].message

    # A reply that matches nothing gets a polite answer; an unknown number changes nothing.
    before = len(v.texts_to("contact_a"))
    await v.reply("contact_a", "请问是什么情况？")
    await v.until(lambda: _more(v, "contact_a", before), "a polite answer to contact A")
    assert "未能识别" in v.texts_to("contact_a")[-1]
    total = len(v.sim.gateway.messages(0, 100_000)["messages"])
    await v.reply("x", code, phone="+8613911112222")
    async with v.db.reader() as s:
        acks = (await s.execute(select(Acknowledgement).where(Acknowledgement.warning_id == warning_id))).scalars().all()
        ladders = {
            ls.person_id: ls
            for ls in (await s.execute(select(LadderState).where(LadderState.warning_id == warning_id))).scalars()
        }
    how = {a.target_id: a.via for a in acks if a.target_kind == "person"}
    assert how[v.ids["contact_a"]] == "sms_reply" and how[v.ids["contact_b"]] == "link"
    assert v.ids["contact_c"] not in how
    assert how[v.ids["nophone_a"]] == "in_person" and how[v.ids["nophone_b"]] == "in_person"
    assert ladders[v.ids["contact_c"]].taken >= 2
    assert ladders.get(v.ids["contact_a"]) is None or ladders[v.ids["contact_a"]].state == "acknowledged"

    # The visit tasks, per village, as operators see them.
    r = await v.client.get(f"/api/v1/warnings/{warning_id}/visits", headers=v.world.operator("duty1"))
    assert r.status == 200, await r.text()
    listing = await r.json()
    assert listing["counts"]["done"] == 4 and listing["counts"]["open"] == 0
    assert [x["area_code"] for x in listing["villages"]] == ["320481116200"]
    done = {t["name"]: t for t in listing["villages"][0]["tasks"] if t["state"] == "done"}
    assert done["测试nophone_a"]["done_via"] == "sms_reply" and done["测试nophone_b"]["done_via"] == "link"
    assert "no_phone" in done["测试nophone_a"]["needs"]
    assert (await v.client.get(f"/api/v1/warnings/{warning_id}/visits")).status == 401

    # The report: its numbers match what happened.
    r = await v.client.get(
        f"/api/v1/warnings/{warning_id}/report", headers=v.world.operator("duty1")
    )
    assert r.status == 200, await r.text()
    report = await r.json()
    tiers = {row["label"]: row for row in report["by_tier"]}
    contacts_row = tiers["village_contacts"]
    assert contacts_row["targeted"] == 3 and contacts_row["ack_expected"] == 3, contacts_row
    assert contacts_row["acknowledged"] == 2, contacts_row  # A and B; C stayed silent
    needs = {row["key"]: row for row in report["by_needs"]}
    assert needs["no_phone"]["targeted"] == 2 and needs["no_phone"]["delivered"] == 2, needs
    people = report["people"]
    # 3 contacts + 8 residents of the village (the officer is the town's, not the village's);
    # notices (alerts, answers, visit lists) are not targets.
    assert people["targeted"] == 11, people
    # Everyone was reached: SMS receipts, and the four visited reported by their contacts.
    assert people["delivered"] == 11 and people["unreached"] == 0, people
    assert people["acknowledged"] == 2 + 4, people  # A, B and the four people visited
    assert len(v.sim.gateway.messages(0, 100_000)["messages"]) >= total


async def _more(v: Village, who: str, before: int) -> bool:
    return len(v.texts_to(who)) > before


def test_link_pattern_is_what_links_make():
    from warnpub.lastkm import links

    url = links.url("http://127.0.0.1:8080", "00" * 32, 123456)
    assert re.fullmatch(LINK_IN_TEXT, url)
