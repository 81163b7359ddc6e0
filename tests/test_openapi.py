"""GET /api/v1/openapi.json describes every route the application serves."""

from __future__ import annotations

from tests.factories import seed


async def test_every_route_is_described(client):
    spec = await (await client.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in client.server.app.router.routes()
        if route.method not in ("HEAD", "*")
    }
    described = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert served, "the app serves no routes?"
    assert served - described == set(), f"routes missing from openapi.json: {served - described}"
    assert described - served == set(), f"described but not served: {described - served}"


async def test_schemas_resolve(client):
    spec = await (await client.get("/api/v1/openapi.json")).json()
    text = str(spec)
    for name in ("Alert", "Info", "Area", "Problem", "WarningSummary"):
        assert name in spec["components"]["schemas"], name
    import re

    for ref in set(re.findall(r"#/components/schemas/(\w+)", text)):
        assert ref in spec["components"]["schemas"], f"dangling $ref {ref}"


async def test_unknown_route_is_problem_json(client):
    r = await client.get("/api/v1/nothing-here")
    assert r.status == 404 and r.headers["Content-Type"].startswith("application/problem+json")


async def test_health_and_index(client, db, settings):
    await seed(db, settings)
    assert (await (await client.get("/healthz")).json())["ok"] is True
    assert (await (await client.get("/")).json())["openapi"].endswith("/api/v1/openapi.json")
