"""Mailbox storage: one interface (:class:`MailStore`), one package per backend.

``open_store(settings, db)`` returns the configured backend: Maildir under
``data_dir/mail`` (default, one hosting node) or PostgreSQL (``store_backend =
"postgresql"``: metadata and message blobs in the shared database, for several nodes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailward.store.interface import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    INBOX,
    RECENT,
    SEEN,
    SEPARATOR,
    SYSTEM_FLAGS,
    FolderExists,
    FolderHasChildren,
    FolderStatus,
    InvalidFlag,
    InvalidFolderName,
    InvalidMailbox,
    MailStore,
    MessageInfo,
    NoSuchFolder,
    NoSuchMessage,
    QuotaExceeded,
    Stored,
    StoreError,
)
from mailward.store.maildir import MaildirStore
from mailward.store.postgres import PostgresStore

if TYPE_CHECKING:
    from mailward.config import Settings
    from mailward.db import Database

__all__ = [
    "ANSWERED",
    "DELETED",
    "DRAFT",
    "FLAGGED",
    "INBOX",
    "RECENT",
    "SEEN",
    "SEPARATOR",
    "SYSTEM_FLAGS",
    "FolderExists",
    "FolderHasChildren",
    "FolderStatus",
    "InvalidFlag",
    "InvalidFolderName",
    "InvalidMailbox",
    "MailStore",
    "MaildirStore",
    "MessageInfo",
    "NoSuchFolder",
    "NoSuchMessage",
    "PostgresStore",
    "QuotaExceeded",
    "StoreError",
    "Stored",
    "open_store",
]


def open_store(settings: Settings, db: Database) -> MailStore:
    """The configured mail store."""
    if settings.store_backend == "postgresql":
        return PostgresStore(db)
    return MaildirStore(settings.data_dir / "mail")
