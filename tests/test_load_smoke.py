"""The load of bench/load.py, briefly: several agencies submitting JSON and CAP XML at once,
open-loop, against the application on loopback. Every submission is answered without error
and every accepted one is stored. Not a timing test (the figures are bench/load.py's)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import func, select

from warnpub.audiences.areas import liyang_csv, load_areas
from warnpub.storage.tables import AuditEntry, IdempotencyRecord, WarningRecord

BENCH_LOAD = Path(__file__).resolve().parents[1] / "bench" / "load.py"


def _bench_load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("warnpub_bench_load", BENCH_LOAD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    sys.path.insert(0, str(BENCH_LOAD.parent))  # its own imports (bench/processes.py)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH_LOAD.parent))
    return module


@pytest.mark.hang_after(120)
async def test_agencies_submitting_at_once_are_all_answered_and_stored(client, db, settings):
    load = _bench_load()
    async with db.session() as s:
        await load_areas(s, liyang_csv())
        agencies = await load.make_agencies(s, settings, 6, xml_share=0.5)
    assert {a.xml for a in agencies} == {True, False}
    base = str(client.make_url("")).rstrip("/")

    result = await load.drive(base, agencies, rate=30, seconds=3, update_share=0.2)

    figures = result.figures()
    assert figures["submitted"] == 90
    assert [r.error for r in result.errors()] == []
    ids = result.accepted_ids
    assert len(ids) == 90 and len(set(ids)) == 90
    assert await load.stored(db, ids) == 90
    async with db.reader() as s:
        warnings = (
            await s.execute(
                select(WarningRecord.msg_type, func.count()).group_by(WarningRecord.msg_type)
            )
        ).all()
        keys = (await s.execute(select(func.count()).select_from(IdempotencyRecord))).scalar_one()
        submitted = (
            await s.execute(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "warning.submitted")
            )
        ).scalar_one()
    by_type = dict(warnings)
    assert sum(by_type.values()) == 90 and by_type.get("Update", 0) > 0
    assert keys == 90 and submitted == 90
    assert figures["p99_ms"] is not None and figures["errors"] == 0
