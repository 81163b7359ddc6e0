"""A warning's visit tasks, listed per village with each person's needs and their contact
(``GET /api/v1/warnings/{id}/visits``, ``warnpub visits WARNING_ID``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from warnpub.audiences.needs import need_names
from warnpub.audiences.tables import Area, Person
from warnpub.lastkm.tables import VisitTask
from warnpub.problems import not_found
from warnpub.storage.tables import WarningRecord


async def visits_by_village(session: AsyncSession, warning_id: str) -> dict[str, Any]:
    if await session.get(WarningRecord, warning_id) is None:
        raise not_found(f"no warning {warning_id}")
    person, contact = aliased(Person), aliased(Person)
    rows = (
        await session.execute(
            select(VisitTask, person.name, contact.name, contact.phone, Area.name)
            .join(person, person.id == VisitTask.person_id)
            .join(contact, contact.id == VisitTask.contact_id)
            .outerjoin(Area, Area.code == VisitTask.area_code)
            .where(VisitTask.warning_id == warning_id)
            .order_by(VisitTask.area_code, VisitTask.contact_id, VisitTask.number)
        )
    ).all()
    villages: dict[str, dict[str, Any]] = {}
    counts = {"open": 0, "done": 0, "closed": 0}
    for task, name, contact_name, contact_phone, area_name in rows:
        village = villages.setdefault(
            task.area_code,
            {"area_code": task.area_code, "area_name": area_name or task.area_code, "tasks": []},
        )
        village["tasks"].append(
            {
                "number": task.number,
                "person_id": task.person_id,
                "name": name,
                "needs": need_names(task.needs),
                "contact_id": task.contact_id,
                "contact_name": contact_name,
                "contact_phone": contact_phone,
                "state": task.state,
                "created_at": task.created_at.isoformat(),
                "done_at": task.done_at.isoformat() if task.done_at else None,
                "done_via": task.done_via or None,
            }
        )
        counts[task.state] = counts.get(task.state, 0) + 1
    return {"warning_id": warning_id, "counts": counts, "villages": list(villages.values())}


def render_text(listing: dict[str, Any]) -> str:
    c = listing["counts"]
    lines = [
        f"visit tasks of warning {listing['warning_id']}: "
        f"{c.get('done', 0)} done, {c.get('open', 0)} open, {c.get('closed', 0)} closed"
    ]
    for village in listing["villages"]:
        lines.append("")
        lines.append(f"{village['area_name']} ({village['area_code']})")
        for t in village["tasks"]:
            mark = {"done": "✔", "open": "…", "closed": "✘"}.get(t["state"], "?")
            when = f" {t['done_via']} {t['done_at']}" if t["done_at"] else ""
            lines.append(
                f"  {mark} [{t['number']}] {t['name']} ({', '.join(t['needs']) or '-'})"
                f" — contact {t['contact_name']}: {t['state']}{when}"
            )
    if not listing["villages"]:
        lines.append("(none: nobody of this warning needed a visit)")
    return "\n".join(lines) + "\n"
