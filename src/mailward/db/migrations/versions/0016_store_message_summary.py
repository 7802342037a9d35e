"""store messages keep their ENVELOPE/BODYSTRUCTURE summary

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 06:00:00

Existing messages get NULL: their summary is made from the bytes on first listing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("store_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("summary", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("store_messages", schema=None) as batch_op:
        batch_op.drop_column("summary")
