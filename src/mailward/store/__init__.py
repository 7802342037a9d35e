"""Mailbox storage: one interface (:class:`MailStore`), one package per backend.

``open_store(settings, db)`` returns the configured backend: Maildir under
``data_dir/mail`` (default, one hosting node) or PostgreSQL (``store_backend =
"postgresql"``: metadata and message blobs in the shared database, for several nodes).
With ``events`` (see :mod:`mailward.store.events` and ``open_events``) every change
made through the store is announced to IMAP sessions waiting on that mailbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailward.store.events import (
    MailboxEvents,
    NotifyingStore,
    PostgresMailboxEvents,
    open_events,
)
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
    BatchedStore,
    FolderExists,
    FolderHasChildren,
    FolderStatus,
    InvalidFlag,
    InvalidFolderName,
    InvalidMailbox,
    MailStore,
    MessageInfo,
    ModseqStore,
    NoSuchFolder,
    NoSuchMessage,
    QuotaExceeded,
    Stored,
    StoreError,
    Summary,
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
    "BatchedStore",
    "FolderExists",
    "FolderHasChildren",
    "FolderStatus",
    "InvalidFlag",
    "InvalidFolderName",
    "InvalidMailbox",
    "MailStore",
    "MailboxEvents",
    "MaildirStore",
    "MessageInfo",
    "ModseqStore",
    "NoSuchFolder",
    "NoSuchMessage",
    "NotifyingStore",
    "PostgresMailboxEvents",
    "PostgresStore",
    "QuotaExceeded",
    "StoreError",
    "Stored",
    "Summary",
    "open_events",
    "open_store",
]


def open_store(settings: Settings, db: Database, events: MailboxEvents | None = None) -> MailStore:
    """The configured mail store; wrapped to announce its changes to ``events`` if given."""
    store: MailStore
    if settings.store_backend == "postgresql":
        store = PostgresStore(db)
    else:
        store = MaildirStore(settings.data_dir / "mail")
    return store if events is None else NotifyingStore(store, events)
