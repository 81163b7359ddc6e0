"""Running a drill through the real path: submit an Exercise warning as an agency, approve it as
the operators on duty would, wait for the dispatcher to finish it, and read its report.

The dispatcher that sends it is whoever runs against the database: ``warnpub drill run`` and
the demo start the API and the dispatcher in their own process (see warnpub/cli/drill.py).
Nothing here sends anything itself.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from warnpub.audiences.tables import Area
from warnpub.auth.agencies import area_in_scope
from warnpub.auth.callers import Caller
from warnpub.auth.operators import issue_operator_token
from warnpub.cap.json_parse import parse_alert_json
from warnpub.clock import new_id, utcnow
from warnpub.config import Settings
from warnpub.drills.audience import DrillAudience, parameter
from warnpub.intake.service import Submission, body_hash, submit
from warnpub.problems import Problem, invalid
from warnpub.review import service as review
from warnpub.review import states
from warnpub.review.policy import approvals_needed
from warnpub.storage.engine import Database
from warnpub.storage.tables import Agency, Operator, WarningRecord

BEIJING = timezone(timedelta(hours=8))
SEVERITY = {"red": "Extreme", "orange": "Severe", "yellow": "Moderate", "blue": "Minor"}
LEVEL_ZH = {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"}
ENDED = frozenset({states.COMPLETED, states.CANCELLED, states.EXPIRED, states.REJECTED})


@dataclass
class Drill:
    warning_id: str
    area_code: str
    area_name: str
    agency: str
    level: str
    audience: DrillAudience
    approvers: list[str]
    approved_at: float = 0.0  # monotonic, for the wait
    state: str = states.PENDING


async def _area(db: Database, code: str) -> Area:
    async with db.reader() as s:
        area = (await s.execute(select(Area).where(Area.code == code))).scalars().first()
    if area is None:
        raise invalid(f"--area: {code} is not in the area tree (load it with `warnpub areas load`)")
    return area


async def _agency(db: Database, settings: Settings, area: str, code: str | None) -> Agency:
    async with db.reader() as s:
        rows = list(
            (await s.execute(select(Agency).where(Agency.active.is_(True)).order_by(Agency.code)))
            .scalars()
            .all()
        )
    if code is not None:
        rows = [a for a in rows if a.code == code]
        if not rows:
            raise invalid(f"--agency: no active agency {code}")
    fits = [a for a in rows if area_in_scope(a, area) and any(h in settings.cap.hazards for h in a.hazards)]
    if not fits:
        raise invalid(
            f"no active agency {'(' + code + ') ' if code else ''}covers area {area} with a known "
            "hazard; add one with `warnpub agency add` or name another with --agency"
        )
    return fits[0]


def drill_alert(
    settings: Settings,
    agency: Agency,
    area: Area,
    level: str,
    audience: DrillAudience,
    *,
    hours: float = 2,
) -> dict[str, Any]:
    """An Exercise warning for ``area`` in warnpub's JSON form, its audience as a parameter."""
    hazard = next(h for h in agency.hazards if h in settings.cap.hazards)
    hz = settings.cap.hazards[hazard]
    sent = utcnow().astimezone(BEIJING).replace(microsecond=0)
    infos: dict[str, Any] = {
        "language": "zh-CN",
        "categories": [hz.category],
        "event": hz.zh,
        "event_codes": [{"value_name": settings.cap.hazard_event_code, "value": hazard}],
        "urgency": "Immediate",
        "severity": SEVERITY[level],
        "certainty": "Likely",
        "expires": (sent + timedelta(hours=hours)).isoformat(),
        "sender_name": agency.name,
        "headline": f"{area.name}{hz.zh}{LEVEL_ZH[level]}预警应急演练",
        "description": f"这是一次应急演练，不是真实预警：模拟{area.name}发生{hz.zh}。",
        "instruction": "请按演练方案行动；村联络员请确认收到。",
        "parameters": [parameter(audience)] if audience.kind is not None else [],
        "areas": [
            {
                "area_desc": area.name,
                "geocodes": [
                    {"value_name": settings.cap.division_geocode_names[0], "value": area.code}
                ],
            }
        ],
    }
    return {
        "sender": agency.sender,
        "identifier": f"drill-{new_id()}",
        "sent": sent.isoformat(),
        "status": "Exercise",
        "msg_type": "Alert",
        "scope": "Public",
        "note": "应急演练 / drill (warnpub drill run)",
        "infos": [infos],
    }


async def submit_drill(
    db: Database,
    settings: Settings,
    *,
    area: str,
    audience: DrillAudience,
    level: str | None = None,
    agency: str | None = None,
) -> Drill:
    """Submit the drill as its agency, through intake (the same checks as the API)."""
    level = level or settings.drills.level
    found = await _area(db, area)
    who = await _agency(db, settings, area, agency)
    alert = parse_alert_json(drill_alert(settings, who, found, level, audience))
    outcome = await submit(
        db, settings, Caller(agency=who), Submission(alert, body_hash("drill", alert.identifier.encode()))
    )
    body = outcome.body
    return Drill(
        str(body["id"]), area, found.name, who.code, level, audience, [], state=str(body["state"])
    )


async def _choose_approvers(db: Database, settings: Settings, level: str) -> list[Operator]:
    async with db.reader() as s:
        ops = list(
            (
                await s.execute(
                    select(Operator).where(Operator.active.is_(True)).order_by(Operator.id)
                )
            )
            .scalars()
            .all()
        )
    needed = approvals_needed(settings, level)
    seniors = set(settings.review.second_approver_roles)
    first = next((o for o in ops if o.role == "operator"), ops[0] if ops else None)
    if first is None:
        raise invalid("no active operator to approve the drill; add one with `warnpub operator add`")
    if needed == 1:
        return [first]
    second = next((o for o in ops if o.role in seniors and o.id != first.id), None)
    if second is None:
        raise invalid(
            f"a {level} drill needs a second approver with role {' or '.join(sorted(seniors))}; "
            "add one, or run the drill at a lower --level"
        )
    return [first, second]


async def approve_drill(
    db: Database,
    settings: Settings,
    drill: Drill,
    usernames: list[str] | None = None,
    *,
    base: str | None = None,
) -> None:
    """Approve as the named operators (or the first operator and, when the level needs four
    eyes, the first supervisor/admin).

    With ``base`` (the running API), each operator approves over HTTP with a short-lived token
    issued for the drill — the path an operator's console takes, which also tells the
    dispatcher at once. Without it, through the review service, one transaction each (the
    dispatcher then finds the warning at its next poll)."""
    if drill.state != states.PENDING:  # released at once by the green channel
        drill.approved_at = time.monotonic()
        return
    if usernames:
        async with db.reader() as s:
            rows = (await s.execute(select(Operator).where(Operator.username.in_(usernames)))).scalars()
            by_name = {o.username: o for o in rows}
        missing = [u for u in usernames if u not in by_name or not by_name[u].active]
        if missing:
            raise invalid(f"--approvers: no active operator {', '.join(missing)}")
        ops = [by_name[u] for u in usernames]
    else:
        ops = await _choose_approvers(db, settings, drill.level)
    for op in ops:
        if base is not None:
            drill.state = await _approve_over_http(db, base, drill.warning_id, op)
        else:
            async with db.session() as s:
                warning = await review.approve(s, settings, drill.warning_id, op)
                drill.state = warning.state
        drill.approvers.append(op.username)
        if drill.state != states.PENDING:
            break
    drill.approved_at = time.monotonic()
    if drill.state == states.PENDING:
        raise invalid(
            f"the drill {drill.warning_id} still needs "
            f"{approvals_needed(settings, drill.level) - len(ops)} more approval(s)"
        )


async def _approve_over_http(db: Database, base: str, warning_id: str, op: Operator) -> str:
    import aiohttp

    async with db.session() as s:
        token = await issue_operator_token(s, op, 10, "drill")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/api/v1/warnings/{warning_id}/approve",
            headers={"Authorization": f"Bearer {token}"},
        ) as r,
    ):
        body = await r.json(content_type=None)
        if r.status != 200:
            raise Problem(
                r.status,
                str(body.get("title", "Approval refused")),
                f"{op.username} could not approve the drill: {body.get('detail', body)}",
            )
    return str(body["state"])


async def wait_for_end(db: Database, drill: Drill, wait_s: float, poll_s: float = 0.5) -> str:
    """Until the drill's warning has completed (every delivery final) or ``wait_s`` ran out."""
    deadline = time.monotonic() + wait_s
    while True:
        async with db.reader() as s:
            state = (
                await s.execute(select(WarningRecord.state).where(WarningRecord.id == drill.warning_id))
            ).scalar_one()
        drill.state = state
        if state in ENDED or time.monotonic() >= deadline:
            return state
        await asyncio.sleep(poll_s)


async def report_text(
    db: Database,
    settings: Settings,
    drill: Drill,
    *,
    html: Path | None = None,
    csv_dir: Path | None = None,
    privacy: str = "export",
) -> tuple[str, list[Path]]:
    """The drill report as text (the unreached list included), and the files written. The
    after-action list is an export: names to their first character and phone numbers to their
    last four digits unless ``privacy`` is ``full`` (:mod:`warnpub.reports.privacy`)."""
    from warnpub.reports import build_report
    from warnpub.reports.build import display_zone, unreached_list
    from warnpub.reports.privacy import LEVELS
    from warnpub.reports.render_csv import write_tables, write_unreached
    from warnpub.reports.render_text import render

    level = next(p for p in LEVELS if p == privacy)
    zone = display_zone(settings)
    report = await build_report(db, settings, drill.warning_id, unreached=True, privacy=level)
    written: list[Path] = []
    if csv_dir is not None:
        written += await asyncio.to_thread(_write_tables, report, csv_dir, write_tables)
        path = csv_dir / "unreached.csv"
        async with db.reader() as s:
            await write_unreached(
                unreached_list(s, settings, drill.warning_id, None, privacy=level), path
            )
        written.append(path)
    if html is not None:
        from warnpub.reports.render_html import render as render_html

        await asyncio.to_thread(_write_page, html, render_html(report, zone))
        written.append(html)
    return render(report, zone), written


def _write_tables(report: Any, folder: Path, write: Any) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return list(write(report, folder))


def _write_page(path: Path, page: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


async def wait_for_ladders(db: Database, warning_id: str, wait_s: float, poll_s: float = 0.5) -> bool:
    """Until no escalation ladder of the warning is still waiting (True), or ``wait_s`` ran out."""
    from sqlalchemy import func

    from warnpub.lastkm.tables import LadderState

    deadline = time.monotonic() + wait_s
    while True:
        async with db.reader() as s:
            counts = dict(
                (
                    await s.execute(
                        select(LadderState.state, func.count())
                        .where(LadderState.warning_id == warning_id)
                        .group_by(LadderState.state)
                    )
                ).all()
            )
        if counts and not counts.get("waiting"):
            return True
        if time.monotonic() >= deadline:
            return not counts.get("waiting")
        await asyncio.sleep(poll_s)


ROLE_TITLES = {"village_contact": "Village contacts", "town_duty_officer": "Town duty officers"}


async def last_kilometre(db: Database, warning_id: str) -> dict[str, Any]:
    """Who was asked to acknowledge and did (per role), the visit tasks by state, escalation
    alerts sent and escalations raised in the console — for the lines below."""
    from sqlalchemy import func

    from warnpub.audiences.tables import Person
    from warnpub.lastkm.tables import Acknowledgement, Notice, VisitTask
    from warnpub.storage.tables import Delivery, Escalation

    async with db.reader() as s:
        asked = (
            await s.execute(
                select(Delivery.target_id, Person.role)
                .join(Person, Person.id == Delivery.target_id)
                .where(
                    Delivery.warning_id == warning_id,
                    Delivery.target_kind == "person",
                    Delivery.ack_required.is_(True),
                )
                .distinct()
            )
        ).all()
        acked = set(
            (
                await s.execute(
                    select(Acknowledgement.target_id).where(
                        Acknowledgement.warning_id == warning_id,
                        Acknowledgement.target_kind == "person",
                    )
                )
            ).scalars()
        )
        visits = dict(
            (
                await s.execute(
                    select(VisitTask.state, func.count())
                    .where(VisitTask.warning_id == warning_id)
                    .group_by(VisitTask.state)
                )
            ).all()
        )
        alerts = (
            await s.execute(
                select(func.count())
                .select_from(Notice)
                .where(Notice.warning_id == warning_id, Notice.kind == "escalation")
            )
        ).scalar_one()
        console = list(
            (
                await s.execute(
                    select(Escalation.message)
                    .where(Escalation.warning_id == warning_id, Escalation.kind == "unacknowledged")
                    .order_by(Escalation.id)
                )
            ).scalars()
        )
    roles: dict[str, list[int]] = {}
    for person_id, role in asked:
        counts = roles.setdefault(role, [0, 0])
        counts[0] += person_id in acked
        counts[1] += 1
    return {"acknowledged": roles, "visits": visits, "alerts": int(alerts), "console": console}


def last_kilometre_lines(facts: dict[str, Any]) -> list[str]:
    """"Village contacts acknowledged: 15 of 16", visits confirmed, escalations — plain words."""
    lines = []
    for role, (done, asked) in sorted(facts["acknowledged"].items()):
        title = ROLE_TITLES.get(role, role.replace("_", " ").capitalize())
        lines.append(f"  {title} acknowledged: {done} of {asked}")
    visits = facts["visits"]
    total = sum(visits.values())
    if total:
        rest = [f"{visits[k]} {k}" for k in ("open", "closed") if visits.get(k)]
        lines.append(
            f"  Visits confirmed: {visits.get('done', 0)} of {total} special-needs people told in "
            f"person by their village contact" + (f" ({', '.join(rest)})" if rest else "")
        )
    if facts["alerts"] or facts["console"]:
        lines.append(
            f"  Escalations: {facts['alerts']} alert(s) sent (town duty officer / supervisors), "
            f"{len(facts['console'])} raised in the console (GET /api/v1/escalations)"
        )
        lines += [f"    - {m}" for m in facts["console"]]
    elif any(done < asked for done, asked in facts["acknowledged"].values()):
        lines.append("  Escalations: none (this level has no escalation ladder, or its wait has not passed)")
    return lines


def summary_lines(drill: Drill) -> list[str]:
    who = {
        "area": "everyone and every device in the area",
        "consent": "people who agreed to drills, and the area's devices",
        "list": f"{len(drill.audience.people)} listed people",
        None: "the [drills] audience default",
    }[drill.audience.kind]
    return [
        f"Drill {drill.warning_id}: {drill.area_name} ({drill.area_code}), level {drill.level}, "
        f"CAP status Exercise, submitted as agency {drill.agency}",
        f"  audience : {drill.audience.kind or 'default'} — {who}",
        f"  approved : by {', '.join(drill.approvers) or 'the green channel'}",
        f"  state    : {drill.state}",
    ]


def check_audience(kind: str | None, people: list[str]) -> DrillAudience:
    """The audience from command-line options (``--audience``, ``--people``)."""
    if people and kind not in (None, "list"):
        raise invalid("--people goes with --audience list")
    if kind == "list" or people:
        if not people:
            raise invalid("--audience list needs --people EXT1,EXT2 (roster ids)")
        return DrillAudience("list", tuple(dict.fromkeys(people)))
    if kind in ("area", "consent"):
        return DrillAudience(kind)  # type: ignore[arg-type]
    if kind is None:
        return DrillAudience()
    raise Problem(400, "Bad option", f"--audience {kind}: use area, consent or list")
