"""spam filter policies, sender lists, learning, quarantine

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 01:44:23
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "quarantine_digests",
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("next_digest_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("recipient", name=op.f("pk_quarantine_digests")),
    )
    with op.batch_alter_table("quarantine_digests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantine_digests_next_digest_at"), ["next_digest_at"], unique=False
        )

    op.create_table(
        "quarantine_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("from_header", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine_messages")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("quarantine_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantine_messages_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "filter_domain_models",
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=False),
        sa.Column("spam_count", sa.Integer(), nullable=False),
        sa.Column("ham_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_filter_domain_models_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_filter_domain_models_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("domain_id", name=op.f("pk_filter_domain_models")),
    )
    with op.batch_alter_table("filter_domain_models", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_filter_domain_models_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "quarantine_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=254), nullable=True),
        sa.Column("digest_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_quarantine_entries_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_quarantine_entries_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["quarantine_messages.id"],
            name=op.f("fk_quarantine_entries_message_id_quarantine_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine_entries")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("quarantine_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_quarantine_entries_account_at", ["account_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_quarantine_entries_domain_id"), ["domain_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_quarantine_entries_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(
            "ix_quarantine_entries_recipient", ["recipient", "status"], unique=False
        )

    op.create_table(
        "filter_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=True),
        sa.Column("tag_score", sa.Float(), nullable=True),
        sa.Column("quarantine_score", sa.Float(), nullable=True),
        sa.Column("reject_score", sa.Float(), nullable=True),
        sa.Column("subject_tag", sa.String(length=40), nullable=True),
        sa.Column("dmarc_reject", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_filter_policies_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["address_id"],
            ["addresses.id"],
            name=op.f("fk_filter_policies_address_id_addresses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_filter_policies_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filter_policies")),
        sa.UniqueConstraint("address_id", name=op.f("uq_filter_policies_address_id")),
    )
    with op.batch_alter_table("filter_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_filter_policies_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            "uq_filter_policies_domain_wide",
            ["domain_id"],
            unique=True,
            sqlite_where=sa.text("address_id IS NULL"),
            postgresql_where=sa.text("address_id IS NULL"),
        )

    op.create_table(
        "filter_sender_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('allow', 'block')", name=op.f("ck_filter_sender_rules_action")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_filter_sender_rules_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["address_id"],
            ["addresses.id"],
            name=op.f("fk_filter_sender_rules_address_id_addresses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_filter_sender_rules_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_filter_sender_rules")),
        sa.UniqueConstraint(
            "address_id", "sender", name=op.f("uq_filter_sender_rules_address_id_sender")
        ),
    )
    with op.batch_alter_table("filter_sender_rules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_filter_sender_rules_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            "uq_filter_sender_rules_domain_wide",
            ["domain_id", "sender"],
            unique=True,
            sqlite_where=sa.text("address_id IS NULL"),
            postgresql_where=sa.text("address_id IS NULL"),
        )


def downgrade() -> None:

    with op.batch_alter_table("filter_sender_rules", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_filter_sender_rules_domain_wide",
            sqlite_where=sa.text("address_id IS NULL"),
            postgresql_where=sa.text("address_id IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_filter_sender_rules_account_id"))

    op.drop_table("filter_sender_rules")
    with op.batch_alter_table("filter_policies", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_filter_policies_domain_wide",
            sqlite_where=sa.text("address_id IS NULL"),
            postgresql_where=sa.text("address_id IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_filter_policies_account_id"))

    op.drop_table("filter_policies")
    with op.batch_alter_table("quarantine_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_entries_recipient")
        batch_op.drop_index(batch_op.f("ix_quarantine_entries_message_id"))
        batch_op.drop_index(batch_op.f("ix_quarantine_entries_domain_id"))
        batch_op.drop_index("ix_quarantine_entries_account_at")

    op.drop_table("quarantine_entries")
    with op.batch_alter_table("filter_domain_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_filter_domain_models_account_id"))

    op.drop_table("filter_domain_models")
    with op.batch_alter_table("quarantine_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_messages_expires_at"))

    op.drop_table("quarantine_messages")
    with op.batch_alter_table("quarantine_digests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_digests_next_digest_at"))

    op.drop_table("quarantine_digests")
