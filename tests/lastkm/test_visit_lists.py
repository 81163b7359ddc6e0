"""The visit channel's batch: tasks numbered per contact, one visit list per contact with a
signed link to its own delivery, and the list's place in the queue under each policy."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.lastkm.conftest import LINK_IN_TEXT, Village
from warnpub.lastkm import links
from warnpub.lastkm.tables import Notice, VisitTask
from warnpub.storage.tables import Delivery


async def _lists_and_tasks(v: Village, warning_id: str):
    async def made():
        async with v.db.reader() as s:
            tasks = (
                (await s.execute(select(VisitTask).where(VisitTask.warning_id == warning_id)))
                .scalars()
                .all()
            )
            lists = (
                await s.execute(
                    select(Notice, Delivery)
                    .join(
                        Delivery,
                        (Delivery.target_id == Notice.id) & (Delivery.target_kind == "notice"),
                    )
                    .where(Notice.warning_id == warning_id, Notice.kind == "visit_list")
                )
            ).all()
            relays = (
                (
                    await s.execute(
                        select(Delivery).where(
                            Delivery.warning_id == warning_id, Delivery.channel == "relay"
                        )
                    )
                )
                .scalars()
                .all()
            )
        done = tasks and lists and all(d.provider_ref for d in relays if d.state != "failed")
        return (tasks, lists, relays) if done else None

    return await v.until(made, "visit tasks and lists made")


@pytest.mark.parametrize("order", ["tiers", "fifo"])
async def test_tasks_lists_links_and_priority(village: Village, order: str):
    v = village
    v.settings.dispatch.priority_order = order  # type: ignore[assignment]
    warning_id = await v.submit_and_approve()
    tasks, lists, relays = await _lists_and_tasks(v, warning_id)
    by_contact: dict[int, list[int]] = {}
    for t in tasks:
        by_contact.setdefault(t.contact_id, []).append(t.number)
        assert t.state == "open" and t.area_code and t.needs
    for numbers in by_contact.values():
        assert sorted(numbers) == list(range(1, len(numbers) + 1))
    # Each relay delivery points at its task.
    task_of = {t.delivery_id: t.id for t in tasks}
    for d in relays:
        assert d.provider_ref == f"visit/{task_of[d.id]}"
    # One list per contact (the village's tasks come in one batch), its link to its own delivery.
    assert sorted(n.person_id for n, _ in lists) == sorted(by_contact)
    for notice, delivery in lists:
        link = LINK_IN_TEXT.search(notice.text)
        assert link, notice.text
        parsed = links.split(link.group(1).split("/a/")[1])
        assert parsed is not None and parsed[0] == delivery.id
        assert notice.text.startswith("【上门告知】") and notice.address.startswith("+86")
        expected = 0 if order == "tiers" else min(r.priority for r in relays)
        assert delivery.priority == expected
