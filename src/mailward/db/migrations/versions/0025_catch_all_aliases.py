"""catch-all per domain (domain_catch_alls) and domain aliases (domain_aliases)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domain_catch_alls",
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domains.id"],
            name=op.f("fk_domain_catch_alls_domain_id_domains"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["address_id"], ["addresses.id"],
            name=op.f("fk_domain_catch_alls_address_id_addresses"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("domain_id", name=op.f("pk_domain_catch_alls")),
        sa.UniqueConstraint("address_id", name=op.f("uq_domain_catch_alls_address_id")),
    )
    op.create_table(
        "domain_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=253), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_by", sa.String(length=16), nullable=True),
        sa.Column("verification_token", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domains.id"],
            name=op.f("fk_domain_aliases_domain_id_domains"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_domain_aliases")),
        sa.UniqueConstraint("alias", name=op.f("uq_domain_aliases_alias")),
    )
    with op.batch_alter_table("domain_aliases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_domain_aliases_domain_id"), ["domain_id"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("domain_aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_domain_aliases_domain_id"))
    op.drop_table("domain_aliases")
    op.drop_table("domain_catch_alls")
