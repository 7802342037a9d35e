"""Alembic environment: uses the connection handed over by ``mailward.db.migrate``."""

from alembic import context

from mailward.db.models import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via mailward.db.migrate
    raise RuntimeError("run migrations through `mailward init` / mailward.db.migrate")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
