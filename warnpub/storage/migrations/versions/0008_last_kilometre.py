"""last kilometre: ack plans, acknowledgements, ladders, visit tasks, notices

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import warnpub.storage.types

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_ack",
        "deliveries",
        ["warning_id", "target_id"],
        unique=False,
        sqlite_where=sa.text("ack_required"),
        postgresql_where=sa.text("ack_required"),
    )
    op.create_table('ack_plans',
    sa.Column('warning_id', sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
    sa.Column('reply_code', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('link_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('ladder', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('frozen_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('closed_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['warning_id'], ['warnings.id'], ),
    sa.PrimaryKeyConstraint('warning_id')
    )
    with op.batch_alter_table('ack_plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ack_plans_reply_code'), ['reply_code'], unique=False)

    op.create_table('acknowledgements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warning_id', sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
    sa.Column('target_kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('via', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reported_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['warning_id'], ['warnings.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('warning_id', 'target_kind', 'target_id')
    )
    op.create_table('ladder_states',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warning_id', sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('taken', sa.Integer(), nullable=False),
    sa.Column('next_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('last_step', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('updated_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['warning_id'], ['warnings.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('warning_id', 'person_id')
    )
    with op.batch_alter_table('ladder_states', schema=None) as batch_op:
        batch_op.create_index('ix_ladder_states_open', ['state', 'next_at'], unique=False)

    op.create_table('notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warning_id', sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('created_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['warning_id'], ['warnings.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notices_warning_id'), ['warning_id'], unique=False)
        batch_op.create_index('ix_notices_address', ['address', 'created_at'], unique=False)

    op.create_table('visit_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('warning_id', sqlmodel.sql.sqltypes.AutoString(length=26), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('area_code', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('needs', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('created_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', warnpub.storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_via', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.ForeignKeyConstraint(['warning_id'], ['warnings.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('warning_id', 'contact_id', 'number'),
    sa.UniqueConstraint('warning_id', 'person_id')
    )
    with op.batch_alter_table('visit_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_visit_tasks_contact', ['contact_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_visit_tasks_delivery_id'), ['delivery_id'], unique=False)



def downgrade() -> None:
    op.drop_index("ix_deliveries_ack", table_name="deliveries")
    with op.batch_alter_table('visit_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_tasks_delivery_id'))
        batch_op.drop_index('ix_visit_tasks_contact')

    op.drop_table('visit_tasks')
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.drop_index('ix_notices_address')
        batch_op.drop_index(batch_op.f('ix_notices_warning_id'))

    op.drop_table('notices')
    with op.batch_alter_table('ladder_states', schema=None) as batch_op:
        batch_op.drop_index('ix_ladder_states_open')

    op.drop_table('ladder_states')
    op.drop_table('acknowledgements')
    with op.batch_alter_table('ack_plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ack_plans_reply_code'))

    op.drop_table('ack_plans')
