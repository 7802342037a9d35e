"""webmail mail search: the search index and its per-folder catch-up state

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 08:30:00

PostgreSQL keeps each message's words in a tsvector column (GIN index); SQLite in an FTS5
table ``mail_search_fts`` whose rowid is ``mail_search_docs.id``. Existing mail is
indexed when a search first looks at its folder (mailward.store.search_index).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

FTS = ("CREATE VIRTUAL TABLE mail_search_fts USING fts5("
       "box, sender, recipients, subject, body, "
       "tokenize='unicode61 remove_diacritics 2', prefix='2 3')")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "mail_search_docs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("folder", sa.String(length=1024), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tsv", sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"),
                  nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_search_docs")),
        sa.UniqueConstraint("mailbox", "folder", "uidvalidity", "uid",
                            name=op.f("uq_mail_search_docs_mailbox_folder_uidvalidity_uid")),
    )
    op.create_table(
        "mail_search_folders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("folder", sa.String(length=1024), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uidnext", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_search_folders")),
        sa.UniqueConstraint("mailbox", "folder",
                            name=op.f("uq_mail_search_folders_mailbox_folder")),
    )
    # GIN on PostgreSQL; on SQLite a plain index over a column left NULL (the models
    # declare one index for both), the words go to the FTS5 table instead.
    op.create_index("ix_mail_search_docs_tsv", "mail_search_docs", ["tsv"],
                    postgresql_using="gin")
    op.create_index("ix_mail_search_docs_mailbox_received", "mail_search_docs",
                    ["mailbox", "received"])
    if sqlite:
        op.execute(FTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE mail_search_fts")
    op.drop_index("ix_mail_search_docs_mailbox_received", table_name="mail_search_docs")
    op.drop_index("ix_mail_search_docs_tsv", table_name="mail_search_docs")
    op.drop_table("mail_search_folders")
    op.drop_table("mail_search_docs")
