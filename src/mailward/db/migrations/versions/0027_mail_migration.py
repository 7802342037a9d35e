"""mail migration from an old IMAP server: jobs (encrypted credentials, lease, counts) and
per-folder progress (migration_jobs, migration_folders)

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migration_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("mailbox", sa.String(length=320), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("tls", sa.String(length=8), nullable=False),
        sa.Column("login", sa.String(length=320), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("current_folder", sa.String(length=1000), nullable=True),
        sa.Column("folders_total", sa.Integer(), nullable=False),
        sa.Column("folders_done", sa.Integer(), nullable=False),
        sa.Column("messages_total", sa.Integer(), nullable=False),
        sa.Column("messages_copied", sa.Integer(), nullable=False),
        sa.Column("messages_skipped", sa.Integer(), nullable=False),
        sa.Column("bytes_copied", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name=op.f("fk_migration_jobs_account_id_accounts"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["mailbox"], ["addresses.email"],
            name=op.f("fk_migration_jobs_mailbox_addresses"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_jobs")),
    )
    with op.batch_alter_table("migration_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_migration_jobs_account_id"), ["account_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_migration_jobs_mailbox"), ["mailbox"],
                              unique=False)
        batch_op.create_index("ix_migration_jobs_status_next_run_at",
                              ["status", "next_run_at"], unique=False)
    op.create_table(
        "migration_folders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("target", sa.String(length=1000), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("copied", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["migration_jobs.id"],
            name=op.f("fk_migration_folders_job_id_migration_jobs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_folders")),
        sa.UniqueConstraint("job_id", "source", name=op.f("uq_migration_folders_job_id_source")),
    )


def downgrade() -> None:
    op.drop_table("migration_folders")
    with op.batch_alter_table("migration_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_migration_jobs_status_next_run_at")
        batch_op.drop_index(batch_op.f("ix_migration_jobs_mailbox"))
        batch_op.drop_index(batch_op.f("ix_migration_jobs_account_id"))
    op.drop_table("migration_jobs")
