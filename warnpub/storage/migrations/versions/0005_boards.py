"""boards: board credentials (token hash, heartbeat) and warnings per board

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 21:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import warnpub.storage.types


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('board_credentials',
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('issued_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_seen_via', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ),
    sa.PrimaryKeyConstraint('device_id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('board_warnings',
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('warning_id', sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=True),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('sent_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('shown_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('posted_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('posted_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], ),
    sa.ForeignKeyConstraint(['warning_id'], ['warnings.id'], ),
    sa.PrimaryKeyConstraint('device_id', 'warning_id')
    )
    with op.batch_alter_table('board_warnings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_board_warnings_delivery_id'), ['delivery_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('board_warnings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_board_warnings_delivery_id'))
    op.drop_table('board_warnings')
    op.drop_table('board_credentials')
