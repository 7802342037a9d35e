"""filter policies: what an infected message does for a domain or address (virus_action:
reject at DATA or quarantine; NULL inherits, the default being reject)

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("filter_policies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("virus_action", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("filter_policies", schema=None) as batch_op:
        batch_op.drop_column("virus_action")
