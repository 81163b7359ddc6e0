"""speaker_rounds: scheduled re-broadcasts of a warning on its speaker groups

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import warnpub.storage.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "speaker_rounds",
        sa.Column("warning_id", sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("published_at", warnpub.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "acknowledged_at", warnpub.storage.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.ForeignKeyConstraint(["warning_id"], ["warnings.id"]),
        sa.PrimaryKeyConstraint("warning_id", "device_id", "round"),
    )
    with op.batch_alter_table("speaker_rounds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_speaker_rounds_delivery_id"), ["delivery_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("speaker_rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_speaker_rounds_delivery_id"))
    op.drop_table("speaker_rounds")
