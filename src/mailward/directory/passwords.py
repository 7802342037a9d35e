"""Password hashing (Argon2id) and the minimum-strength rule for mailbox passwords."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from mailward.config import Settings
from mailward.core.errors import InvalidInput


def fingerprint(password_hash: str | None) -> str:
    """A short digest of a stored password hash: a panel session keeps the one it was
    opened with and ends when the password changes (whoever changed it)."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


class Passwords:
    """Hashes and verifies passwords with the operator's Argon2id parameters.

    Hashing runs in a thread pool (argon2-cffi releases the GIL), so bulk imports use
    every core and the event loop never blocks on it. ``verifications`` counts the
    Argon2id checks this instance ran (what the mail login cache saves).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings  # services built over this one read their settings here
        self.min_length = settings.password_min_length
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self.verifications = 0
        self._count_lock = threading.Lock()  # verify runs in the pool's threads

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="argon2")

    def check_strength(self, password: str, *, address: str | None = None) -> None:
        """Raise ``InvalidInput`` naming the rule a password breaks."""
        if len(password) < self.min_length:
            raise InvalidInput(f"password must be at least {self.min_length} characters")
        if password != password.strip():
            raise InvalidInput("password may not start or end with a space")
        if len(set(password)) < 4:
            raise InvalidInput("password is too simple: use at least 4 different characters")
        if address:
            lowered = password.lower()
            local = address.partition("@")[0]
            if lowered == address or (len(local) >= 4 and local in lowered):
                what = "address" if "@" in address else "login"
                raise InvalidInput(f"password may not contain the {what}")

    def check_new(self, password: str, repeat: str | None, *, address: str | None) -> None:
        if repeat is not None and password != repeat:
            raise InvalidInput("passwords do not match")
        self.check_strength(password, address=address)

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    async def hash_async(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.hash, password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        if not password_hash:
            return False
        with self._count_lock:
            self.verifications += 1
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def verify_async(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.verify, password_hash, password
        )
