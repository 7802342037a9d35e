"""Domains are verified (DNS TXT token, MX, or an operator) before they route

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 03:00:00

Existing domains start unverified, each with a fresh token: the scheduled DNS re-check
verifies those whose MX records already name the filtering hosts.
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("verified_by", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("verification_token", sa.String(length=64), nullable=True))
    domains = sa.table("domains", sa.column("id", sa.Integer),
                       sa.column("verification_token", sa.String))
    bind = op.get_bind()
    for (domain_id,) in bind.execute(sa.select(domains.c.id)).all():
        bind.execute(domains.update().where(domains.c.id == domain_id)
                     .values(verification_token=secrets.token_hex(16)))
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.alter_column("verification_token", existing_type=sa.String(length=64),
                              nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("domains", schema=None) as batch_op:
        batch_op.drop_column("verification_token")
        batch_op.drop_column("verified_by")
        batch_op.drop_column("verified_at")
