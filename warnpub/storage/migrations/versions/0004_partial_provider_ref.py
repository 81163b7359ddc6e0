"""deliveries: index provider_ref only where it is set

A delivery gets its gateway message id (provider_ref) when it is sent. Until then the column
is NULL, and a full index wrote one entry per planned row for nothing: a partial index keeps
only sent rows, which is all that receipts look up (``provider_ref = …`` / ``IN (…)`` imply
``IS NOT NULL``, so both SQLite and PostgreSQL use it for them).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_provider_ref')
        batch_op.create_index(
            'ix_deliveries_provider_ref',
            ['provider_ref'],
            unique=False,
            sqlite_where=sa.text('provider_ref IS NOT NULL'),
            postgresql_where=sa.text('provider_ref IS NOT NULL'),
        )


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_provider_ref')
        batch_op.create_index('ix_deliveries_provider_ref', ['provider_ref'], unique=False)
