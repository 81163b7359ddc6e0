"""Notice boards (entry point ``board`` in ``warnpub.channels``; route channel ``board``).

A board is not pushed to: a digital board's page reads the active warnings of its area from
the database and updates itself (``GET /boards/{board id}``, docs/boards.md), and a paper
board's notice is printed from ``GET /notices/{warning id}/{area code}``. Sending therefore
checks that the board exists and is switched on, and records in ``board_warnings`` that the
warning was made available to it (with the text rendered for the board). A delivery's address
is the board id (``Device.address``).

================================================  ======================================
what happened                                     Result
================================================  ======================================
recorded; the board has not shown it yet          SENT, provider_ref ``<board id>/<warning id>``
recorded; a digital board already showed it, or   DELIVERED
the paper notice was already confirmed posted
no board with that id, not a board, switched      PERMANENT
off, or the delivery names no warning
the database could not be reached or was busy     TRANSIENT
================================================  ======================================

The receipt is the board itself: a digital board's next request (page, event stream, poll)
that shows the warning marks the delivery delivered, and for a paper board the village
contact's ``POST /boards/{board id}/posted``. ``limits.receipts`` is True; a board that does not
show the warning within ``receipt_timeout_s`` is unreached (the sweeper expires the delivery).

The adapter needs the database: the dispatcher may hand it its own with
``bind_database(db)``; otherwise it opens one from ``database_url`` (and ``schema_name``), or
from the ``[database]`` settings as ``warnpub`` reads them (``WARNPUB_CONFIG``,
``WARNPUB_DATABASE_URL``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import event, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from warnpub.audiences.tables import Device
from warnpub.boards.tables import BoardWarning
from warnpub.channels.base import Limits, Message, Result, Status
from warnpub.channels.instance_config import validate_instance
from warnpub.channels.own_database import OwnDatabase
from warnpub.clock import utcnow
from warnpub.config import load_settings
from warnpub.storage.engine import Database
from warnpub.storage.tables import Delivery, WarningRecord

log = logging.getLogger("warnpub.channels.board")

BOARD_KINDS = ("board_digital", "board_paper")
MAX_TEXT = 2000
MAX_ERROR_CHARS = 300


class BoardConfig(BaseModel):
    """One ``[[channels.board]]`` entry with ``adapter = "board"``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str | None = None
    schema_name: str = ""
    # How long one send may wait for a busy database before it is retried later.
    timeout_s: float = Field(10.0, gt=0, le=300)
    # A board that has not shown the warning after this is unreached.
    receipt_timeout_s: float = Field(1800.0, gt=0)
    max_batch: int = Field(100, ge=1, le=1000)
    rate_per_s: float = Field(100.0, gt=0)
    concurrency: int = Field(2, ge=1, le=32)
    weight: float = Field(1.0, ge=0)


def parse_config(config: Mapping[str, Any]) -> BoardConfig:
    """Validate one instance's configuration; :class:`ChannelError` names every key to fix."""
    return validate_instance(BoardConfig, config, "board", "docs/boards.md")


def reference_of(address: str, warning_id: str) -> str:
    """The provider reference of a board delivery: ``<board id>/<warning id>``."""
    return f"{address}/{warning_id}"[-120:]


class NoticeBoard(OwnDatabase):
    """Digital and paper notice boards as a :class:`~warnpub.channels.base.Channel`."""

    kind: ClassVar[str] = "board"

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = cfg = parse_config(config)
        self.limits = Limits(
            max_batch=cfg.max_batch,
            rate_per_s=cfg.rate_per_s,
            burst=max(1, math.ceil(cfg.rate_per_s)),
            concurrency=cfg.concurrency,
            receipts=True,
            receipt_timeout_s=cfg.receipt_timeout_s,
        )
        self.weight = cfg.weight

    def __repr__(self) -> str:
        return f"NoticeBoard(name={self.name!r})"

    async def start(self) -> None:
        self._ensure_database(self._open)

    def _open(self) -> Database:
        cfg = self.config
        if cfg.database_url:
            url, schema = cfg.database_url, cfg.schema_name
        else:
            settings = load_settings()
            url, schema = settings.database.url, settings.database.schema_name
        kwargs: dict[str, Any] = {}
        if not url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": cfg.timeout_s, "command_timeout": cfg.timeout_s}
        db = Database(url, schema=schema, **kwargs)
        if db.dialect == "sqlite":
            busy_ms = int(cfg.timeout_s * 1000)

            @event.listens_for(db.engine.sync_engine, "connect")
            def _busy(dbapi_conn: Any, _record: Any) -> None:  # after the engine's own PRAGMAs
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA busy_timeout={busy_ms}")
                cur.close()

        return db

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        if not messages:
            return []
        await self.start()
        assert self._db is not None
        try:
            async with self._db.session() as session:
                results = await self._record(session, messages)
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            error = f"the board database is not available: {type(exc).__name__}: {exc}"
            error = " ".join(error.split())[:MAX_ERROR_CHARS]
            log.warning("board %s: %s", self.name, error)
            return [Result(m.delivery_id, Status.TRANSIENT, error=error) for m in messages]
        return [results[m.delivery_id] for m in messages]

    async def _record(
        self, session: AsyncSession, messages: Sequence[Message]
    ) -> dict[int, Result]:
        ids = [m.delivery_id for m in messages]
        rows = {
            d_id: (warning_id, kind, target_id)
            for d_id, warning_id, kind, target_id in (
                await session.execute(
                    select(
                        Delivery.id, Delivery.warning_id, Delivery.target_kind, Delivery.target_id
                    ).where(Delivery.id.in_(ids))
                )
            ).all()
        }
        addresses = {m.address for m in messages}
        boards: dict[str, list[Device]] = {}
        by_id: dict[int, Device] = {}
        for device in (
            await session.execute(select(Device).where(Device.address.in_(addresses)))
        ).scalars():
            boards.setdefault(device.address, []).append(device)
            by_id[device.id or 0] = device
        warning_ids = {
            m.metadata.get("warning_id") or rows.get(m.delivery_id, ("",))[0] for m in messages
        }
        known_warnings = set(
            (
                await session.execute(
                    select(WarningRecord.id).where(WarningRecord.id.in_(warning_ids - {""}))
                )
            ).scalars()
        )
        now = utcnow()
        out: dict[int, Result] = {}
        for m in messages:
            row = rows.get(m.delivery_id)
            warning_id = m.metadata.get("warning_id") or (row[0] if row else "")
            device = self._board_of(m, row, boards, by_id)
            problem = self._problem(m, device, warning_id, known_warnings)
            if problem or device is None:
                out[m.delivery_id] = self._permanent(m, problem)
                continue
            assert device.id is not None
            shown = await session.get(BoardWarning, (device.id, warning_id), with_for_update=True)
            if shown is None:
                shown = BoardWarning(device_id=device.id, warning_id=warning_id)
                session.add(shown)
            shown.delivery_id = m.delivery_id
            shown.reference = reference_of(device.address, warning_id)
            shown.text = m.text[:MAX_TEXT]
            shown.sent_at = shown.sent_at or now
            done = shown.posted_at if device.kind == "board_paper" else shown.shown_at
            status = Status.DELIVERED if done is not None else Status.SENT
            out[m.delivery_id] = Result(m.delivery_id, status, provider_ref=shown.reference)
        await session.flush()
        return out

    @staticmethod
    def _board_of(
        m: Message,
        row: tuple[str, str, int] | None,
        boards: Mapping[str, list[Device]],
        by_id: Mapping[int, Device],
    ) -> Device | None:
        """The delivery's own target when it is known, else the one board with this id."""
        if row is not None and row[1] == "device" and row[2] in by_id:
            return by_id[row[2]]
        found = boards.get(m.address, [])
        ranked = sorted(found, key=lambda d: (d.kind not in BOARD_KINDS, not d.active, d.id))
        return ranked[0] if ranked else None

    @staticmethod
    def _problem(m: Message, device: Device | None, warning_id: str, known: set[str]) -> str:
        if device is None:
            return f"no notice board has the board id {m.address!r}"
        if device.kind not in BOARD_KINDS:
            return f"device {device.address!r} is a {device.kind}, not a notice board"
        if not device.active:
            return f"board {device.address!r} is switched off (inactive)"
        if not warning_id:
            return f"delivery {m.delivery_id} names no warning to put on the board"
        if warning_id not in known:
            return f"warning {warning_id} does not exist"
        return ""

    def _permanent(self, m: Message, error: str) -> Result:
        error = error[:MAX_ERROR_CHARS]
        log.info("board %s: delivery %s refused: %s", self.name, m.delivery_id, error)
        return Result(m.delivery_id, Status.PERMANENT, error=error)
