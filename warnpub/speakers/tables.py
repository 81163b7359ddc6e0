"""The table of loudspeaker re-broadcasts: one row per warning, speaker group and round.

Round 1 of a group is its delivery (``deliveries``, reference ``wp-<delivery id>``); rounds 2,
3, … are the scheduled re-broadcasts (reference ``wp-<delivery id>-r<round>``), written by the
``speaker.rebroadcast`` timer (:mod:`warnpub.dispatch.broadcasts`) and marked acknowledged when
the group answers ``played`` for that reference.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from warnpub.storage.types import UTCDateTime


class SpeakerRound(SQLModel, table=True):
    """One re-broadcast of one warning on one speaker group."""

    __tablename__ = "speaker_rounds"

    warning_id: str = Field(foreign_key="warnings.id", primary_key=True, max_length=26)
    device_id: int = Field(foreign_key="devices.id", primary_key=True)
    round: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    # The group's delivery (round 1) and the reference this round was published with.
    delivery_id: int = Field(index=True)
    reference: str = Field(max_length=120)
    # When the broker took the play command (None: it could not be published, see error).
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # When the group answered "played" for this round's reference.
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str = Field(default="", max_length=500)
