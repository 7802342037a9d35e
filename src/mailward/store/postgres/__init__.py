"""PostgreSQL backend of the mail store: several hosting nodes serve the same mailboxes."""

from mailward.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
