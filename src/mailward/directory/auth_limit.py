"""Brute-force limit for password logins: failures per client IP and per login, in the
database, so every node of a cluster sees the same count and an admin's unlock holds
everywhere.

A sliding window per key: once ``max_failures`` failures fall inside the last
``window_seconds``, the key is locked until enough of them age out. Two ways to count:

- :meth:`AuthLimiter.attempt` records the attempt as a failure before the password is
  checked (so concurrent guesses cannot overtake the limit, even on different nodes) and
  :meth:`AuthLimiter.forgive` takes it back when the password was right;
- :meth:`AuthLimiter.retry_after` + :meth:`AuthLimiter.fail` count real failures only
  (mail clients open several connections at once; right logins must never queue);
  :func:`retry_after_all` asks several limiters (per login, per client) in one query.

Stamps are Unix time, so nodes need synchronised clocks (NTP) as they do for TLS and DKIM.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Row, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.db import Database
from mailward.db.models import LoginFailure

__all__ = ["Attempt", "AuthLimiter", "retry_after_all"]

PRUNE_EVERY = 60.0  # seconds between sweeps of expired rows (per process)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A login attempt counted in advance: ``retry_after`` > 0 means it was refused (and
    not counted); otherwise ``ids`` are its provisional failures, for ``forgive``."""

    retry_after: int
    ids: tuple[int, ...] = ()


class AuthLimiter:
    """Counts failed logins per key (e.g. ``"ip:…"``, ``"login:…"``) over a sliding window.

    ``prefix_limits`` gives keys starting with a prefix their own limit, e.g. a much
    higher one for client addresses (``{"ip:": 100}``): many users may share one (NAT),
    and a few guesses against one of them must not lock out the rest.
    """

    def __init__(self, db: Database, max_failures: int, window_seconds: float, *,
                 clock: Callable[[], float] = time.time,
                 prefix_limits: Mapping[str, int] | None = None) -> None:
        if max_failures < 1 or window_seconds <= 0:
            raise ValueError("max_failures must be >= 1 and window_seconds > 0")
        if any(limit < 1 for limit in (prefix_limits or {}).values()):
            raise ValueError("every prefix limit must be >= 1")
        self.db = db
        self.max_failures = max_failures
        self.prefix_limits = dict(prefix_limits or {})
        self.window = float(window_seconds)
        self.clock = clock
        self._pruned = -math.inf  # clock time of the last sweep

    async def retry_after(self, *keys: str) -> int:
        """Whole seconds until every key is unlocked; 0 when an attempt may go ahead."""
        now = self.clock()
        async with self.db.session() as session:
            return await self._wait(session, keys, now, ())

    async def attempt(self, *keys: str) -> Attempt:
        """Count an attempt against every key before it is checked; refused (and not
        counted) when a key is already at its limit."""
        now = self.clock()
        async with self.db.session() as session:
            # One attempt per key at a time, cluster-wide: PostgreSQL takes an advisory
            # lock per key; SQLite holds its one write lock from our insert to the commit.
            if not self.db.is_sqlite:
                for key in sorted(set(keys)):
                    await session.execute(
                        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                        {"key": key})
            ids = await self._insert(session, keys, now)
            wait = await self._wait(session, keys, now, ids, extra=1)
            if wait:
                await session.rollback()
                return Attempt(wait)
            await session.commit()
        return Attempt(0, ids)

    async def fail(self, *keys: str, attempt: str | None = None) -> str:
        """Record one failure for every key, as one attempt (``attempt``: join the one a
        previous call returned, e.g. another limiter's)."""
        attempt = attempt or secrets.token_hex(8)
        async with self.db.session() as session:
            await self._insert(session, keys, self.clock(), attempt)
            await session.commit()
        return attempt

    async def forgive(self, attempt: Attempt) -> None:
        """Take back an attempt's provisional failures (the password was right)."""
        if attempt.ids:
            async with self.db.session() as session:
                await session.execute(
                    delete(LoginFailure).where(LoginFailure.id.in_(attempt.ids)))
                await session.commit()

    async def clear(self, key: str) -> None:
        """Forget every failure recorded for ``key``, and what the same attempts counted
        against other keys (the client address): an unlocked user is let in again, while
        an address that also failed for other logins stays counted for those."""
        attempts = select(LoginFailure.attempt).where(LoginFailure.key == key)
        async with self.db.session() as session:
            await session.execute(delete(LoginFailure).where(
                LoginFailure.attempt.in_(attempts)))
            await session.commit()

    async def _insert(self, session: AsyncSession, keys: Iterable[str], now: float,
                      attempt: str | None = None) -> tuple[int, ...]:
        if now - self._pruned >= PRUNE_EVERY:
            self._pruned = now
            await session.execute(delete(LoginFailure).where(LoginFailure.expires <= now))
        attempt = attempt or secrets.token_hex(8)
        rows = [{"key": key, "attempt": attempt, "at": now, "expires": now + self.window}
                for key in keys]
        ids = []
        for row in rows:  # one by one: RETURNING over executemany is not on every driver
            ids.append((await session.execute(
                insert(LoginFailure).values(row).returning(LoginFailure.id))).scalar_one())
        return tuple(ids)

    def limit_of(self, key: str) -> int:
        """The failures ``key`` may have in the window (its prefix's, else the default)."""
        for prefix, limit in self.prefix_limits.items():
            if key.startswith(prefix):
                return limit
        return self.max_failures

    async def _wait(self, session: AsyncSession, keys: Iterable[str], now: float,
                    own: tuple[int, ...], *, extra: int = 0) -> int:
        """Seconds until each key has fewer than its limit (+ ``extra``) failures in the
        window; ``own`` rows count toward the limit but do not lengthen the wait."""
        return self._wait_of(await _failures(session, keys, now - self.window), now, own,
                             extra=extra)

    def _wait_of(self, rows: Iterable[Row[str, float, int]], now: float,
                 own: tuple[int, ...] = (), *, extra: int = 0) -> int:
        """``_wait`` over failure rows already read (those in the window count)."""
        stamps: dict[str, list[float]] = {}
        mine: dict[str, int] = {}
        for key, at, row_id in rows:
            if at <= now - self.window:
                continue
            if row_id in own:
                mine[key] = mine.get(key, 0) + 1
            else:
                stamps.setdefault(key, []).append(at)
        wait = 0.0
        for key, ats in stamps.items():
            limit = self.limit_of(key)
            if len(ats) + mine.get(key, 0) >= limit + extra:
                # locked until enough of the others age out to leave room for one more
                unlock = ats[max(len(ats) - limit, 0)] + self.window
                wait = max(wait, unlock - now)
        return max(1, math.ceil(wait)) if wait > 0 else 0


async def retry_after_all(checks: Sequence[tuple[AuthLimiter, str]]) -> int:
    """Whole seconds until every ``(limiter, key)`` is unlocked (0: go ahead), asking the
    database once when the limiters share it (a mail login checks two on every login)."""
    if not checks:
        return 0
    db = checks[0][0].db
    if any(limiter.db is not db for limiter, _ in checks):
        return max([await limiter.retry_after(key) for limiter, key in checks])
    nows = {id(limiter): limiter.clock() for limiter, _ in checks}
    since = min(nows[id(limiter)] - limiter.window for limiter, _ in checks)
    async with db.session() as session:
        rows = await _failures(session, {key for _, key in checks}, since)
    return max(limiter._wait_of([row for row in rows if row.key == key], nows[id(limiter)])
               for limiter, key in checks)


async def _failures(session: AsyncSession, keys: Iterable[str],
                    since: float) -> Sequence[Row[str, float, int]]:
    """The failures of ``keys`` after ``since``, oldest first."""
    return (await session.execute(
        select(LoginFailure.key, LoginFailure.at, LoginFailure.id)
        .where(LoginFailure.key.in_(list(keys)), LoginFailure.at > since)
        .order_by(LoginFailure.at, LoginFailure.id))).all()
