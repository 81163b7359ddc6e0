"""Audience tables: the area tree (statistical division codes)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


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
