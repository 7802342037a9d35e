"""Mailbox storage: one interface (:class:`MailStore`), one package per backend.

``open_store(data_dir)`` returns the default backend, Maildir under ``data_dir/mail``.
"""

from __future__ import annotations

from pathlib import Path

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
    "QuotaExceeded",
    "StoreError",
    "Stored",
    "open_store",
]


def open_store(data_dir: Path) -> MailStore:
    """The configured mail store: Maildir under ``data_dir / "mail"``."""
    return MaildirStore(Path(data_dir) / "mail")
