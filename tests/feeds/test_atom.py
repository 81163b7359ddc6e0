"""GET /feeds/cap.atom and GET /warnings/{id}.cap.xml through the real application: which
warnings appear, conditional GET, hostile text, and the CAP documents the entries link to."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from tests.cap.test_signature import Pki
from tests.factories import World, alert_json, seed
from warnpub.api.app import create_app
from warnpub.cap import cap12_schema, parse_cap_xml
from warnpub.cap.safe_xml import hardened_parser
from warnpub.cap.signature import verify_cap_signature
from warnpub.clock import utcnow
from warnpub.config import Settings
from warnpub.storage.engine import Database
from warnpub.storage.tables import WarningRecord

pytestmark = pytest.mark.postgres

ATOM = {"a": "http://www.w3.org/2005/Atom", "cap": "urn:oasis:names:tc:emergency:cap:1.2"}
PUBLIC_URL = "http://127.0.0.1:8080"
HOSTILE = "<script>alert(1)</script>"


async def submit(client: TestClient, world: World, doc: dict[str, Any]) -> str:
    r = await client.post("/api/v1/warnings", json=doc, headers=world.agency("QX"))
    assert r.status == 202, await r.text()
    return str((await r.json())["id"])


async def released(client: TestClient, world: World, doc: dict[str, Any]) -> str:
    """Submitted by QX and approved by an operator (yellow and blue need one approval)."""
    warning_id = await submit(client, world, doc)
    r = await client.post(f"/api/v1/warnings/{warning_id}/approve", headers=world.operator("duty1"))
    assert r.status == 200, await r.text()
    assert (await r.json())["state"] == "approved"
    return warning_id


async def feed(client: TestClient) -> etree._Element:
    r = await client.get("/feeds/cap.atom")
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    return etree.fromstring(await r.read(), parser=hardened_parser())


def entry_ids(root: etree._Element) -> list[str]:
    return [str(i) for i in root.xpath("a:entry/a:id/text()", namespaces=ATOM)]


def cap_url(warning_id: str) -> str:
    return f"{PUBLIC_URL}/warnings/{warning_id}.cap.xml"


def reference_to(doc: dict[str, Any]) -> str:
    return f"qx@320481,{doc['identifier']},{doc['sent']}"


async def age_everything(db: Database, by: timedelta) -> None:
    """Move every warning's decisions and changes into the past (as if time had passed)."""
    async with db.session() as s:
        for w in (await s.execute(WarningRecord.__table__.select())).all():
            row = await s.get(WarningRecord, w.id)
            assert row is not None
            row.updated_at -= by
            if row.decided_at is not None:
                row.decided_at -= by


async def test_the_feed_lists_only_active_public_warnings(client, db, settings):
    world = await seed(db, settings)
    active = await released(client, world, alert_json(headline="社渚镇暴雨黄色预警"))
    pending = await submit(client, world, alert_json())
    drill = await released(client, world, alert_json(status="Exercise"))
    test = await released(client, world, alert_json(status="Test"))
    restricted_doc = alert_json()
    restricted_doc.update(scope="Restricted", restriction="防汛指挥部成员")
    restricted = await released(client, world, restricted_doc)
    cancelled = await released(client, world, alert_json())
    r = await client.post(
        f"/api/v1/warnings/{cancelled}/cancel",
        json={"reason": "发布有误"},
        headers=world.operator("duty1"),
    )
    assert r.status == 200, await r.text()
    expired = await released(client, world, alert_json())
    async with db.session() as s:
        row = await s.get(WarningRecord, expired)
        assert row is not None
        row.expires_at = utcnow() - timedelta(minutes=1)  # its expiry timer has not fired yet
    original_doc = alert_json(severity="Minor")
    original = await released(client, world, original_doc)
    update = await released(
        client,
        world,
        alert_json(msg_type="Update", references=[reference_to(original_doc)], headline="续报"),
    )

    root = await feed(client)
    assert entry_ids(root) == [cap_url(update), cap_url(active)]  # newest first
    shown = " ".join(entry_ids(root))
    for hidden in (pending, drill, test, restricted, cancelled, expired, original):
        assert hidden not in shown

    (entry,) = root.xpath("a:entry[a:id = $url]", namespaces=ATOM, url=cap_url(active))
    assert entry.get("{http://www.w3.org/XML/1998/namespace}lang") == "zh-CN"
    assert entry.findtext("a:title", namespaces=ATOM) == "黄色预警：社渚镇暴雨黄色预警"
    assert entry.findtext("a:summary", namespaces=ATOM) == "测试"
    assert entry.findtext("a:author/a:name", namespaces=ATOM) == "qx@320481"
    (link,) = entry.xpath("a:link[@rel='alternate']", namespaces=ATOM)
    assert link.get("type") == "application/cap+xml" and link.get("href") == cap_url(active)
    categories = {c.get("scheme"): c.get("term") for c in entry.findall("a:category", ATOM)}
    assert categories == {"urn:warnpub:level": "yellow", "urn:warnpub:hazard": "rainstorm"}
    assert entry.findtext("cap:severity", namespaces=ATOM) == "Moderate"
    assert entry.findtext("cap:status", namespaces=ATOM) == "Actual"
    assert entry.findtext("cap:areaDesc", namespaces=ATOM) == "测试区域"
    (newest,) = root.xpath("a:entry[a:id = $url]", namespaces=ATOM, url=cap_url(update))
    assert newest.findtext("a:title", namespaces=ATOM) == "【续报】黄色预警：续报"
    assert root.findtext("a:id", namespaces=ATOM) == f"{PUBLIC_URL}/feeds/cap.atom"


async def test_each_entry_links_to_a_schema_valid_cap_document(client, db, settings):
    world = await seed(db, settings)
    docs = [alert_json(), alert_json(severity="Minor", event="大风", code="320481000000")]
    ids = [await released(client, world, doc) for doc in docs]
    root = await feed(client)
    links = root.xpath("a:entry/a:link[@type='application/cap+xml']/@href", namespaces=ATOM)
    assert sorted(links) == sorted(cap_url(i) for i in ids)
    for href, doc in zip(sorted(links), sorted(zip(ids, docs))):
        r = await client.get(href.removeprefix(PUBLIC_URL))
        assert r.status == 200 and r.headers["Content-Type"] == "application/cap+xml"
        assert r.headers["ETag"].startswith('"')
        body = await r.read()
        cap12_schema().assertValid(etree.fromstring(body, parser=hardened_parser()))
        alert = parse_cap_xml(body)
        assert alert.identifier == doc[1]["identifier"] and alert.sender == "qx@320481"
        assert not alert.has_signature  # no signing key configured


async def test_cap_documents_of_non_public_warnings_are_not_found(client, db, settings):
    world = await seed(db, settings)
    pending = await submit(client, world, alert_json())
    drill = await released(client, world, alert_json(status="Exercise"))
    cancelled = await released(client, world, alert_json())
    await client.post(
        f"/api/v1/warnings/{cancelled}/cancel",
        json={"reason": "误报"},
        headers=world.operator("duty1"),
    )
    for hidden in (pending, drill, "01NOSUCHWARNING00000000000"):
        r = await client.get(f"/warnings/{hidden}.cap.xml")
        assert r.status == 404, hidden
        assert r.headers["Content-Type"].startswith("application/problem+json")
    # Once released, a warning stays readable: partners follow references to it.
    assert (await client.get(f"/warnings/{cancelled}.cap.xml")).status == 200


async def test_conditional_get_with_etag(client, db, settings):
    world = await seed(db, settings)
    await released(client, world, alert_json())
    first = await client.get("/feeds/cap.atom")
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "public, no-cache"
    assert "Last-Modified" not in first.headers  # the last change is seconds old: not settled

    same = await client.get("/feeds/cap.atom", headers={"If-None-Match": etag})
    assert same.status == 304 and await same.read() == b"" and same.headers["ETag"] == etag
    listed = await client.get("/feeds/cap.atom", headers={"If-None-Match": f'"x", W/{etag}'})
    assert listed.status == 304
    other = await client.get("/feeds/cap.atom", headers={"If-None-Match": '"stale"'})
    assert other.status == 200 and other.headers["ETag"] == etag

    await released(client, world, alert_json(severity="Minor"))
    changed = await client.get("/feeds/cap.atom", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag


async def test_conditional_get_with_last_modified(client, db, settings):
    world = await seed(db, settings)
    warning_id = await released(client, world, alert_json())
    await age_everything(db, timedelta(hours=1))
    r = await client.get("/feeds/cap.atom")
    last_modified = r.headers["Last-Modified"]
    root = etree.fromstring(await r.read())
    updated = root.findtext("a:updated", namespaces=ATOM)
    assert updated is not None and updated.endswith("Z")
    assert (
        await client.get("/feeds/cap.atom", headers={"If-Modified-Since": last_modified})
    ).status == 304
    earlier = format_datetime(utcnow() - timedelta(hours=2), usegmt=True)
    assert (
        await client.get("/feeds/cap.atom", headers={"If-Modified-Since": earlier})
    ).status == 200
    # If-None-Match wins over If-Modified-Since.
    both = {"If-Modified-Since": last_modified, "If-None-Match": '"stale"'}
    assert (await client.get("/feeds/cap.atom", headers=both)).status == 200

    document = await client.get(f"/warnings/{warning_id}.cap.xml")
    again = await client.get(
        f"/warnings/{warning_id}.cap.xml", headers={"If-None-Match": document.headers["ETag"]}
    )
    assert again.status == 304 and await again.read() == b""


async def test_hostile_text_is_escaped(client, db, settings):
    world = await seed(db, settings)
    warning_id = await released(
        client,
        world,
        alert_json(
            headline=HOSTILE, description=f"{HOSTILE} & <b>bold</b>", sender_name="<i>QX</i>"
        ),
    )
    r = await client.get("/feeds/cap.atom")
    raw = await r.read()
    assert b"<script>" not in raw and b"<b>" not in raw and b"<i>" not in raw
    assert b"&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    entry = etree.fromstring(raw).find("a:entry", ATOM)
    assert entry is not None
    assert entry.findtext("a:title", namespaces=ATOM) == f"黄色预警：{HOSTILE}"
    assert entry.findtext("a:summary", namespaces=ATOM) == f"{HOSTILE} & <b>bold</b>"
    assert entry.findtext("a:author/a:name", namespaces=ATOM) == "<i>QX</i>"
    document = await (await client.get(f"/warnings/{warning_id}.cap.xml")).read()
    assert b"<script>" not in document
    assert parse_cap_xml(document).infos[0].headline == HOSTILE


async def test_published_cap_is_signed_with_the_centres_key(
    db: Database, settings: Settings, tmp_path: Path
):
    pki = Pki()
    files = pki.write(tmp_path)
    signing = settings.model_copy(
        update={
            "cap": settings.cap.model_copy(
                update={"signing_key": files["signing_key"], "signing_cert": files["signing_cert"]}
            )
        }
    )
    app = create_app(signing, db, run_timers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        world = await seed(db, signing)
        warning_id = await released(client, world, alert_json())
        first = await client.get(f"/warnings/{warning_id}.cap.xml")
        body = await first.read()
        second = await client.get(f"/warnings/{warning_id}.cap.xml")
        assert second.headers["ETag"] == first.headers["ETag"]
    cap12_schema().assertValid(etree.fromstring(body, parser=hardened_parser()))
    status = verify_cap_signature(body, [pki.ca_cert])
    assert status.valid and status.trusted and status.signer == pki.subject
    assert parse_cap_xml(body).has_signature


async def test_the_feed_routes_are_described(client):
    spec = await (await client.get("/api/v1/openapi.json")).json()
    feed_op = spec["paths"]["/feeds/cap.atom"]["get"]
    assert feed_op["x-warnpub-auth"] == "none" and "security" not in feed_op
    assert set(feed_op["responses"]) == {"200", "304"}
    document_op = spec["paths"]["/warnings/{warning_id}.cap.xml"]["get"]
    assert set(document_op["responses"]) == {"200", "304", "404"}
    assert "application/cap+xml" in document_op["responses"]["200"]["content"]
