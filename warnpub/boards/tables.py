"""The tables of notice boards: each board's credential and heartbeat, and what each board was
sent, showed and had posted.

A board is a :class:`~warnpub.audiences.tables.Device` of kind ``board_digital`` or
``board_paper``; these tables only add what the board channel and the board pages need.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from warnpub.clock import utcnow
from warnpub.storage.types import UTCDateTime


class BoardCredential(SQLModel, table=True):
    """A board's token (only its SHA-256 is stored) and its last heartbeat."""

    __tablename__ = "board_credentials"

    device_id: int = Field(foreign_key="devices.id", primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The board's last request (page, events stream, poll or posted acknowledgement).
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_seen_via: str = Field(default="", max_length=16)


class BoardWarning(SQLModel, table=True):
    """One warning on one board: when the channel made it available, when the board first
    showed it (digital) and when the village contact confirmed the notice was posted (paper)."""

    __tablename__ = "board_warnings"

    device_id: int = Field(foreign_key="devices.id", primary_key=True)
    warning_id: str = Field(foreign_key="warnings.id", primary_key=True, max_length=26)
    # The delivery that made it available, and the reference the channel answered with.
    delivery_id: int | None = Field(default=None, index=True)
    reference: str | None = Field(default=None, max_length=120)
    text: str = Field(default="", max_length=2000)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    shown_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    posted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    posted_by: str = Field(default="", max_length=100)
