"""webmail sending: mail held in the queue for undo send / send later, and how each
recipient of a webmail message finished (for the sender's delivery trace)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 08:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webmail_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.String(length=32), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("message_id", sa.String(length=250), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("sent_folder", sa.String(length=500), nullable=True),
        sa.Column("sent_uid", sa.Integer(), nullable=True),
        sa.Column("release_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undo", sa.Boolean(), nullable=False),
        sa.Column("draft_state", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webmail_outbox")),
        sa.UniqueConstraint("queue_id", name=op.f("uq_webmail_outbox_queue_id")),
    )
    with op.batch_alter_table("webmail_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_webmail_outbox_mailbox_message_id",
                              ["mailbox", "message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webmail_outbox_release_at"), ["release_at"],
                              unique=False)
    op.create_table(
        "webmail_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("result", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("remote_mta", sa.String(length=253), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webmail_deliveries")),
    )
    with op.batch_alter_table("webmail_deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webmail_deliveries_queue_id"), ["queue_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webmail_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webmail_deliveries_queue_id"))
    op.drop_table("webmail_deliveries")
    with op.batch_alter_table("webmail_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webmail_outbox_release_at"))
        batch_op.drop_index("ix_webmail_outbox_mailbox_message_id")
    op.drop_table("webmail_outbox")
