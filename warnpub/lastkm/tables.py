"""The last kilometre's tables: what was frozen at approval, who acknowledged, where each
escalation ladder stands, the visit tasks of village contacts and the notices we send people
about a warning (escalation alerts, answers to replies, visit lists)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from warnpub.clock import utcnow
from warnpub.storage.types import JSONDoc, UTCDateTime


class AckPlan(SQLModel, table=True):
    """Frozen into a warning when it is released: its reply code and its escalation ladder
    (``[escalation.ladders]`` as configured then), so later edits change nothing in flight."""

    __tablename__ = "ack_plans"

    warning_id: str = Field(foreign_key="warnings.id", primary_key=True, max_length=26)
    # The short code people reply with (unique among the warnings in force).
    reply_code: str = Field(max_length=8, index=True)
    # The key the warning's acknowledgement links are signed with (hex, 32 bytes).
    link_key: str = Field(max_length=64)
    # {"wait_s", "steps", "repeat", "resend_channels", "supervisors"}
    ladder: dict[str, Any] = Field(sa_column=Column(JSONDoc, nullable=False))
    frozen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Set when the story is closed (Cancel, expiry, final report): escalations stop.
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Acknowledgement(SQLModel, table=True):
    """The first acknowledgement of one target for one warning: when and how it came."""

    __tablename__ = "acknowledgements"
    __table_args__ = (UniqueConstraint("warning_id", "target_kind", "target_id"),)

    id: int | None = Field(default=None, primary_key=True)
    warning_id: str = Field(foreign_key="warnings.id", max_length=26)
    target_kind: str = Field(max_length=8)  # person | device
    target_id: int
    # sms_reply | link | voice | speaker | board | in_person (reported by a village contact)
    via: str = Field(max_length=16)
    at: datetime = Field(sa_type=UTCDateTime)
    # Who reported it when it is not the target itself (the village contact's person id).
    reported_by: int | None = None


class LadderState(SQLModel, table=True):
    """Where one person's escalation ladder stands for one warning."""

    __tablename__ = "ladder_states"
    __table_args__ = (
        UniqueConstraint("warning_id", "person_id"),
        Index("ix_ladder_states_open", "state", "next_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    warning_id: str = Field(foreign_key="warnings.id", max_length=26)
    person_id: int
    # Steps taken so far (over all rounds); the next is steps[taken % len(steps)].
    taken: int = 0
    next_at: datetime = Field(sa_type=UTCDateTime)
    # waiting | acknowledged | exhausted | stopped
    state: str = Field(default="waiting", max_length=12)
    last_step: str = Field(default="", max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class VisitTask(SQLModel, table=True):
    """A special-needs person a village contact must tell in person (a ``relay`` delivery)."""

    __tablename__ = "visit_tasks"
    __table_args__ = (
        UniqueConstraint("warning_id", "person_id"),
        UniqueConstraint("warning_id", "contact_id", "number"),
        Index("ix_visit_tasks_contact", "contact_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    warning_id: str = Field(foreign_key="warnings.id", max_length=26)
    person_id: int
    contact_id: int
    # The contact's number for this person in this warning: the "2" of a "2 5" reply.
    number: int
    area_code: str = Field(max_length=12)
    needs: int = 0
    delivery_id: int = Field(index=True)
    state: str = Field(default="open", max_length=12)  # open | done | closed
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    done_via: str = Field(default="", max_length=16)  # sms_reply | link


class Notice(SQLModel, table=True):
    """A message about a warning to one address that is not the warning itself: escalation
    alerts, supervisors' notifications, answers to replies, visit lists. Sent through the
    outbox as a delivery with ``target_kind = "notice"`` and ``target_id = notices.id``."""

    __tablename__ = "notices"
    # Answers to replies are limited per number and time (warnpub.lastkm.replies).
    __table_args__ = (Index("ix_notices_address", "address", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    warning_id: str = Field(foreign_key="warnings.id", index=True, max_length=26)
    # escalation | review_deadline | reply_answer | visit_list | report_answer
    kind: str = Field(max_length=24)
    channel: str = Field(max_length=16)  # sms | email
    address: str = Field(max_length=320)
    person_id: int | None = None
    subject: str = Field(default="", max_length=200)
    text: str = Field(max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
