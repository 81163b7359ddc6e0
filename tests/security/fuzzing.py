"""Fuzzing the HTTP API from its own OpenAPI description (schemathesis), shared by
tests/security/test_openapi_fuzz.py (short) and bench/fuzz_api.py (long).

The engine runs as it does in production: the real aiohttp application on a loopback port, in
its own thread and event loop, over a migrated SQLite database seeded through the real
services (agencies with API keys, operators with tokens, a few submitted warnings). schemathesis
reads ``GET /api/v1/openapi.json`` from that server and sends generated requests to every
operation, with each credential that operation accepts and with none. Every answer must:

- not be a 5xx (``not_a_server_error``);
- have a status the description lists for that operation (``status_code_conformance``);
- have a content type it lists for that status (``content_type_conformance``);
- have a body that matches the schema it gives (``response_schema_conformance``).

Failures are collected (one per operation and check, with a curl line to reproduce them), not
raised at the first one, so a run reports everything it found.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import openapi
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import TOWN_SHEZHU, World, alert_json
from tests.factories import seed as seed_world
from warnpub.api.app import create_app
from warnpub.config import Settings
from warnpub.storage.engine import Database

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Event streams never end; a request/response fuzzer cannot judge them (tests/boards and
# tests/console test them).
STREAMS = ("/boards/{board_id}/events", "/console/warnings/{warning_id}/events")
REQUEST_TIMEOUT_S = 15


@dataclass(slots=True)
class Engine:
    base_url: str
    world: World
    warning_ids: list[str]


@dataclass(slots=True)
class FuzzReport:
    operations: int = 0
    examples: int = 0
    seconds: float = 0.0
    failures: dict[str, str] = field(default_factory=dict)  # "METHOD path: check" -> details
    skipped: list[str] = field(default_factory=list)
    unsatisfiable: list[str] = field(default_factory=list)
    # What the engine logged for its 5xx answers: "ExceptionType: message @ file:line" -> count.
    crashes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "examples": self.examples,
            "failures": len(self.failures),
            "seconds": round(self.seconds, 1),
        }


class _CrashLog(logging.Handler):
    """Collects the exceptions behind 5xx answers (the problem middleware logs each one)."""

    def __init__(self, report: FuzzReport) -> None:
        super().__init__(logging.ERROR)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is None or record.exc_info[1] is None:
            return
        exc = record.exc_info[1]
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/warnpub/" in f.filename]
        where = (
            f" @ {frames[-1].filename.rsplit('/', 2)[-2:]}:{frames[-1].lineno}" if frames else ""
        )
        key = f"{type(exc).__name__}: {str(exc)[:160]}{where}"
        self.report.crashes[key] = self.report.crashes.get(key, 0) + 1


@contextmanager
def live_engine(settings: Settings) -> Iterator[Engine]:
    """The application on 127.0.0.1 (a free port) in a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzzed-engine", daemon=True)
    thread.start()
    db = Database(settings.database.url, schema=settings.database.schema_name)
    runner: web.AppRunner | None = None

    async def start() -> tuple[str, World]:
        nonlocal runner
        world = await seed_world(db, settings)
        runner = web.AppRunner(create_app(settings, db, run_timers=False))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}", world

    async def stop() -> None:
        if runner is not None:
            await runner.cleanup()
        await db.dispose()

    try:
        base_url, world = asyncio.run_coroutine_threadsafe(start(), loop).result(120)
        ids = [_submit(base_url, world, severity) for severity in ("Moderate", "Severe", "Minor")]
        yield Engine(base_url, world, ids)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def _submit(base_url: str, world: World, severity: str) -> str:
    answer = requests.post(
        f"{base_url}/api/v1/warnings",
        json=alert_json(severity=severity),
        headers=world.agency("QX"),
        timeout=REQUEST_TIMEOUT_S,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def credentials(auth: str, world: World) -> list[tuple[str, dict[str, str]]]:
    """(label, headers) for each way to call an operation with ``x-warnpub-auth`` = ``auth``."""
    if auth == "none":
        return [("anonymous", {})]
    out: list[tuple[str, dict[str, str]]] = []
    if auth.startswith("console session"):
        out.append(("console admin", {"Cookie": f"wp_session={world.tokens['root']}"}))
    elif "agency" in auth:
        out.append(("agency QX", world.agency("QX")))
    if not auth.startswith("console") and ("operator" in auth or "admin" in auth):
        out.append(("operator root (admin)", world.operator("root")))
        out.append(("operator duty1", world.operator("duty1")))
    out.append(("no credential", {}))
    if "agency" in auth or "operator" in auth or "admin" in auth:
        out.append(("unknown key", {"Authorization": "Bearer wpk_not-a-key-warnpub-knows"}))
    return out


def _known_values(engine: Engine) -> dict[str, list[str]]:
    """Path parameter values that name real rows, so operations go past their 404."""
    return {
        "warning_id": engine.warning_ids,
        "code": ["QX", "SL", TOWN_SHEZHU],
        "area_code": [TOWN_SHEZHU, "320481116200"],
        "gateway": ["sms", "gatewaysim"],
    }


def fuzz(
    engine: Engine,
    *,
    max_examples: int,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
    fixed_seed: int | None = 0,
) -> FuzzReport:
    """Send generated requests to every operation; collect what breaks the description."""
    report = FuzzReport()
    started = time.perf_counter()
    document = requests.get(f"{engine.base_url}/api/v1/openapi.json", timeout=30).json()
    schema = openapi.from_dict(document)
    known = _known_values(engine)
    session = requests.Session()
    crash_log = _CrashLog(report)
    logging.getLogger("warnpub").addHandler(crash_log)
    try:
        _fuzz_all(schema, engine, known, session, report, max_examples, modes, fixed_seed)
    finally:
        logging.getLogger("warnpub").removeHandler(crash_log)
    report.seconds = time.perf_counter() - started
    return report


def _fuzz_all(
    schema: Any,
    engine: Engine,
    known: dict[str, list[str]],
    session: requests.Session,
    report: FuzzReport,
    max_examples: int,
    modes: tuple[GenerationMode, ...],
    fixed_seed: int | None,
) -> None:
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            report.operations += 1
            report.failures[f"invalid description #{len(report.failures)}"] = str(result.err())
            continue
        operation = result.ok()
        if operation.path in STREAMS:
            report.skipped.append(operation.label)
            continue
        report.operations += 1
        auth = operation.definition.raw.get("x-warnpub-auth", "none")
        for label, headers in credentials(auth, engine.world):
            for mode in modes:
                _run(
                    operation,
                    mode,
                    label,
                    headers,
                    engine,
                    known,
                    session,
                    report,
                    max_examples,
                    fixed_seed,
                )


def _run(
    operation: Any,
    mode: GenerationMode,
    label: str,
    headers: dict[str, str],
    engine: Engine,
    known: dict[str, list[str]],
    session: requests.Session,
    report: FuzzReport,
    max_examples: int,
    fixed_seed: int | None,
) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @hyp_settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy, data=st.data())
    def one(case: Any, data: st.DataObject) -> None:
        for name in list(case.path_parameters or {}):
            if name in known and data.draw(st.booleans(), label=f"real {name}"):
                case.path_parameters[name] = data.draw(st.sampled_from(known[name]))
        report.examples += 1
        try:
            case.call_and_validate(
                base_url=engine.base_url,
                session=session,
                headers=headers,
                checks=CHECKS,
                timeout=REQUEST_TIMEOUT_S,
                allow_redirects=False,
            )
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{operation.label}: {failure.title}"
                report.failures.setdefault(key, f"[{label}, {mode.value}] {group.args[0]}")
        except requests.RequestException as exc:
            key = f"{operation.label}: no answer"
            report.failures.setdefault(key, f"[{label}, {mode.value}] {exc!r}")

    if fixed_seed is not None:
        one = seed(fixed_seed)(one)
    try:
        one()
    except Unsatisfiable:
        # Nothing to negate (no parameters and no body), or nothing valid to generate.
        report.unsatisfiable.append(f"{operation.label} [{label}, {mode.value}]")


def describe(report: FuzzReport) -> str:
    lines = [f"{len(report.failures)} failure(s) over {report.examples} requests:"]
    lines += [f"  crash x{n}: {key}" for key, n in report.crashes.items()]
    for key, details in report.failures.items():
        lines += [f"--- {key}", details.strip()[:1500]]
    return "\n".join(lines)
