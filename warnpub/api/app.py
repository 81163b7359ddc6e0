"""The aiohttp application: routes, problem middleware, OpenAPI, timers in the background."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from warnpub import __version__
from warnpub.api import (
    accounts,
    acks,
    audience,
    audio,
    boards,
    callbacks,
    feeds,
    public,
    reports,
    review,
    warnings,
)
from warnpub.api.context import SERVICES, Services
from warnpub.api.middleware import problems
from warnpub.api.routes import RouteTable
from warnpub.cap import Alert
from warnpub.config import Settings
from warnpub.console import routes as console_routes
from warnpub.dispatch.dispatcher import Dispatcher
from warnpub.dispatch.metrics import Metrics
from warnpub.review.timers import HANDLERS
from warnpub.storage.engine import Database
from warnpub.timers.runner import TimerRunner

meta = RouteTable()
TABLES = (
    warnings.routes,
    review.routes,
    accounts.routes,
    audience.routes,
    callbacks.routes,
    public.routes,
    audio.routes,
    feeds.routes,
    boards.routes,
    reports.routes,
    acks.routes,
    console_routes,
    meta,
)
RUNNER: web.AppKey[TimerRunner] = web.AppKey("timer_runner", TimerRunner)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


def _components() -> dict[str, Any]:
    alert = Alert.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = alert.pop("$defs", {})
    schemas["Alert"] = alert
    schemas["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    schemas["WarningSummary"] = {
        "type": "object",
        "required": ["id", "state", "level", "status_url"],
        "properties": {
            "id": {"type": "string"},
            "state": {
                "type": "string",
                "enum": [
                    "pending",
                    "approved",
                    "dispatching",
                    "completed",
                    "rejected",
                    "cancelled",
                    "expired",
                ],
            },
            "level": {"type": "string", "enum": ["red", "orange", "yellow", "blue"]},
            "hazard": {"type": "string"},
            "headline": {"type": "string"},
            "status": {"type": "string"},
            "msg_type": {"type": "string"},
            "sender": {"type": "string"},
            "identifier": {"type": "string"},
            "sent": {"type": "string", "format": "date-time"},
            "expires": {"type": ["string", "null"], "format": "date-time"},
            "green_channel": {"type": "boolean"},
            "review_deadline": {"type": ["string", "null"], "format": "date-time"},
            "approvals_needed": {"type": "integer"},
            "approvals_given": {"type": "integer"},
            "status_url": {"type": "string", "format": "uri"},
            "duplicate": {"type": "boolean"},
        },
    }
    return {"schemas": schemas}


def openapi_document() -> dict[str, Any]:
    merged = RouteTable()
    for table in TABLES:
        merged.routes.extend(table.routes)
    return merged.openapi(_components(), __version__)


@meta.route("GET", "/api/v1/openapi.json", auth="none", summary="This description of the API.")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


@meta.route(
    "GET",
    "/healthz",
    auth="none",
    summary="Liveness: the process answers and the database is reachable.",
)
async def healthz(request: web.Request) -> web.Response:
    from sqlalchemy import text

    async with request.app[SERVICES].db.session() as session:
        await session.execute(text("SELECT 1"))
    return web.json_response({"ok": True, "version": __version__})


@meta.route(
    "GET",
    "/metrics",
    auth="none",
    summary="Prometheus metrics: deliveries by channel and state, queue depth by tier, send latency, gateway health.",
    response={
        "200": {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    registry = svc.dispatcher.metrics if svc.dispatcher is not None else request.app[METRICS]
    await registry.refresh(svc.db)
    return web.Response(body=registry.render(), content_type="text/plain", charset="utf-8")


@meta.route(
    "GET", "/", auth="none", summary="Where to look: links to the API description and health check."
)
async def index(request: web.Request) -> web.Response:
    base = request.app[SERVICES].settings.server.public_url.rstrip("/")
    return web.json_response(
        {
            "service": "warnpub",
            "version": __version__,
            "openapi": f"{base}/api/v1/openapi.json",
            "health": f"{base}/healthz",
            "submit": f"{base}/api/v1/warnings",
            "review_queue": f"{base}/api/v1/review/queue",
        }
    )


def create_app(
    settings: Settings,
    db: Database,
    *,
    run_timers: bool = True,
    dispatcher: Dispatcher | None = None,
) -> web.Application:
    """The application. With a ``dispatcher``, it is started and stopped with the app."""
    # Each handler reads its body with its own limit (warnpub.api.bodies.read_body).
    largest = max(settings.server.max_body_bytes, settings.server.max_upload_bytes)
    app = web.Application(middlewares=[problems], client_max_size=largest)
    app[SERVICES] = Services(settings, db, dispatcher)
    app[METRICS] = Metrics()
    if dispatcher is not None:

        async def start_dispatch(_: web.Application) -> None:
            await dispatcher.start()

        async def stop_dispatch(_: web.Application) -> None:
            await dispatcher.stop()

        app.on_startup.append(start_dispatch)
        app.on_shutdown.append(stop_dispatch)
    for table in TABLES:
        table.add_to(app)
    if run_timers:
        runner = TimerRunner(
            db, HANDLERS, tick_s=settings.timers.tick_seconds, lease_s=settings.timers.lease_seconds
        )
        app[RUNNER] = runner

        async def start(_: web.Application) -> None:
            runner.start()

        async def stop(_: web.Application) -> None:
            runner.stop()

        app.on_startup.append(start)
        app.on_cleanup.append(stop)
    return app
