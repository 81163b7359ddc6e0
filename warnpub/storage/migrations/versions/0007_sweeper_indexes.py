"""deliveries: partial indexes for the sweeper's scans (and receipt health)

Every couple of seconds, inside a write transaction, the sweeper looks for leases that ran out
(``state = 'sending'``) and for sent rows still waiting for a receipt (``state = 'sent' AND
final_at IS NULL``), and decides which warnings are complete. Without an index on the state
those were scans of every delivery ever written (hundreds of milliseconds at two million rows,
holding up approvals and claims). Two partial indexes hold only the rows in question; planned
rows (``queued``) are not in them, so a plan writes no more index entries than before.
Receipt health reads the rows sent in the last few minutes: an index on ``sent_at`` where it
is set (rows enter it when they are sent, not when they are planned).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_leased",
            ["lease_until"],
            unique=False,
            sqlite_where=sa.text("state = 'sending'"),
            postgresql_where=sa.text("state = 'sending'"),
        )
        batch_op.create_index(
            "ix_deliveries_awaiting",
            ["warning_id", "sent_at"],
            unique=False,
            sqlite_where=sa.text("state = 'sent' AND final_at IS NULL"),
            postgresql_where=sa.text("state = 'sent' AND final_at IS NULL"),
        )
        batch_op.create_index(
            "ix_deliveries_sent_at",
            ["sent_at"],
            unique=False,
            sqlite_where=sa.text("sent_at IS NOT NULL"),
            postgresql_where=sa.text("sent_at IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_sent_at")
        batch_op.drop_index("ix_deliveries_awaiting")
        batch_op.drop_index("ix_deliveries_leased")
