"""webmail: address book (contacts, their addresses, groups), sender identities, settings,
and the two-factor login of mailboxes

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 09:00:00

Every table is keyed by the mailbox's address, a foreign key to ``addresses.email``: the
rows go with the address.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def _mailbox(table: str, *, primary: bool = False) -> list[Any]:
    """The ``mailbox`` column and its foreign key to the address (cascading)."""
    return [
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.ForeignKeyConstraint(["mailbox"], ["addresses.email"],
                                name=op.f(f"fk_{table}_mailbox_addresses"), ondelete="CASCADE"),
        *([sa.PrimaryKeyConstraint("mailbox", name=op.f(f"pk_{table}"))] if primary else []),
    ]


def upgrade() -> None:
    op.create_table(
        "webmail_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        *_mailbox("webmail_contacts"),
        sa.Column("uid", sa.String(length=255), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("phones", sa.Text(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webmail_contacts")),
        sa.UniqueConstraint("mailbox", "uid", name=op.f("uq_webmail_contacts_mailbox_uid")),
    )
    with op.batch_alter_table("webmail_contacts", schema=None) as batch_op:
        batch_op.create_index("ix_webmail_contacts_mailbox_name_key", ["mailbox", "name_key"],
                              unique=False)

    op.create_table(
        "webmail_contact_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["webmail_contacts.id"],
            name=op.f("fk_webmail_contact_emails_contact_id_webmail_contacts"),
            ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webmail_contact_emails")),
        sa.UniqueConstraint("contact_id", "email",
                            name=op.f("uq_webmail_contact_emails_contact_id_email")),
    )
    with op.batch_alter_table("webmail_contact_emails", schema=None) as batch_op:
        batch_op.create_index("ix_webmail_contact_emails_mailbox_email", ["mailbox", "email"],
                              unique=False)

    op.create_table(
        "webmail_contact_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        *_mailbox("webmail_contact_groups"),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_key", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webmail_contact_groups")),
        sa.UniqueConstraint("mailbox", "name_key",
                            name=op.f("uq_webmail_contact_groups_mailbox_name_key")),
    )

    op.create_table(
        "webmail_contact_group_members",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["webmail_contacts.id"],
            name=op.f("fk_webmail_contact_group_members_contact_id_webmail_contacts"),
            ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["group_id"], ["webmail_contact_groups.id"],
            name=op.f("fk_webmail_contact_group_members_group_id_webmail_contact_groups"),
            ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "contact_id",
                                name=op.f("pk_webmail_contact_group_members")),
    )
    with op.batch_alter_table("webmail_contact_group_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webmail_contact_group_members_contact_id"),
                              ["contact_id"], unique=False)

    op.create_table(
        "webmail_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        *_mailbox("webmail_identities"),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("reply_to", sa.String(length=320), nullable=True),
        sa.Column("signature_text", sa.Text(), nullable=False),
        sa.Column("signature_html", sa.Text(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webmail_identities")),
    )
    with op.batch_alter_table("webmail_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webmail_identities_mailbox"), ["mailbox"],
                              unique=False)

    op.create_table(
        "webmail_prefs",
        *_mailbox("webmail_prefs", primary=True),
        sa.Column("prefs", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )

    op.create_table(
        "mailbox_two_factor",
        *_mailbox("mailbox_two_factor", primary=True),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mailbox_two_factor")
    op.drop_table("webmail_prefs")
    with op.batch_alter_table("webmail_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webmail_identities_mailbox"))
    op.drop_table("webmail_identities")
    with op.batch_alter_table("webmail_contact_group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webmail_contact_group_members_contact_id"))
    op.drop_table("webmail_contact_group_members")
    op.drop_table("webmail_contact_groups")
    with op.batch_alter_table("webmail_contact_emails", schema=None) as batch_op:
        batch_op.drop_index("ix_webmail_contact_emails_mailbox_email")
    op.drop_table("webmail_contact_emails")
    with op.batch_alter_table("webmail_contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_webmail_contacts_mailbox_name_key")
    op.drop_table("webmail_contacts")
