"""cluster: the workers table; on PostgreSQL, triggers that NOTIFY workers of new work

``workers`` holds one row per worker process (warnpub.cluster.registry): its heartbeat, and
the membership (when it was read, how many workers) its gateway rate shares are sized for.

On PostgreSQL, triggers send ``NOTIFY warnpub_work`` when work appears, whoever writes it (the
planner, a worker putting rows back, the sweeper, a receipt moving a target to its next step,
a notice written by the API), so idle workers wake at once instead of polling fast. Each payload
is ``<schema>:<topic>``: ``deliveries:<channel kinds>`` (rows queued and due), ``timers`` (a timer
due now was scheduled) or ``plan`` (a warning was approved). The notifications are sent when the
writing transaction commits, and not at all when it rolls back. SQLite gets no triggers: one
process wakes its own workers.

- Rows inserted: one statement-level trigger per INSERT, over its transition table (a plan's
  chunk of thousands of rows costs one small query, not one call per row).
- Rows updated back to ``queued`` and due within seconds (put back, lease expired, next
  route step): a row trigger whose WHEN clause is checked in C, so the updates that do not
  queue anything (claims, results, receipts) never call it; within a transaction PostgreSQL
  sends identical payloads once.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import warnpub.storage.types

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The channel is warnpub.cluster.notify.CHANNEL ("warnpub_work"), written out in each body.

_FUNCTIONS = {
    "warnpub_notify_deliveries_inserted": """
        DECLARE kinds text;
        BEGIN
          SELECT string_agg(DISTINCT channel, ',' ORDER BY channel) INTO kinds
            FROM new_rows WHERE state = 'queued' AND next_attempt_at <= now() + interval '5 seconds';
          IF kinds IS NOT NULL THEN
            PERFORM pg_notify('warnpub_work', current_schema() || ':deliveries:' || kinds);
          END IF;
          RETURN NULL;
        END""",
    "warnpub_notify_delivery_queued": """
        BEGIN
          PERFORM pg_notify('warnpub_work', current_schema() || ':deliveries:' || NEW.channel);
          RETURN NULL;
        END""",
    "warnpub_notify_timers_inserted": """
        BEGIN
          IF EXISTS (SELECT 1 FROM new_rows
                     WHERE state = 'pending' AND due_at <= now() + interval '5 seconds') THEN
            PERFORM pg_notify('warnpub_work', current_schema() || ':timers');
          END IF;
          RETURN NULL;
        END""",
    "warnpub_notify_warning_approved": """
        BEGIN
          PERFORM pg_notify('warnpub_work', current_schema() || ':plan');
          RETURN NULL;
        END""",
}

_TRIGGERS = (
    (
        "deliveries_notify_inserted",
        "deliveries",
        "AFTER INSERT ON deliveries REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
        "warnpub_notify_deliveries_inserted",
    ),
    (
        "deliveries_notify_queued",
        "deliveries",
        "AFTER UPDATE ON deliveries FOR EACH ROW WHEN (NEW.state = 'queued' AND "
        "OLD.state IS DISTINCT FROM 'queued' AND "
        "NEW.next_attempt_at <= now() + interval '5 seconds')",
        "warnpub_notify_delivery_queued",
    ),
    (
        "timers_notify_inserted",
        "timers",
        "AFTER INSERT ON timers REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
        "warnpub_notify_timers_inserted",
    ),
    (
        "warnings_notify_approved",
        "warnings",
        "AFTER UPDATE OF state ON warnings FOR EACH ROW WHEN (NEW.state = 'approved' AND "
        "OLD.state IS DISTINCT FROM 'approved')",
        "warnpub_notify_warning_approved",
    ),
    (
        "warnings_notify_inserted_approved",
        "warnings",
        "AFTER INSERT ON warnings FOR EACH ROW WHEN (NEW.state = 'approved')",
        "warnpub_notify_warning_approved",
    ),
)


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("host", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", warnpub.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", warnpub.storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sized_for", sa.Integer(), nullable=False),
        sa.Column("view_at", warnpub.storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # Run as written: the payloads' colons are not bound parameters.
    for name, body in _FUNCTIONS.items():
        bind.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $${body}$$"
        )
    for name, table, when, function in _TRIGGERS:
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        bind.exec_driver_sql(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION {function}()")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name, table, _, _ in _TRIGGERS:
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for name in _FUNCTIONS:
            bind.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("workers")
