"""per-user learning: each address's corrections per kind of sender
(filter_personal_senders)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "filter_personal_senders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=330), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("spam_count", sa.Integer(), nullable=False),
        sa.Column("ham_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name=op.f("fk_filter_personal_senders_account_id_accounts"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domains.id"],
            name=op.f("fk_filter_personal_senders_domain_id_domains"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["address_id"], ["addresses.id"],
            name=op.f("fk_filter_personal_senders_address_id_addresses"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filter_personal_senders")),
        sa.UniqueConstraint("address_id", "key",
                            name=op.f("uq_filter_personal_senders_address_id_key")),
    )
    with op.batch_alter_table("filter_personal_senders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_filter_personal_senders_account_id"),
                              ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_filter_personal_senders_domain_id"),
                              ["domain_id"], unique=False)
        batch_op.create_index("ix_filter_personal_senders_updated_at", ["updated_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("filter_personal_senders", schema=None) as batch_op:
        batch_op.drop_index("ix_filter_personal_senders_updated_at")
        batch_op.drop_index(batch_op.f("ix_filter_personal_senders_domain_id"))
        batch_op.drop_index(batch_op.f("ix_filter_personal_senders_account_id"))
    op.drop_table("filter_personal_senders")
