"""filter policies: what bulk mail gets for a domain or address (bulk_action: deliver, tag
or junk; bulk_score: from which score on; NULL inherits the config)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("filter_policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bulk_action", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("bulk_score", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("filter_policies", schema=None) as batch_op:
        batch_op.drop_column("bulk_score")
        batch_op.drop_column("bulk_action")
