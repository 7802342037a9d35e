"""sieve: each mailbox's Sieve scripts (one active) and the vacation replies sent

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-08 09:00:00

Both tables are keyed by the mailbox's address, a foreign key to ``addresses.email``: the
rows go with the address.
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sieve_scripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["mailbox"], ["addresses.email"],
                                name=op.f("fk_sieve_scripts_mailbox_addresses"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sieve_scripts")),
        sa.UniqueConstraint("mailbox", "name", name=op.f("uq_sieve_scripts_mailbox_name")),
    )
    op.create_table(
        "sieve_vacation_sent",
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("handle", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["mailbox"], ["addresses.email"],
                                name=op.f("fk_sieve_vacation_sent_mailbox_addresses"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mailbox", "sender", "handle",
                                name=op.f("pk_sieve_vacation_sent")),
    )


def downgrade() -> None:
    op.drop_table("sieve_vacation_sent")
    op.drop_table("sieve_scripts")
