"""Brute-force limit for password logins: failures per client IP and per login, in memory.

A sliding window per key: once ``max_failures`` failures fall inside the last
``window_seconds``, the key is locked until enough of them age out. An attempt counts
as a failure from the moment it starts (so concurrent guesses cannot overtake the
limit) and is forgiven when the password turns out to be right.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

MAX_KEYS = 100_000


class AuthLimiter:
    """Counts failed logins per key (e.g. ``"ip:…"``, ``"login:…"``) over a sliding window."""

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        if max_failures < 1 or window_seconds <= 0:
            raise ValueError("max_failures must be >= 1 and window_seconds > 0")
        self.max_failures = max_failures
        self.window = float(window_seconds)
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, *keys: str) -> int:
        """Whole seconds until every key is unlocked; 0 when an attempt may go ahead."""
        now = self.clock()
        wait = 0.0
        for key in keys:
            stamps = self._current(key, now)
            if stamps is not None and len(stamps) >= self.max_failures:
                unlock = stamps[len(stamps) - self.max_failures] + self.window
                wait = max(wait, unlock - now)
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def fail(self, *keys: str) -> float:
        """Record a failure (or an attempt still in progress) for every key; returns its stamp."""
        now = self.clock()
        for key in keys:
            stamps = self._current(key, now)
            if stamps is None:
                self._make_room(now)
                stamps = self._failures[key] = deque()
            stamps.append(now)
        return now

    def forgive(self, stamp: float, *keys: str) -> None:
        """Take back one failure recorded by ``fail`` (the attempt succeeded)."""
        for key in keys:
            stamps = self._failures.get(key)
            if stamps is None:
                continue
            try:
                stamps.remove(stamp)
            except ValueError:
                continue
            if not stamps:
                del self._failures[key]

    def clear(self, key: str) -> None:
        """Forget every failure recorded for ``key``."""
        self._failures.pop(key, None)

    def __len__(self) -> int:
        """Number of keys currently tracked."""
        return len(self._failures)

    def _current(self, key: str, now: float) -> deque[float] | None:
        """The key's failures inside the window (expired ones dropped), or ``None``."""
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        horizon = now - self.window
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        return stamps

    def _make_room(self, now: float) -> None:
        """Keep memory bounded: drop expired keys, then the oldest ones if still full."""
        if len(self._failures) < self.max_keys:
            return
        for key in list(self._failures):
            self._current(key, now)
        while len(self._failures) >= self.max_keys:
            del self._failures[next(iter(self._failures))]
