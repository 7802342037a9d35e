"""The mailbox storage interface every backend implements, with its values and errors.

A *mailbox* is one user's mail, named by its full lower-case address
(``"ann@example.com"``). It holds *folders* named with ``"/"`` as the hierarchy
separator; ``"INBOX"`` (any case) always exists and cannot be deleted or renamed.
Messages in a folder carry IMAP UIDs that strictly increase and are never reused while
the folder's UIDVALIDITY stays the same.

Flags are IMAP flags: the system flags in :data:`SYSTEM_FLAGS` (matched case-
insensitively, returned in the canonical spelling) and keywords (IMAP atoms such as
``"$Junk"``). ``\\Recent`` is session state, not stored: passing it raises
:class:`InvalidFlag`.

Quota: ``quota_bytes=None`` means unlimited; ``0`` means no space at all (every
delivery is refused); otherwise a message is refused when ``usage + size > quota``.

Subscriptions (IMAP SUBSCRIBE/LSUB) are a per-mailbox set of folder names, validated and
normalised like folder names; the folders need not exist.

Operations that name UIDs in bulk (``expunge``, ``copy``, ``move``) skip UIDs that do
not exist, as the IMAP UID commands do; single-message operations (``fetch``,
``set_flags``) raise :class:`NoSuchMessage`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

INBOX = "INBOX"
SEPARATOR = "/"

SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
RECENT = "\\Recent"
SYSTEM_FLAGS: frozenset[str] = frozenset({SEEN, ANSWERED, FLAGGED, DELETED, DRAFT})


class StoreError(Exception):
    """Base class of store errors; ``str(error)`` is a one-line reason fit for a user."""


class InvalidMailbox(StoreError):
    """The mailbox name is not a plain lower-case address the store can hold."""


class InvalidFolderName(StoreError):
    """The folder name is malformed, or the operation is not allowed on it (INBOX)."""


class InvalidFlag(StoreError):
    """A flag is not a storable system flag or a valid keyword, or too many keywords."""


class NoSuchFolder(StoreError):
    """The folder does not exist."""


class FolderExists(StoreError):
    """A folder with the target name already exists."""


class FolderHasChildren(StoreError):
    """The folder has inferior folders, so it cannot be deleted."""


class NoSuchMessage(StoreError):
    """No message with that UID exists in the folder."""


class QuotaExceeded(StoreError):
    """Storing the message would exceed the mailbox quota; nothing was stored."""

    def __init__(self, mailbox: str, usage: int, size: int, quota: int) -> None:
        super().__init__(
            f"mailbox {mailbox} is over quota: {usage} bytes used + {size} bytes "
            f"> {quota} bytes allowed"
        )
        self.mailbox = mailbox
        self.usage = usage
        self.size = size
        self.quota = quota


@dataclass(frozen=True, slots=True)
class Stored:
    """Where a delivered message landed."""

    folder: str
    uid: int
    size: int
    uidvalidity: int


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """A folder's name and IMAP counters."""

    name: str
    uidvalidity: int
    uidnext: int
    exists: int
    unseen: int
    #: RFC 7162: the highest mod-sequence of the folder (1 while nothing changed).
    highestmodseq: int = 1


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """One message's metadata; ``internal_date`` is timezone-aware."""

    uid: int
    size: int
    flags: frozenset[str]
    internal_date: datetime
    #: RFC 7162: the mod-sequence of the message's last change (its delivery at first).
    modseq: int = 1


@dataclass(frozen=True, slots=True)
class Summary:
    """What an IMAP listing needs of a message besides its metadata, kept from delivery on
    (as Dovecot's index cache): its ENVELOPE, BODYSTRUCTURE and BODY values (RFC 3501
    §7.4.2 syntax, without the item name), and its References field for threading."""

    envelope: bytes
    bodystructure: bytes
    body: bytes
    references: bytes = b""


@runtime_checkable
class MailStore(Protocol):
    """Mailbox storage: folders, messages, flags, UIDs and quota usage.

    Every method may raise :class:`InvalidMailbox` for a malformed mailbox and
    :class:`InvalidFolderName` for a malformed folder name. A mailbox's storage is
    created on first use.
    """

    async def deliver(
        self,
        mailbox: str,
        data: bytes,
        *,
        folder: str = INBOX,
        flags: frozenset[str] = frozenset(),
        quota_bytes: int | None = None,
        internal_date: datetime | None = None,
    ) -> Stored:
        """Store ``data`` durably in ``folder``; raise ``QuotaExceeded``/``NoSuchFolder``.

        A naive ``internal_date`` is taken as UTC; the default is now.
        """
        ...

    async def usage(self, mailbox: str) -> int:
        """Bytes used by all messages in all folders of the mailbox."""
        ...

    async def folders(self, mailbox: str) -> list[FolderStatus]:
        """All folders, INBOX first, then by name."""
        ...

    async def folder_status(self, mailbox: str, folder: str) -> FolderStatus:
        """One folder's counters; ``NoSuchFolder`` if it does not exist."""
        ...

    async def create_folder(self, mailbox: str, folder: str) -> None:
        """Create ``folder`` and any missing superiors; ``FolderExists`` if present."""
        ...

    async def delete_folder(self, mailbox: str, folder: str) -> None:
        """Delete a folder and its messages; refuses INBOX and folders with children.

        Its subscription, if any, stays (RFC 3501 §6.3.4).
        """
        ...

    async def rename_folder(self, mailbox: str, folder: str, new_name: str) -> None:
        """Rename a folder with its inferiors (UIDs kept, new UIDVALIDITY).

        Subscriptions of the folder and its inferiors move to the new names.
        """
        ...

    async def subscriptions(self, mailbox: str) -> list[str]:
        """The subscribed folder names, sorted, INBOX first if subscribed."""
        ...

    async def subscribe(self, mailbox: str, folder: str) -> None:
        """Subscribe ``folder`` (it need not exist); no error if already subscribed."""
        ...

    async def unsubscribe(self, mailbox: str, folder: str) -> None:
        """Unsubscribe ``folder``; no error if it is not subscribed."""
        ...

    async def messages(self, mailbox: str, folder: str) -> list[MessageInfo]:
        """The folder's messages ordered by UID."""
        ...

    async def fetch(self, mailbox: str, folder: str, uid: int) -> bytes:
        """The message bytes exactly as delivered."""
        ...

    async def fetch_many(self, mailbox: str, folder: str, uids: Iterable[int]) -> dict[int, bytes]:
        """The bytes of several messages at once (UIDs that do not exist are left out)."""
        ...

    async def set_flags(
        self, mailbox: str, folder: str, uid: int, flags: Iterable[str]
    ) -> frozenset[str]:
        """Replace the message's flags; return them as stored (canonical spelling)."""
        ...

    async def expunge(
        self, mailbox: str, folder: str, uids: Iterable[int] | None = None
    ) -> list[int]:
        """Remove ``\\Deleted`` messages (only those among ``uids`` if given).

        Returns the expunged UIDs in ascending order.
        """
        ...

    async def copy(
        self,
        mailbox: str,
        folder: str,
        uids: Iterable[int],
        target_folder: str,
        *,
        quota_bytes: int | None = None,
    ) -> dict[int, int]:
        """Copy messages with their flags and dates; return source UID → new UID."""
        ...

    async def move(
        self, mailbox: str, folder: str, uids: Iterable[int], target_folder: str
    ) -> dict[int, int]:
        """Move messages (no ``\\Deleted`` needed); return source UID → new UID."""
        ...

    async def delete_mailbox(self, mailbox: str) -> None:
        """Remove all storage of the mailbox, subscriptions included (no error if none)."""
        ...


@runtime_checkable
class BatchedStore(Protocol):
    """The calls both backends add to :class:`MailStore` so that a protocol command costs
    one store round trip, not one per message (see :mod:`mailward.store.batch`)."""

    async def summaries(self, mailbox: str, folder: str, uids: Iterable[int]) -> dict[int, Summary]:
        """The summaries of several messages (UIDs that do not exist are left out).

        Kept since delivery; one missing (a message delivered by an older version or
        dropped in by another program) is made from the bytes once and kept.
        """
        ...

    async def set_flags_many(
        self, mailbox: str, folder: str, changes: dict[int, frozenset[str]]
    ) -> dict[int, frozenset[str]]:
        """Replace the flags of several messages at once (``set_flags`` for each); return
        them as stored, leaving out the UIDs that do not exist."""
        ...


@runtime_checkable
class ModseqStore(Protocol):
    """What both backends add for RFC 7162 (see :mod:`mailward.store.modseq`): every
    change moves the folder's ``highestmodseq`` and the changed messages' ``modseq``."""

    async def vanished(self, mailbox: str, folder: str, since: int) -> list[int] | None:
        """The UIDs expunged from the folder after mod-sequence ``since``, ascending;
        ``None`` when the folder no longer remembers that far back."""
        ...

    async def set_flags_unchanged_since(
        self, mailbox: str, folder: str, changes: dict[int, frozenset[str]], modseq: int
    ) -> tuple[dict[int, frozenset[str]], list[int]]:
        """``set_flags_many`` for the messages whose modseq is not above ``modseq``,
        checked atomically with the change (RFC 7162 ``UNCHANGEDSINCE``); returns the
        flags stored and the UIDs left alone because they changed since, ascending."""
        ...
