"""login failures in the database, so a brute-force lock holds on every node

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("attempt", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index("ix_login_failures_key_at", ["key", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_failures_expires"), ["expires"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_failures_attempt"), ["attempt"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_failures_attempt"))
        batch_op.drop_index(batch_op.f("ix_login_failures_expires"))
        batch_op.drop_index("ix_login_failures_key_at")
    op.drop_table("login_failures")
