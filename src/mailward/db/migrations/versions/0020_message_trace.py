"""message trace: every event of a message's life, the hourly counters and sampled
gauges the dashboard charts read, and the trace id on queued and quarantined messages

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 11:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "trace_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node", sa.String(length=260), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=True),
        sa.Column("queue_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("domain", sa.String(length=253), nullable=True),
        sa.Column("mailbox", sa.String(length=320), nullable=True),
        sa.Column("peer", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.String(length=250), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_events")),
    )
    with op.batch_alter_table("trace_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_events_at"), ["at"], unique=False)
        batch_op.create_index("ix_trace_events_domain_at", ["domain", "at"], unique=False)
        batch_op.create_index("ix_trace_events_mailbox_at", ["mailbox", "at"], unique=False)
        for column in ("trace_id", "queue_id", "sender", "recipient", "peer", "message_id"):
            batch_op.create_index(batch_op.f(f"ix_trace_events_{column}"), [column],
                                  unique=False)
    op.create_table(
        "trace_counts",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("domain", "hour", "metric", name=op.f("pk_trace_counts")),
    )
    op.create_index("ix_trace_counts_hour", "trace_counts", ["hour"], unique=False)
    op.create_table(
        "trace_top",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("field", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("domain", "hour", "field", "value", name=op.f("pk_trace_top")),
    )
    op.create_index("ix_trace_top_hour", "trace_top", ["hour"], unique=False)
    op.create_table(
        "trace_gauges",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"],
                                name=op.f("fk_trace_gauges_account_id_accounts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace_gauges")),
    )
    with op.batch_alter_table("trace_gauges", schema=None) as batch_op:
        batch_op.create_index("ix_trace_gauges_account_name_at", ["account_id", "name", "at"],
                              unique=False)
        batch_op.create_index("ix_trace_gauges_at", ["at"], unique=False)
    with op.batch_alter_table("webmail_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webmail_deliveries_at", ["at"], unique=False)
    with op.batch_alter_table("queue_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_queue_messages_trace_id"), ["trace_id"],
                              unique=False)
    with op.batch_alter_table("quarantine_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trace_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("quarantine_messages", schema=None) as batch_op:
        batch_op.drop_column("trace_id")
    with op.batch_alter_table("queue_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queue_messages_trace_id"))
        batch_op.drop_column("trace_id")
    with op.batch_alter_table("webmail_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webmail_deliveries_at")
    with op.batch_alter_table("trace_gauges", schema=None) as batch_op:
        batch_op.drop_index("ix_trace_gauges_at")
        batch_op.drop_index("ix_trace_gauges_account_name_at")
    op.drop_table("trace_gauges")
    op.drop_index("ix_trace_top_hour", table_name="trace_top")
    op.drop_table("trace_top")
    op.drop_index("ix_trace_counts_hour", table_name="trace_counts")
    op.drop_table("trace_counts")
    with op.batch_alter_table("trace_events", schema=None) as batch_op:
        for column in ("message_id", "peer", "recipient", "sender", "queue_id", "trace_id"):
            batch_op.drop_index(batch_op.f(f"ix_trace_events_{column}"))
        batch_op.drop_index("ix_trace_events_mailbox_at")
        batch_op.drop_index("ix_trace_events_domain_at")
        batch_op.drop_index(batch_op.f("ix_trace_events_at"))
    op.drop_table("trace_events")
