"""resellers: they own a set of accounts; reseller users manage them

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 23:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ROLE_ACCOUNT = (
    "(role = 'operator' AND account_id IS NULL AND reseller_id IS NULL) OR "
    "(role = 'reseller' AND account_id IS NULL AND reseller_id IS NOT NULL) OR "
    "(role = 'account-admin' AND account_id IS NOT NULL AND reseller_id IS NULL)"
)
OLD_ROLE_ACCOUNT = (
    "(role = 'operator' AND account_id IS NULL) OR "
    "(role <> 'operator' AND account_id IS NOT NULL)"
)


def upgrade() -> None:
    op.create_table(
        "resellers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resellers")),
        sa.UniqueConstraint("name", name=op.f("uq_resellers_name")),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reseller_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f("fk_accounts_reseller_id_resellers"), "resellers",
                                    ["reseller_id"], ["id"], ondelete="SET NULL")
        batch_op.create_index(op.f("ix_accounts_reseller_id"), ["reseller_id"], unique=False)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reseller_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(op.f("fk_users_reseller_id_resellers"), "resellers",
                                    ["reseller_id"], ["id"], ondelete="CASCADE")
        batch_op.create_index(op.f("ix_users_reseller_id"), ["reseller_id"], unique=False)
        batch_op.drop_constraint(op.f("ck_users_role_account"), type_="check")
        batch_op.drop_constraint(op.f("ck_users_user_role"), type_="check")
        batch_op.create_check_constraint(op.f("ck_users_role_account"), ROLE_ACCOUNT)
        batch_op.create_check_constraint(
            op.f("ck_users_user_role"), "role IN ('operator', 'account-admin', 'reseller')")


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_user_role"), type_="check")
        batch_op.drop_constraint(op.f("ck_users_role_account"), type_="check")
        batch_op.create_check_constraint(op.f("ck_users_user_role"),
                                         "role IN ('operator', 'account-admin')")
        batch_op.create_check_constraint(op.f("ck_users_role_account"), OLD_ROLE_ACCOUNT)
        batch_op.drop_index(batch_op.f("ix_users_reseller_id"))
        batch_op.drop_constraint(op.f("fk_users_reseller_id_resellers"), type_="foreignkey")
        batch_op.drop_column("reseller_id")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_reseller_id"))
        batch_op.drop_constraint(op.f("fk_accounts_reseller_id_resellers"), type_="foreignkey")
        batch_op.drop_column("reseller_id")
    op.drop_table("resellers")
