"""A POP3 maildrop: the INBOX snapshot taken at login, its deletions and its lock.

:class:`MaildropLocks` keeps two POP3 sessions served by this process from sharing one
mailbox; :mod:`mailward.pop3.shared_locks` extends it across processes (the worker
processes of a node, the nodes sharing the PostgreSQL store).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailward.store import DELETED, INBOX, MailStore, batch


class MaildropLocks:
    """Which mailboxes have a POP3 session in the TRANSACTION state (this process only)."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    async def acquire(self, mailbox: str) -> bool:
        """Take the lock; ``False`` if another session holds it."""
        if mailbox in self._held:
            return False
        self._held.add(mailbox)
        return True

    async def release(self, mailbox: str) -> None:
        self._held.discard(mailbox)

    def held(self, mailbox: str) -> bool:
        return mailbox in self._held

    async def aclose(self) -> None:
        """Let go of whatever the locks keep between sessions (here: nothing)."""


DEFAULT_LOCKS = MaildropLocks()


@dataclass(slots=True)
class Entry:
    uid: int
    size: int
    deleted: bool = False


class Maildrop:
    """Messages numbered 1..n as of login; deletions apply only at :meth:`commit`."""

    def __init__(
        self, store: MailStore, mailbox: str, uidvalidity: int, entries: list[Entry]
    ) -> None:
        self.store = store
        self.mailbox = mailbox
        self.uidvalidity = uidvalidity
        self.entries = entries

    @classmethod
    async def open(cls, store: MailStore, mailbox: str) -> Maildrop:
        status = await store.folder_status(mailbox, INBOX)
        infos = await store.messages(mailbox, INBOX)
        entries = [Entry(i.uid, i.size) for i in infos]
        return cls(store, mailbox, status.uidvalidity, entries)

    def get(self, number: int) -> Entry | None:
        """The live (not deleted) message ``number`` (1-based), else ``None``."""
        if 1 <= number <= len(self.entries):
            entry = self.entries[number - 1]
            if not entry.deleted:
                return entry
        return None

    def live(self) -> list[tuple[int, Entry]]:
        return [(n, e) for n, e in enumerate(self.entries, 1) if not e.deleted]

    def stat(self) -> tuple[int, int]:
        live = self.live()
        return len(live), sum(e.size for _, e in live)

    def uidl(self, entry: Entry) -> str:
        """A unique-id stable across sessions while the folder's UIDVALIDITY holds."""
        return f"{self.uidvalidity}.{entry.uid}"

    async def fetch(self, entry: Entry) -> bytes:
        return await self.store.fetch(self.mailbox, INBOX, entry.uid)

    def reset(self) -> None:
        for entry in self.entries:
            entry.deleted = False

    async def commit(self) -> int:
        """Flag the deleted messages ``\\Deleted`` and expunge exactly those.

        Messages already gone (expunged by another client) are skipped. Returns the
        number of messages removed.
        """
        deleted = {e.uid for e in self.entries if e.deleted}
        if not deleted:
            return 0
        # Current flags, so changes made meanwhile (e.g. over IMAP) are not reverted.
        current = {i.uid: i.flags for i in await self.store.messages(self.mailbox, INBOX)}
        stored = await batch.set_flags_many(
            self.store, self.mailbox, INBOX,
            {uid: current[uid] | {DELETED} for uid in sorted(deleted & current.keys())})
        if not stored:
            return 0
        return len(await self.store.expunge(self.mailbox, INBOX, sorted(stored)))
