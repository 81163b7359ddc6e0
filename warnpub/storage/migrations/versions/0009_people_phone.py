"""people: an index on phone (inbound replies are matched to people by their sender)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 04:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_people_phone", "people", ["phone"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_people_phone", table_name="people")
