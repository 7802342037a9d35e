"""domain dns status (scheduled re-checks)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 23:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domain_dns_status",
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=4), nullable=True),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_domain_dns_status_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("domain_id", name=op.f("pk_domain_dns_status")),
    )
    with op.batch_alter_table("domain_dns_status", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_domain_dns_status_next_check_at"), ["next_check_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("domain_dns_status", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_domain_dns_status_next_check_at"))
    op.drop_table("domain_dns_status")
