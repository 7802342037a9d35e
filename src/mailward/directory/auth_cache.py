"""A per-process cache of mailbox passwords that verified, so reconnecting mail clients
(POP3, IMAP, submission) do not pay Argon2id on every login.

What is kept per login is the stored hash string it verified against and an HMAC-SHA256
of the password under a random key made when the process starts (the password itself
is never kept). A lookup passes the login's *current* stored hash, read from the database
each time: a password changed anywhere (another worker process, another node) changes
that string, so an old entry cannot match and is dropped. Lock and hosting state are not
cached at all; :class:`~mailward.directory.mail_login.MailLogin` checks them before it
asks here. Only successful verifications are remembered: a miss (a wrong password) still
costs the full Argon2id check and counts as a failed login.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from mailward.config import Settings

__all__ = ["AuthCache"]


@dataclass(frozen=True, slots=True)
class _Entry:
    stored_hash: str
    digest: bytes
    expires: float


class AuthCache:
    """Logins whose password verified recently: at most ``max_entries`` (least recently
    used go first), each for ``ttl_seconds`` after it verified (a hit does not extend it).
    A ``ttl_seconds`` or ``max_entries`` of 0 turns it off. Used from one event loop."""

    def __init__(self, ttl_seconds: float, max_entries: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_seconds < 0 or max_entries < 0:
            raise ValueError("ttl_seconds and max_entries must be >= 0")
        self.ttl = float(ttl_seconds)
        self.max_entries = max_entries
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    @classmethod
    def of(cls, settings: Settings) -> AuthCache:
        return cls(settings.mail_auth_cache_seconds, settings.mail_auth_cache_entries)

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    def hit(self, login: str, stored_hash: str, password: str) -> bool:
        """Whether ``password`` verified for ``login`` against this same ``stored_hash``
        within the TTL. An expired entry, or one for another stored hash, is dropped."""
        entry = self._entries.get(login)
        if entry is None:
            return False
        if entry.expires <= self.clock() or entry.stored_hash != stored_hash:
            del self._entries[login]  # the password changed (the hash is not secret)
            return False
        if not hmac.compare_digest(entry.digest, self._digest(login, stored_hash, password)):
            return False  # another password: the caller verifies it the slow way
        self._entries.move_to_end(login)
        return True

    def remember(self, login: str, stored_hash: str, password: str) -> None:
        """Note that ``password`` verified for ``login`` against ``stored_hash``."""
        if not self.enabled:
            return
        self._entries[login] = _Entry(stored_hash, self._digest(login, stored_hash, password),
                                      self.clock() + self.ttl)
        self._entries.move_to_end(login)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, login: str) -> None:
        """Drop ``login``'s entry (e.g. it is locked after failed logins)."""
        self._entries.pop(login, None)

    def clear(self) -> None:
        self._entries.clear()

    def _digest(self, login: str, stored_hash: str, password: str) -> bytes:
        message = b"\0".join(part.encode("utf-8", "surrogatepass")
                             for part in (login, stored_hash, password))
        return hmac.new(self._key, message, hashlib.sha256).digest()
