"""The operator console through aiohttp's TestClient (no browser): sessions, CSRF, lock-out,
roles, escaping, the review forms, the event stream, roster import, and every page renders."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from tests.console.helpers import HOSTILE, csrf_of, post_form, sign_in
from tests.factories import PASSWORD, TOWN_SHEZHU, VILLAGE_SHEZHU, alert_json, seed
from warnpub.console.words import EN, ZH
from warnpub.storage.tables import AuditEntry

RAW = "<script>alert(1)</script>"


async def _submit(client, world, agency="SL", **kw):
    doc = alert_json(**({"event": "洪水", "severity": "Extreme"} | kw))
    r = await client.post("/api/v1/warnings", json=doc, headers=world.agency(agency))
    assert r.status == 202, await r.text()
    return (await r.json())["id"]


async def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_revokes_it(client, db, settings):
    await seed(db, settings)
    r = await client.get("/console/", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/console/login?next=")
    r = await sign_in(client, "duty1")
    assert r.status == 303 and r.headers["Location"] == "/console/"
    cookie = r.cookies["wp_session"]
    assert cookie.value.startswith("wpt_")
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
    assert not cookie["secure"]  # public_url is http in tests
    page = await client.get("/console/")
    assert page.status == 200 and 'data-testid="me">duty1<' in await page.text()
    # The console's token is an operator token like any other: the API accepts it until sign-out.
    api = await client.get(
        "/api/v1/review/queue", headers={"Authorization": f"Bearer {cookie.value}"}
    )
    assert api.status == 200
    r = await post_form(client, "/console/", "/console/logout")
    assert r.status == 303 and r.headers["Location"] == "/console/login"
    api = await client.get(
        "/api/v1/review/queue", headers={"Authorization": f"Bearer {cookie.value}"}
    )
    assert api.status == 401
    client.session.cookie_jar.update_cookies({"wp_session": cookie.value})
    r = await client.get("/console/", allow_redirects=False)
    assert r.status == 303


async def test_cookie_is_secure_behind_https(client, db, settings):
    await seed(db, settings)
    settings.server.public_url = "https://warn.example.cn"
    page = await client.get("/console/login")
    pre = page.cookies["wp_csrf"]
    assert pre["secure"] and pre["httponly"] and pre["samesite"] == "Strict"
    # The client does not send Secure cookies over plain http: send it by hand.
    r = await client.post(
        "/console/login",
        data={"username": "duty1", "password": PASSWORD, "csrf": csrf_of(await page.text())},
        headers={"Cookie": f"wp_csrf={pre.value}"},
        allow_redirects=False,
    )
    assert r.status == 303
    assert r.cookies["wp_session"]["secure"]


async def test_wrong_password_is_refused_and_audited(client, db, settings):
    await seed(db, settings)
    r = await sign_in(client, "duty1", "not the password")
    assert r.status == 401
    text = await r.text()
    assert 'data-testid="error"' in text and ZH["login_failed"] in text
    assert "wp_session" not in r.cookies
    async with db.reader() as s:
        n = await s.scalar(
            select(func.count()).where(
                AuditEntry.action == "login.failed", AuditEntry.subject == "operator:duty1"
            )
        )
    assert n == 1


async def test_lock_out_after_repeated_failures(client, db, settings):
    await seed(db, settings)
    settings.console.max_failed_logins = 3
    for _ in range(3):
        assert (await sign_in(client, "duty1", "wrong password!")).status == 401
    r = await sign_in(client, "duty1")  # the right password, but locked
    assert r.status == 429 and "wp_session" not in r.cookies
    text = await r.text()
    assert 'data-testid="error"' in text and "锁定" in text
    # Another username is not affected.
    assert (await sign_in(client, "duty2")).status == 303
    async with db.reader() as s:
        locked = await s.scalar(select(func.count()).where(AuditEntry.action == "login.locked"))
    assert locked == 1
    # Once the lock-out is over (here: made shorter than the time since), it signs in again.
    settings.console.lockout_minutes = 0.0001
    await asyncio.sleep(0.05)
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "duty1")).status == 303


async def test_csrf_is_required_on_every_form(client, db, settings):
    world = await seed(db, settings)
    wid = await _submit(client, world)
    # Sign-in without the pre-session token.
    r = await client.post(
        "/console/login", data={"username": "duty1", "password": "x" * 12}, allow_redirects=False
    )
    assert r.status == 403 and 'data-testid="error"' in await r.text()
    assert (await sign_in(client, "duty1")).status == 303
    for fields in ({}, {"csrf": "0" * 64}):
        r = await client.post(
            f"/console/warnings/{wid}/approve", data=fields, allow_redirects=False
        )
        assert r.status == 403
        text = await r.text()
        assert 'data-testid="error"' in text and ZH["csrf_failed"] in text
    r = await client.get(f"/console/warnings/{wid}")
    assert 'data-state="pending"' in await r.text()


async def test_roles(client, db, settings):
    await seed(db, settings)
    assert (await sign_in(client, "duty1")).status == 303
    for url in ("/console/admin", "/console/audit"):
        r = await client.get(url)
        assert r.status == 403, url
        assert 'data-testid="error"' in await r.text()
    r = await client.post("/console/admin/operators", data={"csrf": "x"}, allow_redirects=False)
    assert r.status == 403
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "chief")).status == 303
    assert (await client.get("/console/audit")).status == 200
    assert (await client.get("/console/admin")).status == 403
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "root")).status == 303
    r = await client.get("/console/admin")
    assert r.status == 200 and 'data-code="QX"' in await r.text()


async def test_admin_adds_an_operator_and_an_agency_and_revokes_keys(client, db, settings):
    await seed(db, settings)
    assert (await sign_in(client, "root")).status == 303
    r = await post_form(
        client,
        "/console/admin",
        "/console/admin/operators",
        username="duty3",
        display_name=HOSTILE,
        role="operator",
        password="long enough password",
    )
    text = await r.text()
    assert r.status == 200 and 'data-username="duty3"' in text
    assert RAW not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    r = await post_form(
        client, "/console/admin", "/console/admin/operators", username="Bad Name", role="x", password="1"
    )
    assert r.status == 422 and 'data-testid="error"' in await r.text()
    r = await post_form(
        client,
        "/console/admin",
        "/console/admin/agencies",
        code="DZ",
        name="溧阳市自然资源局",
        sender="dz@320481",
        hazards="landslide",
        areas="320481000000",
    )
    text = await r.text()
    assert r.status == 200 and 'data-code="DZ"' in text and 'data-testid="new-key">wpk_' in text
    r = await post_form(client, "/console/admin", "/console/admin/agencies/DZ/revoke")
    assert r.status == 200 and 'data-testid="notice"' in await r.text()
    r = await client.get("/console/audit?q=operator.added")
    text = await r.text()
    assert r.status == 200 and "operator:duty3" in text and 'data-testid="audit-row"' in text


async def test_audit_pages(client, db, settings):
    await seed(db, settings)
    settings.console.audit_page_size = 3
    assert (await sign_in(client, "chief")).status == 303
    first = await (await client.get("/console/audit")).text()
    assert first.count('data-testid="audit-row"') == 3 and 'data-testid="older"' in first
    seqs = [int(s) for s in __import__("re").findall(r'data-seq="(\d+)"', first)]
    assert seqs == sorted(seqs, reverse=True)
    second = await (await client.get(f"/console/audit?before={seqs[-1]}")).text()
    more = [int(s) for s in __import__("re").findall(r'data-seq="(\d+)"', second)]
    assert more and max(more) < min(seqs)


async def test_hostile_text_is_escaped_on_every_page(client, db, settings):
    world = await seed(db, settings)
    wid = await _submit(client, world, headline=HOSTILE, instruction=HOSTILE)
    assert (await sign_in(client, "duty1")).status == 303
    for url in ("/console/", f"/console/warnings/{wid}", f"/console/warnings/{wid}/report"):
        r = await client.get(url)
        text = await r.text()
        assert r.status == 200, (url, text[:500])
        assert RAW not in text, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, url
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_queue_lists_pending_warnings_most_severe_first(client, db, settings):
    world = await seed(db, settings)
    blue = await _submit(client, world, agency="QX", event="暴雨", severity="Minor")
    red = await _submit(client, world)
    assert (await sign_in(client, "duty1")).status == 303
    text = await (await client.get("/console/")).text()
    ids = __import__("re").findall(r'data-testid="queue-row" data-warning-id="([^"]+)"', text)
    assert ids == [red, blue]
    assert 'data-testid="countdown" data-deadline="' in text
    assert f'href="/console/warnings/{red}"' in text
    assert "溧阳市水利局" in text and "社渚镇" in text
    assert 'data-shape="octagon"' in text and "红色预警" in text  # the level in words and shape
    en = await (await client.get("/console/?lang=en")).text()
    assert "Warnings waiting for review" in en and "Red warning" in en
    again = await client.get("/console/")
    assert "Warnings waiting for review" in await again.text()  # remembered in wp_lang


async def test_two_operators_approve_a_red_warning_through_the_forms(client, db, settings):
    world = await seed(db, settings)
    wid = await _submit(client, world)
    page = f"/console/warnings/{wid}"
    assert (await sign_in(client, "duty1")).status == 303
    text = await (await client.get(page)).text()
    for testid in ("approve", "reject", "cancel", "report-link", "progress", "progress-delivered"):
        assert f'data-testid="{testid}"' in text, testid
    assert 'data-testid="message-sms"' in text and 'data-testid="sms-parts"' in text
    assert 'data-testid="plan"' in text
    r = await post_form(client, page, f"{page}/approve")
    assert r.status == 303 and r.headers["Location"].startswith(page)
    text = await (await client.get(page)).text()
    assert 'data-state="pending"' in text and 'data-testid="approvals-count"' in text
    # The same person again: refused, with the service's reason.
    r = await post_form(client, page, f"{page}/approve")
    assert r.status == 409 and 'data-testid="error"' in await r.text()
    # A second operator who is not a supervisor: refused (four eyes, one of them a supervisor).
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "duty2")).status == 303
    r = await post_form(client, page, f"{page}/approve")
    text = await r.text()
    assert r.status == 403 and 'data-testid="error"' in text and "supervisor" in text
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "chief")).status == 303
    r = await post_form(client, page, f"{page}/approve")
    assert r.status == 303
    text = await (await client.get(r.headers["Location"])).text()
    assert 'data-testid="state" data-state="approved"' in text and 'data-testid="notice"' in text


async def test_reject_needs_a_reason_and_cancel_works(client, db, settings):
    world = await seed(db, settings)
    wid = await _submit(client, world)
    other = await _submit(client, world)
    assert (await sign_in(client, "duty1")).status == 303
    page = f"/console/warnings/{wid}"
    r = await post_form(client, page, f"{page}/reject", reason="  ")
    assert r.status == 422 and 'data-testid="error"' in await r.text()
    r = await post_form(client, page, f"{page}/reject", reason=HOSTILE)
    assert r.status == 303
    text = await (await client.get(page)).text()
    assert 'data-state="rejected"' in text and RAW not in text
    page = f"/console/warnings/{other}"
    r = await post_form(client, page, f"{page}/cancel", reason="wrong area")
    assert r.status == 303
    assert 'data-state="cancelled"' in await (await client.get(page)).text()
    assert (await client.get("/console/warnings/NOPE")).status == 404


async def test_event_stream_sends_progress(client, db, settings):
    world = await seed(db, settings)
    wid = await _submit(client, world)
    assert (await sign_in(client, "duty1")).status == 303
    r = await client.get(f"/console/warnings/{wid}/events")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    seen = b""
    async with asyncio.timeout(10):
        while b"event: progress" not in seen or not seen.endswith(b"\n\n"):
            seen += await r.content.readany()
    r.close()
    assert b'"state":"pending"' in seen and b'"totals"' in seen
    # Ended warnings: one last event, then the stream closes.
    page = f"/console/warnings/{wid}"
    assert (await post_form(client, page, f"{page}/cancel", reason="test")).status == 303
    r = await client.get(f"/console/warnings/{wid}/events")
    async with asyncio.timeout(10):
        body = await r.read()
    assert b"event: progress" in body and b"event: end" in body
    assert (await client.get("/console/warnings/NOPE/events")).status == 404


_QUOTED = '"' + HOSTILE.replace('"', '""') + '"'
ROSTER = (
    "编号,姓名,手机号码,所属镇/街道,所属村/社区,身份\n"
    f"H1,{_QUOTED},13812345678,社渚镇,社渚村,居民\n"
    "H2,李四,12345,社渚镇,社渚村,居民\n"
    "H3,王五,13912345678,社渚镇,社渚村,联络员\n"
)


async def test_import_dry_run_reports_the_bad_row_then_confirm(client, db, settings):
    await seed(db, settings)
    assert (await sign_in(client, "duty1")).status == 303
    page = await (await client.get("/console/audience/import")).text()
    assert 'data-testid="dry-run"' in page and 'data-testid="confirm-import"' in page
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("csrf", csrf_of(page))
    form.add_field("action", "dry_run")
    form.add_field("roster", ROSTER.encode(), filename="roster.csv", content_type="text/csv")
    r = await client.post("/console/audience/import", data=form)
    text = await r.text()
    assert r.status == 200, text
    assert text.count('data-testid="import-error"') == 1
    assert 'data-testid="import-error" data-row="3"' in text
    assert RAW not in text
    upload_id = __import__("re").search(r'name="upload_id" value="([^"]+)"', text).group(1)
    # Confirm without skipping: refused, nothing written.
    r = await client.post(
        "/console/audience/import",
        data={"csrf": csrf_of(text), "action": "confirm", "upload_id": upload_id},
    )
    assert r.status == 422 and 'data-testid="import-error"' in await r.text()
    r = await client.post(
        "/console/audience/import",
        data={"csrf": csrf_of(text), "action": "confirm", "upload_id": upload_id, "skip_invalid": "1"},
    )
    text = await r.text()
    assert r.status == 200 and 'data-written="true"' in text, text[-2000:]
    # The uploaded file is gone once imported.
    r = await client.post(
        "/console/audience/import",
        data={"csrf": csrf_of(text), "action": "confirm", "upload_id": upload_id},
    )
    assert r.status == 410
    # Found again, escaped, phone masked for an operator (whole for a supervisor).
    text = await (await client.get("/console/people?q=script")).text()
    assert 'data-testid="person-row"' in text and RAW not in text
    assert "*******5678" in text and "13812345678" not in text
    text = await (await client.get("/console/people?q=5678")).text()
    assert "*******5678" in text
    text = await (await client.get(f"/console/areas/{VILLAGE_SHEZHU}")).text()
    assert 'data-testid="contact-row"' in text and "王五" in text and "13912345678" not in text
    client.session.cookie_jar.clear()
    assert (await sign_in(client, "chief")).status == 303
    text = await (await client.get("/console/people?q=王五")).text()
    assert "+8613912345678" in text or "13912345678" in text


async def test_other_pages_render(client, db, settings):
    world = await seed(db, settings)
    wid = await _submit(client, world)
    assert (await sign_in(client, "duty1")).status == 303
    for url in (
        "/console/escalations",
        "/console/drills",
        "/console/people",
        f"/console/areas/{TOWN_SHEZHU}",
        f"/console/warnings/{wid}/report",
        "/console/audience/import",
        "/console/?lang=en",
    ):
        r = await client.get(url)
        assert r.status == 200, (url, (await r.text())[:300])
    report = await (await client.get(f"/console/warnings/{wid}/report")).text()
    assert 'data-testid="report"' in report and "<svg" in report
    assert (await client.get("/console/areas/999999999999")).status == 404


async def test_login_page_in_english(client, db, settings):
    await seed(db, settings)
    r = await client.get("/console/login?lang=en")
    text = await r.text()
    assert 'data-testid="sign-in"' in text and "Sign in" in text
    assert r.cookies["wp_lang"].value == "en"
    assert "Sign in" in await (await client.get("/console/login")).text()


def test_every_word_in_both_languages():
    assert set(ZH) == set(EN)
    assert all(ZH.values()) and all(EN.values())
