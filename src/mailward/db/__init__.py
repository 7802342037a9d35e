"""Database layer: models, engine/session factory, Alembic migrations."""

from mailward.db.engine import Database
from mailward.db.models import (
    Account,
    Address,
    AddressKind,
    AddressList,
    ApiToken,
    Base,
    Domain,
    MailServer,
    QueuedMessage,
    QueuedRecipient,
    QueueStatus,
    Role,
    User,
)

__all__ = [
    "Account",
    "Address",
    "AddressKind",
    "AddressList",
    "ApiToken",
    "Base",
    "Database",
    "Domain",
    "MailServer",
    "QueueStatus",
    "QueuedMessage",
    "QueuedRecipient",
    "Role",
    "User",
]
