"""RFC 7162 mod-sequences of the PostgreSQL store: store_folders.highestmodseq and
.vanished, store_messages.modseq

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "store_folders",
        sa.Column("highestmodseq", sa.BigInteger(), nullable=False, server_default="1"),
    )
    op.add_column("store_folders", sa.Column("vanished", sa.Text(), nullable=True))
    op.add_column(
        "store_messages",
        sa.Column("modseq", sa.BigInteger(), nullable=False, server_default="1"),
    )


def downgrade() -> None:
    op.drop_column("store_messages", "modseq")
    op.drop_column("store_folders", "vanished")
    op.drop_column("store_folders", "highestmodseq")
