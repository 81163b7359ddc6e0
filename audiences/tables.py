"""Audience tables: the area tree, people (with needs and contact points), devices."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, text
from sqlmodel import Field, SQLModel

from warnpub.clock import utcnow
from warnpub.storage.types import JSONDoc, UTCDateTime


class Area(SQLModel, table=True):
    """One division, its code written out to 12 digits (320481101000 is a town, …101200 a village)."""

    __tablename__ = "areas"

    code: str = Field(primary_key=True, max_length=12)
    name: str = Field(max_length=200)
    level: str = Field(max_length=32)
    parent_code: str | None = Field(default=None, max_length=12, index=True)
    # Urban-rural class of a village (111-123 urban, 210/220 rural); None above village level.
    urban_rural: str | None = Field(default=None, max_length=3)
    synthetic: bool = False
    # Optional boundary as a GeoJSON geometry (Polygon or MultiPolygon, lon/lat order).
    geometry: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONDoc, nullable=True))


TARGETING_COLUMNS = (
    "area_code",
    "needs",
    "role",
    "opt_out",
    "phone",
    "email",
    "relay_contact_id",
    "language",
)
CONTACTS_WHERE = "role IN ('village_contact', 'town_duty_officer')"


class Person(SQLModel, table=True):
    """Someone to reach: a resident, a village contact (村联络员), a town duty officer, …"""

    __tablename__ = "people"
    __table_args__ = (
        # Covers the targeting queries: a city of a million people is read from the index alone,
        # in area order, without touching the table.
        Index("ix_people_targeting", *TARGETING_COLUMNS),
        # The small tiers get small partial indexes of their own, so that finding the special-
        # needs people and the contacts of a city does not scan everyone.
        Index(
            "ix_people_special",
            *TARGETING_COLUMNS,
            sqlite_where=text("needs != 0"),
            postgresql_where=text("needs != 0"),
        ),
        Index(
            "ix_people_contacts",
            *TARGETING_COLUMNS,
            sqlite_where=text(CONTACTS_WHERE),
            postgresql_where=text(CONTACTS_WHERE),
        ),
        # An inbound SMS (a reply code, a visit report) is matched to people by its sender.
        Index("ix_people_phone", "phone"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The roster's own id for this person; re-importing a roster updates by it.
    external_id: str | None = Field(default=None, unique=True, max_length=64)
    name: str = Field(max_length=100)
    area_code: str = Field(foreign_key="areas.code", max_length=12)
    role: str = Field(default="resident", max_length=32)
    phone: str | None = Field(default=None, max_length=20)  # E.164
    email: str | None = Field(default=None, max_length=254)
    language: str = Field(default="zh-CN", max_length=16)
    # Bit flags of audiences.needs.Need; 0 = no special needs.
    needs: int = 0
    needs_note: str = Field(default="", max_length=500)
    # The village contact responsible for visiting this person.
    relay_contact_id: int | None = Field(default=None, foreign_key="people.id", index=True)
    lat: float | None = None
    lon: float | None = None
    # Opt-outs are honoured for blue and yellow warnings only.
    opt_out: bool = False
    drill_consent: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Device(SQLModel, table=True):
    """A loudspeaker group (村村响) or a notice board, installed in an area."""

    __tablename__ = "devices"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str | None = Field(default=None, unique=True, max_length=64)
    kind: str = Field(max_length=32)  # speaker_group | board_digital | board_paper
    name: str = Field(max_length=200)
    area_code: str = Field(foreign_key="areas.code", index=True, max_length=12)
    # Where the channel reaches it: an MQTT topic, a board id, a print queue, …
    address: str = Field(max_length=300)
    lat: float | None = None
    lon: float | None = None
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
