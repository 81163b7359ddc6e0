"""GET /w/{id}: the full text a cut SMS links to — released public warnings only, text escaped."""

from __future__ import annotations

import pytest

from tests.factories import alert_json, seed

pytestmark = pytest.mark.postgres
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_full_text_page_shows_released_warnings_as_text(client, db, settings):
    world = await seed(db, settings)
    doc = alert_json(severity="Moderate", description=HOSTILE)
    w = await (await client.post("/api/v1/warnings", json=doc, headers=world.agency("QX"))).json()
    assert (await client.get(f"/w/{w['id']}")).status == 404  # pending: not public yet
    await client.post(f"/api/v1/warnings/{w['id']}/approve", headers=world.operator("duty1"))
    r = await client.get(f"/w/{w['id']}")
    page = await r.text()
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "黄色预警" in page  # the level in words
    assert "<script>" not in page and "&lt;script&gt;" in page and "<img" not in page


async def test_unknown_warning_is_404(client, db, settings):
    await seed(db, settings)
    assert (await client.get("/w/NOPE")).status == 404
