"""The engine's tables: agencies and their keys, operators, warnings, review, timers, audit.

Audience tables (areas, later people and devices) live in ``warnpub.audiences.tables``.
Every datetime column is aware UTC (:class:`UTCDateTime`); JSON documents use :data:`JSONDoc`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from warnpub.clock import new_id, utcnow
from warnpub.storage.types import JSONDoc, UTCDateTime


def _json(**kw: Any) -> Any:
    return Field(sa_column=Column(JSONDoc, nullable=False), **kw)


class Agency(SQLModel, table=True):
    __tablename__ = "agencies"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=32)
    name: str = Field(max_length=200)
    # CAP <sender> values this agency signs its messages with.
    sender: str = Field(unique=True, max_length=200)
    hazards: list[str] = _json(default_factory=list)
    areas: list[str] = _json(default_factory=list)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AgencyKey(SQLModel, table=True):
    __tablename__ = "agency_keys"

    id: int | None = Field(default=None, primary_key=True)
    agency_id: int = Field(foreign_key="agencies.id", index=True)
    prefix: str = Field(unique=True, max_length=16)
    key_hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Operator(SQLModel, table=True):
    __tablename__ = "operators"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=64)
    display_name: str = Field(max_length=200)
    role: str = Field(max_length=16)  # operator | supervisor | admin
    password_hash: str = Field(max_length=256)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OperatorToken(SQLModel, table=True):
    __tablename__ = "operator_tokens"

    id: int | None = Field(default=None, primary_key=True)
    operator_id: int = Field(foreign_key="operators.id", index=True)
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WarningRecord(SQLModel, table=True):
    """One CAP alert as received, with the columns review and dispatch query on."""

    __tablename__ = "warnings"
    __table_args__ = (
        UniqueConstraint("sender", "identifier", name="uq_warnings_sender_identifier"),
        Index("ix_warnings_state_level_deadline", "state", "level_rank", "review_deadline"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=26)
    agency_id: int = Field(foreign_key="agencies.id", index=True)
    submitted_by_operator_id: int | None = Field(default=None, foreign_key="operators.id")
    sender: str = Field(max_length=200)
    identifier: str = Field(max_length=200)
    sent: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(max_length=16)
    msg_type: str = Field(max_length=16)
    scope: str = Field(max_length=16)
    level: str = Field(max_length=8)
    # 0 = red … 3 = blue, so that ORDER BY level_rank puts the most severe first.
    level_rank: int
    hazard: str = Field(max_length=64)
    headline: str = Field(default="", max_length=400)
    state: str = Field(max_length=16, index=True)
    green_channel: bool = False
    review_deadline: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    content_hash: str = Field(max_length=64)
    alert: dict[str, Any] = _json(default_factory=dict)
    # The CAP document exactly as received (bytes: any declared encoding, signatures intact).
    cap_xml: bytes | None = Field(default=None, sa_type=LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    post_reviewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Dispatch: when the plan (every first-step delivery row) was fully written, and when
    # every delivery reached a final state.
    planned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WarningArea(SQLModel, table=True):
    __tablename__ = "warning_areas"

    warning_id: str = Field(foreign_key="warnings.id", primary_key=True, max_length=26)
    code: str = Field(primary_key=True, max_length=12, index=True)


class WarningReference(SQLModel, table=True):
    """An Update or Cancel names earlier warnings (CAP <references>)."""

    __tablename__ = "warning_references"

    warning_id: str = Field(foreign_key="warnings.id", primary_key=True, max_length=26)
    referenced_id: str = Field(foreign_key="warnings.id", primary_key=True, max_length=26)


class ReviewDecision(SQLModel, table=True):
    """One operator's decision on one warning: approve, reject, cancel or post-review."""

    __tablename__ = "review_decisions"
    __table_args__ = (
        UniqueConstraint("warning_id", "operator_id", "decision", name="uq_review_once"),
    )

    id: int | None = Field(default=None, primary_key=True)
    warning_id: str = Field(foreign_key="warnings.id", index=True, max_length=26)
    operator_id: int = Field(foreign_key="operators.id")
    decision: str = Field(max_length=16)
    reason: str = ""
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a request carrying an ``Idempotency-Key``, replayed on retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("caller", "key", name="uq_idempotency_caller_key"),)

    id: int | None = Field(default=None, primary_key=True)
    caller: str = Field(max_length=64)
    key: str = Field(max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int
    response: dict[str, Any] = _json(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Timer(SQLModel, table=True):
    """A durable timer: fires once at ``due_at``, claimed with a lease so one process runs it."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_state_due", "state", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    warning_id: str | None = Field(default=None, foreign_key="warnings.id", max_length=26)
    # At most one live timer per dedupe key (e.g. "review_deadline:<warning id>").
    dedupe_key: str | None = Field(default=None, unique=True, max_length=120)
    due_at: datetime = Field(sa_type=UTCDateTime)
    state: str = Field(default="pending", max_length=16)  # pending | done | cancelled
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    last_error: str | None = None
    fired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    payload: dict[str, Any] = _json(default_factory=dict)


class Escalation(SQLModel, table=True):
    """Something a person must look at now (a review deadline passed, later: nobody acknowledged)."""

    __tablename__ = "escalations"

    id: int | None = Field(default=None, primary_key=True)
    warning_id: str | None = Field(
        default=None, foreign_key="warnings.id", index=True, max_length=26
    )
    kind: str = Field(max_length=32)
    message: str
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained: ``hash = sha256(prev_hash + canonical(entry))``."""

    __tablename__ = "audit_log"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=64, index=True)
    subject: str = Field(default="", max_length=100, index=True)
    details: dict[str, Any] = _json(default_factory=dict)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """One row: the last sequence number and hash. Locking it serialises appends."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default="0" * 64, max_length=64)


class Delivery(SQLModel, table=True):
    """One attempt to reach one target over one channel: the outbox and the queue in one table.

    States: planned → queued → sending → sent → delivered | failed | expired | cancelled.
    ``planned`` rows wait for an earlier step of the route; ``queued`` rows are due at
    ``next_attempt_at``; ``sending`` rows are leased to a worker until ``lease_until``.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint(
            "warning_id", "target_kind", "target_id", "channel", name="uq_delivery_target_channel"
        ),
        # The claim: due rows of one channel, highest priority first.
        Index("ix_deliveries_claim", "channel", "state", "priority", "next_attempt_at"),
        Index("ix_deliveries_warning_state", "warning_id", "state"),
        # Receipts find a sent row by the gateway's message id; rows not sent yet have none
        # and stay out of the index (a million-row plan does not write a million entries).
        # The sweeper's two scans, over the few rows they concern rather than every row of
        # every warning (both run inside a write transaction every couple of seconds):
        # leases that may have run out, and sent rows still waiting for a receipt.
        Index(
            "ix_deliveries_leased",
            "lease_until",
            sqlite_where=text("state = 'sending'"),
            postgresql_where=text("state = 'sending'"),
        ),
        Index(
            "ix_deliveries_awaiting",
            "warning_id",
            "sent_at",
            sqlite_where=text("state = 'sent' AND final_at IS NULL"),
            postgresql_where=text("state = 'sent' AND final_at IS NULL"),
        ),
        # Receipt health reads the rows sent lately; rows not sent yet stay out of the index.
        Index(
            "ix_deliveries_sent_at",
            "sent_at",
            sqlite_where=text("sent_at IS NOT NULL"),
            postgresql_where=text("sent_at IS NOT NULL"),
        ),
        # The escalation ladder reads the rows that ask for an acknowledgement (a few per
        # village) without scanning a warning's million others.
        Index(
            "ix_deliveries_ack",
            "warning_id",
            "target_id",
            sqlite_where=text("ack_required"),
            postgresql_where=text("ack_required"),
        ),
        Index(
            "ix_deliveries_provider_ref",
            "provider_ref",
            sqlite_where=text("provider_ref IS NOT NULL"),
            postgresql_where=text("provider_ref IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    warning_id: str = Field(foreign_key="warnings.id", max_length=26)
    target_kind: str = Field(max_length=8)  # person | device
    target_id: int
    channel: str = Field(max_length=16)  # sms | email | voice | speaker | board | relay
    # Which step of the target's route this is, and the whole route ("sms|board|relay").
    stage: int = 0
    route: str = Field(default="", max_length=120)
    tier: int = 0
    priority: int = 0
    area_code: str = Field(max_length=12)
    language: str = Field(default="zh-CN", max_length=16)
    ack_required: bool = False
    state: str = Field(max_length=12)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The channel instance (e.g. SMS gateway) that took it, and that instance's message id.
    gateway: str | None = Field(default=None, max_length=64)
    provider_ref: str | None = Field(default=None, max_length=120)
    last_error: str = Field(default="", max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    final_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class InboundMessage(SQLModel, table=True):
    """A message people sent us (an SMS reply), kept as received."""

    __tablename__ = "inbound_messages"

    id: int | None = Field(default=None, primary_key=True)
    gateway: str = Field(max_length=64)
    sender: str = Field(max_length=32)  # E.164
    text: str = Field(max_length=2000)
    received_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# Notice boards keep their own tables next to their code; importing them here registers them
# wherever the engine's tables are registered (migrations, the schema comparison test).
import warnpub.boards.tables  # noqa: E402, F401
from warnpub.lastkm import tables as _lastkm_tables  # noqa: E402, F401
from warnpub.speakers import tables as _speaker_tables  # noqa: E402, F401


class WorkerRow(SQLModel, table=True):
    """A worker process on PostgreSQL (warnpub.cluster.registry): it writes ``heartbeat_at``
    every ``[cluster] heartbeat_s`` and is dead after ``dead_after_s`` without. Gateway rate
    limits are shared by the live rows. ``view_at`` is when this worker read the membership
    its shares are sized for, and ``sized_for`` how many workers that was; both are written
    once its rate windows hold no more than those shares (a newer worker starts sending when
    every older one is sized for a membership read after the newcomer's row was visible)."""

    __tablename__ = "workers"

    id: str = Field(primary_key=True, max_length=64)
    host: str = Field(max_length=255)
    pid: int
    started_at: datetime = Field(sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(sa_type=UTCDateTime)
    sized_for: int = 0
    view_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
