"""The console's later parts through aiohttp's TestClient: sending an update (续报/终报), the
queue's plan counts (cached per warning and roster version), the drill reports list,
escalations and visit tasks in words, and the accessibility checks (WCAG AA contrast of the
console's colours, the level never by colour alone)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from tests.console.helpers import HOSTILE, csrf_of, post_form, sign_in
from tests.factories import TOWN_DAIBU, TOWN_SHEZHU, VILLAGE_SHEZHU, alert_json, seed
from warnpub.audiences.demo_data import DemoOptions, generate
from warnpub.audiences.plan import preview
from warnpub.audiences.tables import Person
from warnpub.audiences.targeting import Scope
from warnpub.boards.look import LOOKS, NO_LEVEL
from warnpub.cap.model import Level
from warnpub.clock import utcnow
from warnpub.console import plan_cache
from warnpub.console.pages import level_badge
from warnpub.console.progress import snapshot
from warnpub.console.words import EN, ZH
from warnpub.lastkm.tables import VisitTask
from warnpub.storage.tables import Delivery, Escalation, WarningRecord, WarningReference

RAW = "<script>alert(1)</script>"
TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "console"


async def _submit(client, world, agency="QX", **kw):
    doc = alert_json(**({"event": "暴雨", "severity": "Moderate"} | kw))
    r = await client.post("/api/v1/warnings", json=doc, headers=world.agency(agency))
    assert r.status == 202, await r.text()
    return (await r.json())["id"], doc


async def _approved(client, world, **kw):
    """A yellow warning (one approval) approved by duty1; duty1 stays signed in."""
    wid, doc = await _submit(client, world, **kw)
    assert (await sign_in(client, "duty1")).status == 303
    page = f"/console/warnings/{wid}"
    assert (await post_form(client, page, f"{page}/approve")).status == 303
    return wid, doc


async def _count(db, model):
    async with db.reader() as s:
        return await s.scalar(select(func.count()).select_from(model))


def _local(settings, hours: float) -> str:
    zone = ZoneInfo(settings.reports.display_timezone)
    return (utcnow() + timedelta(hours=hours)).astimezone(zone).strftime("%Y-%m-%d %H:%M")


# --- send an update ---------------------------------------------------------------------------


async def test_send_update_stores_an_update_referencing_the_original(client, db, settings):
    world = await seed(db, settings)
    wid, doc = await _approved(client, world)
    page = f"/console/warnings/{wid}"
    text = await (await client.get(page)).text()
    assert 'data-testid="send-update"' in text and f'action="{page}/update"' in text
    # The form starts from the original's text.
    assert 'name="headline" value="暴雨预警"' in text
    expires = _local(settings, 12)
    r = await post_form(
        client,
        page,
        f"{page}/update",
        headline="暴雨续报 " + HOSTILE,
        description="雨势加大",
        instruction="转移低洼地带人员",
        expires=expires,
        codes=f"{TOWN_DAIBU}, {TOWN_SHEZHU}",
        final="1",
    )
    assert r.status == 303, await r.text()
    location = r.headers["Location"]
    new_id = re.match(r"/console/warnings/([^/?]+)\?done=update_sent$", location).group(1)
    assert new_id != wid
    async with db.reader() as s:
        new = await s.get(WarningRecord, new_id)
        original = await s.get(WarningRecord, wid)
        refs = list(
            (
                await s.execute(
                    select(WarningReference.referenced_id).where(
                        WarningReference.warning_id == new_id
                    )
                )
            ).scalars()
        )
    assert new.msg_type == "Update" and new.state == "pending"
    assert new.sender == original.sender and new.hazard == original.hazard
    assert new.level == original.level == "yellow"
    assert new.submitted_by_operator_id is not None  # on the agency's behalf, by duty1
    assert refs == [wid]
    alert = new.alert
    assert alert["references"] == [
        {"sender": doc.get("sender", original.sender), "identifier": doc["identifier"], "sent": alert["references"][0]["sent"]}
    ]
    assert alert["references"][0]["sent"].startswith(doc["sent"][:19])
    info = alert["infos"][0]
    assert info["headline"].startswith("暴雨续报") and info["instruction"] == "转移低洼地带人员"
    assert info["response_types"] == ["AllClear"]  # the final report (终报)
    assert info["expires"][:16].replace("T", " ") == expires
    codes = {g["value"] for a in info["areas"] for g in a["geocodes"]}
    assert codes == {TOWN_SHEZHU, TOWN_DAIBU}
    # The new page: an update waiting for review, linking the original; text escaped.
    text = await (await client.get(location)).text()
    assert 'data-testid="state" data-state="pending"' in text and 'data-testid="notice"' in text
    assert f'data-testid="references"><a href="/console/warnings/{wid}"' in text
    assert RAW not in text and "&lt;script&gt;" in text
    assert 'data-testid="send-update"' not in text  # pending: nothing to update yet
    # It is in the queue, marked as an Update; duty1 sent it and so can never approve it.
    queue = await (await client.get("/console/")).text()
    assert f'data-warning-id="{new_id}"' in queue and ">Update<" in queue
    r = await post_form(client, location, f"/console/warnings/{new_id}/approve")
    assert r.status in (403, 409) and 'data-testid="error"' in await r.text()


async def test_update_level_change_and_no_final_report(client, db, settings):
    world = await seed(db, settings)
    wid, _ = await _approved(client, world)
    page = f"/console/warnings/{wid}"
    r = await post_form(client, page, f"{page}/update", level="orange", expires="")
    assert r.status == 303, await r.text()
    new_id = r.headers["Location"].split("/")[-1].split("?")[0]
    async with db.reader() as s:
        new = await s.get(WarningRecord, new_id)
        original = await s.get(WarningRecord, wid)
    assert new.level == "orange" and new.msg_type == "Update"
    info = new.alert["infos"][0]
    assert "AllClear" not in info["response_types"]
    assert info["expires"] == original.alert["infos"][0]["expires"]  # empty: kept
    assert info["headline"] == "暴雨预警"


async def test_update_errors_are_shown_and_store_nothing(client, db, settings):
    world = await seed(db, settings)
    wid, _ = await _approved(client, world, agency="SL", event="洪水")
    page = f"/console/warnings/{wid}"
    before = await _count(db, WarningRecord)
    cases = [
        ({"expires": "tomorrow at eight"}, 422, "2026-07-01 20:00"),
        ({"expires": _local(settings, -2)}, 422, ZH["update_past_expires"].split("{")[0]),
        ({"codes": "32048111"}, 422, "32048111"),
        # Outside agency SL's authorisation (社渚镇 only): intake's refusal, with what to fix.
        ({"codes": TOWN_DAIBU}, 403, TOWN_DAIBU),
        # Not in the area tree.
        ({"codes": "320481116999"}, 422, "320481116999"),
    ]
    for fields, status, words in cases:
        r = await post_form(
            client, page, f"{page}/update", **({"expires": _local(settings, 5)} | fields)
        )
        text = await r.text()
        assert r.status == status, (fields, text[-1500:])
        error = re.search(r'data-testid="error">(.*?)</div>', text, re.S).group(1)
        assert words in error, (fields, error)
        # The form keeps what was typed.
        assert 'data-testid="send-update"' in text
    assert await _count(db, WarningRecord) == before
    en = await post_form(client, page, f"{page}/update?lang=en", expires="soon")
    assert en.status == 422 and "is not a time" in await en.text()
    # A pending warning has no update form, and the route refuses.
    pending, _ = await _submit(client, world)
    text = await (await client.get(f"/console/warnings/{pending}")).text()
    assert 'data-testid="send-update"' not in text
    r = await post_form(client, f"/console/warnings/{pending}", f"/console/warnings/{pending}/update")
    assert r.status == 422 and "(this one is pending review)" in await r.text()  # en: remembered
    assert await _count(db, WarningRecord) == before + 1
    # CSRF as the other forms.
    r = await client.post(f"{page}/update", data={"csrf": "0" * 64}, allow_redirects=False)
    assert r.status == 403
    assert (await client.post("/console/warnings/NOPE/update", data={"csrf": csrf_of(text)})).status == 404


# --- the queue's plan counts ------------------------------------------------------------------


async def test_queue_shows_plan_counts_cached_per_roster_version(client, db, settings):
    world = await seed(db, settings)
    async with db.session() as s:
        await generate(s, DemoOptions(people=400))
    plan_cache.clear()
    wid, _ = await _submit(client, world, code=TOWN_SHEZHU)
    assert (await sign_in(client, "duty1")).status == 303
    text = await (await client.get("/console/")).text()
    m = re.search(
        r'data-testid="queue-plan" data-people="(\d+)" data-devices="(\d+)" data-no-route="(\d+)"',
        text,
    )
    assert m, text[-3000:]
    async with db.reader() as s:
        warning = await s.get(WarningRecord, wid)
        plan = await preview(s, settings, await Scope.of(s, warning))
    assert (int(m[1]), int(m[2]), int(m[3])) == (plan.people, plan.devices, plan.no_route_total)
    assert plan.people > 0 and plan.devices > 0
    # A roster change makes it stale: a person with no phone and no contact, in the town.
    async with db.session() as s:
        s.add(Person(name="无联系方式", area_code=VILLAGE_SHEZHU, needs=0))
    text = await (await client.get("/console/")).text()
    people = int(re.search(r'data-people="(\d+)"', text).group(1))
    assert people == plan.people + 1


async def test_queue_does_not_wait_for_slow_plans(client, db, settings, monkeypatch):
    world = await seed(db, settings)
    plan_cache.clear()
    wid, _ = await _submit(client, world)
    release = threading.Event()  # the plan is computed on a thread of its own
    real = plan_cache.preview

    async def slow(session, settings_, scope):
        await asyncio.to_thread(release.wait, 10)
        return await real(session, settings_, scope)

    monkeypatch.setattr(plan_cache, "preview", slow)
    monkeypatch.setattr(plan_cache, "WAIT_S", 0.05)
    assert (await sign_in(client, "duty1")).status == 303
    started = time.perf_counter()
    text = await (await client.get("/console/")).text()
    assert time.perf_counter() - started < 2
    assert 'data-testid="queue-plan" data-computing="true"' in text
    assert f'href="/console/warnings/{wid}#plan-h"' in text
    release.set()
    for _ in range(50):
        await asyncio.sleep(0.05)
        text = await (await client.get("/console/")).text()
        if 'data-people="' in text:
            break
    assert 'data-people="0"' in text and 'data-no-route="0"' in text


# --- drills -----------------------------------------------------------------------------------


async def test_drills_list_newest_first_with_coverage(client, db, settings):
    world = await seed(db, settings)
    first, _ = await _submit(client, world, status="Exercise", headline="演练一 " + HOSTILE)
    await asyncio.sleep(0.01)
    second, _ = await _submit(client, world, status="Exercise", headline="演练二")
    actual, _ = await _submit(client, world)
    now = utcnow()
    async with db.session() as s:
        for target, channel, state, acked in (
            (1, "sms", "delivered", None),
            (1, "email", "failed", None),  # the same person twice: one target
            (2, "sms", "failed", None),
            (3, "sms", "sent", now),  # acknowledged: reached
            (4, "speaker", "failed", None),
        ):
            s.add(
                Delivery(
                    warning_id=first,
                    target_kind="device" if channel == "speaker" else "person",
                    target_id=target,
                    channel=channel,
                    area_code=VILLAGE_SHEZHU,
                    state=state,
                    next_attempt_at=now,
                    acknowledged_at=acked,
                )
            )
        s.add(
            Delivery(
                warning_id=first, target_kind="notice", target_id=9, channel="sms",
                area_code=VILLAGE_SHEZHU, state="failed", next_attempt_at=now,
            )
        )  # fmt: skip
    assert (await sign_in(client, "duty1")).status == 303
    text = await (await client.get("/console/")).text()
    assert 'href="/console/drills"' in text and 'data-testid="nav-drills"' in text
    r = await client.get("/console/drills")
    text = await r.text()
    assert r.status == 200
    rows = re.findall(
        r'data-testid="drill-row" data-warning-id="([^"]+)" data-targeted="(\d+)" '
        r'data-reached="(\d+)" data-unreached="(\d+)"',
        text,
    )
    assert [row[0] for row in rows] == [second, first]  # newest first, drills only
    assert actual not in text
    assert rows[1][1:] == ("4", "2", "2")
    assert rows[0][1:] == ("0", "0", "0")
    assert f'href="/console/warnings/{first}/report"' in text
    assert RAW not in text and 'aria-current="page"' in text
    en = await (await client.get("/console/drills?lang=en")).text()
    assert "Drill reports" in en and "50.0%" in en


# --- escalations and visit tasks in words ----------------------------------------------------


async def test_escalations_and_visit_tasks_in_words(client, db, settings):
    world = await seed(db, settings)
    wid, _ = await _submit(client, world, agency="SL", event="洪水", severity="Extreme")
    async with db.session() as s:
        s.add(Escalation(warning_id=wid, kind="review_deadline", message="red warning passed"))
        s.add(Escalation(warning_id=wid, kind="unacknowledged", message="contact 王五 did not"))
        contact = Person(name="王五", area_code=VILLAGE_SHEZHU, role="village_contact")
        person = Person(name="张奶奶", area_code=VILLAGE_SHEZHU, needs=1)
        s.add_all([contact, person])
        await s.flush()
        s.add(
            VisitTask(
                warning_id=wid, person_id=person.id, contact_id=contact.id, number=1,
                area_code=VILLAGE_SHEZHU, needs=1, delivery_id=1,
            )
        )  # fmt: skip
    assert (await sign_in(client, "duty1")).status == 303
    text = await (await client.get("/console/escalations")).text()
    assert ZH["kind_review_deadline"] in text and ZH["kind_unacknowledged"] in text
    assert "超过审核时限仍未处理" in text and "红色预警" in text
    en = await (await client.get("/console/escalations?lang=en")).text()
    assert EN["kind_unacknowledged"] in en and "passed its review deadline" in en
    page = await (await client.get(f"/console/warnings/{wid}?lang=zh")).text()
    esc = re.search(r'data-testid="progress-escalations">(.*?)</ul>', page, re.S).group(1)
    assert ZH["kind_review_deadline"] in esc and "review_deadline" not in esc.replace('data-kind="review_deadline"', "")
    assert 'data-testid="visit-task" data-task="1" data-state="open"' in page
    assert ZH["visit_state_open"] in page and "张奶奶" in page
    # The stream carries each task's state: a contact reports, the row changes.
    async with db.reader() as s:
        before = await snapshot(s, settings, wid, "zh")
    assert [t["state"] for t in before["visit_tasks"]] == ["open"]
    assert {e["kind_text"] for e in before["escalations"]} == {
        ZH["kind_review_deadline"], ZH["kind_unacknowledged"]
    }
    async with db.session() as s:
        task = (await s.execute(select(VisitTask))).scalars().one()
        task.state, task.done_at, task.done_via = "done", utcnow(), "sms_reply"
    r = await client.get(f"/console/warnings/{wid}/events")
    seen = b""
    async with asyncio.timeout(10):
        while b"event: progress" not in seen or not seen.endswith(b"\n\n"):
            seen += await r.content.readany()
    r.close()
    data = json.loads(re.search(rb"event: progress\ndata: (.*)\n\n", seen).group(1))
    assert data["visit_tasks"][0]["state"] == "done"
    assert data["visit_tasks"][0]["state_text"] == ZH["visit_state_done"]
    assert data["visits"]["done"] == 1


# --- accessibility ----------------------------------------------------------------------------

_HEX = re.compile(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b")


def _rgb(colour: str) -> tuple[float, float, float]:
    h = colour.strip().lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return tuple(int(h[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def _luminance(colour: str) -> float:
    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """The WCAG 2 contrast ratio (L1 + 0.05) / (L2 + 0.05)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_contrast_formula():
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert contrast("#777777", "#ffffff") < 4.5 < contrast("#767676", "#ffffff")


def _rules() -> list[tuple[str, dict[str, str]]]:
    """The base template's CSS as (selector, declarations), var(--x) resolved."""
    html = (TEMPLATES / "base.html.j2").read_text(encoding="utf-8")
    css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    css = re.sub(r"@media[^{]*\{((?:[^{}]*\{[^{}]*\})*)\s*\}", r"\1", css)
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        decls = {}
        for part in body.split(";"):
            if ":" in part:
                key, value = part.split(":", 1)
                decls[key.strip()] = value.strip()
        rules.append((selector.strip(), decls))
    root = dict(next(d for s, d in rules if s == ":root"))
    for _, decls in rules:
        for key, value in decls.items():
            decls[key] = re.sub(r"var\((--[\w-]+)\)", lambda m: root[m.group(1)], value)
    return rules


def _colour(value: str | None) -> str | None:
    if not value:
        return None
    m = _HEX.search(value)
    if m:
        return "#" + m.group(1)
    return {"#fff": "#ffffff", "white": "#ffffff", "black": "#000000"}.get(value.split()[0])


def test_console_text_colours_meet_wcag_aa():
    rules = _rules()
    by = {s: d for s, d in rules}
    page_bg = _colour(by["body"]["background"])
    page_fg = _colour(by["body"]["color"])
    header_bg = _colour(by["header.top"]["background"])
    soft = _colour(by["th"]["background"])
    pairs: list[tuple[str, str, str]] = [("body", page_fg, page_bg), ("th", page_fg, soft)]
    for selector, decls in rules:
        fg = _colour(decls.get("color"))
        if fg is None or selector == ":root":
            continue
        bg = _colour(decls.get("background") or decls.get("background-color"))
        if bg is not None:
            pairs.append((selector, fg, bg))
        elif selector.startswith("header.top"):
            pairs.append((selector, fg, header_bg))
        else:
            # Text that may sit on the page or on a table heading / message box.
            pairs.append((selector, fg, page_bg))
            pairs.append((selector + " on soft", fg, soft))
    checked = {s for s, _, _ in pairs}
    for needed in ("a", ".muted", ".error", ".notice", "button, .button", "button.secondary",
                   "header.top", ".countdown.overdue, strong.bad", ".tag"):  # fmt: skip
        assert needed in checked, (needed, sorted(checked))
    # Buttons without a colour of their own: white text on the danger colour.
    danger = by["button.danger"]
    pairs.append(("button.danger", "#ffffff", _colour(danger["background"])))
    failing = [(s, fg, bg, round(contrast(fg, bg), 2)) for s, fg, bg in pairs if contrast(fg, bg) < 4.5]
    assert not failing, failing


def test_every_level_badge_has_words_and_an_icon_shape_with_enough_contrast():
    shapes = set()
    for level in [*Level, None]:
        look = LOOKS[level] if level is not None else NO_LEVEL
        assert contrast(look.foreground, look.background) >= 4.5, (level, look)
        for lang in ("zh", "en"):
            badge = level_badge(level.value if level else "", lang)
            assert badge.name.strip(), (level, lang)
            assert "<svg" in badge.icon and f'data-shape="{badge.shape}"' in badge.icon
        if level is not None:
            shapes.add(look.shape)
    assert len(shapes) == len(Level)  # each level its own shape
    macro = (TEMPLATES / "macros.html.j2").read_text(encoding="utf-8")
    badge_macro = re.search(r"macro badge.*?endmacro", macro, re.S).group(0)
    assert "l.icon" in badge_macro and "l.name" in badge_macro and "data-shape" in badge_macro


async def test_badges_on_pages_carry_text_and_shape(client, db, settings):
    world = await seed(db, settings)
    for severity in ("Extreme", "Severe", "Moderate", "Minor"):
        await _submit(client, world, agency="SL", event="洪水", severity=severity)
    assert (await sign_in(client, "duty1")).status == 303
    text = await (await client.get("/console/")).text()
    badges = re.findall(r'<span class="level level-(\w+)"[^>]*data-shape="(\w+)"[^>]*>(<svg.*?</svg>)<span>([^<]+)</span>', text)
    assert {b[0] for b in badges} == {"red", "orange", "yellow", "blue"}
    for code, shape, svg, name in badges:
        assert f'data-shape="{shape}"' in svg and name.strip()
