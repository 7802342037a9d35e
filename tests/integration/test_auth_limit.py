"""The login limiter on a real database (SQLite and PostgreSQL) with a fake clock: sliding
window, Retry-After, attempts counted in advance and forgiven, and one count shared by
every node (limiter) on the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from mailward.db import Database
from mailward.db.models import LoginFailure
from mailward.directory import auth_limit
from mailward.directory.auth_limit import AuthLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    try:
        yield database
    finally:
        await database.dispose()


async def rows(db: Database) -> int:
    async with db.session() as session:
        return (await session.execute(select(func.count()).select_from(LoginFailure))).scalar_one()


async def test_locks_at_the_limit_and_unlocks_as_failures_age(db: Database,
                                                              clock: FakeClock) -> None:
    limiter = AuthLimiter(db, 3, 60, clock=clock)
    for _ in range(2):
        assert await limiter.retry_after("ip:a") == 0
        await limiter.fail("ip:a")
        clock.advance(10)
    assert await limiter.retry_after("ip:a") == 0
    await limiter.fail("ip:a")  # failures at t=0, 10, 20 → locked until the first is 60 s old
    assert await limiter.retry_after("ip:a") == 40
    clock.advance(39.5)
    assert await limiter.retry_after("ip:a") == 1  # rounds up, never 0 while locked
    clock.advance(0.5)
    assert await limiter.retry_after("ip:a") == 0
    await limiter.fail("ip:a")  # t=60: failures at 10, 20, 60 → locked until t=70
    assert await limiter.retry_after("ip:a") == 10


async def test_any_locked_key_locks_the_attempt(db: Database, clock: FakeClock) -> None:
    limiter = AuthLimiter(db, 2, 100, clock=clock)
    await limiter.fail("ip:a", "login:bob")
    await limiter.fail("ip:b", "login:bob")
    assert await limiter.retry_after("ip:c", "login:bob") == 100
    assert await limiter.retry_after("ip:a", "login:eve") == 0
    assert await limiter.retry_after("ip:c", "login:eve") == 0
    refused = await limiter.attempt("ip:c", "login:bob")
    assert refused.retry_after == 100 and refused.ids == ()


async def test_attempts_count_in_advance_and_are_forgiven(db: Database,
                                                          clock: FakeClock) -> None:
    limiter = AuthLimiter(db, 2, 100, clock=clock)
    first = await limiter.attempt("ip:a", "login:bob")
    assert first.retry_after == 0 and len(first.ids) == 2
    clock.advance(1)
    second = await limiter.attempt("ip:a", "login:eve")  # still unproven: both count
    assert second.retry_after == 0
    third = await limiter.attempt("ip:a", "login:ann")
    assert third.retry_after == 99  # locked until the first attempt is 100 s old
    assert await rows(db) == 4  # the refused attempt left nothing behind
    await limiter.forgive(second)  # that password was right
    assert await limiter.retry_after("ip:a") == 0
    await limiter.forgive(second)  # forgiving twice is harmless
    assert (await limiter.attempt("ip:a", "login:ann")).retry_after == 0


async def test_nodes_share_one_count_and_one_unlock(db_url: str, clock: FakeClock) -> None:
    """Two limiters on their own connections to one database, as two nodes would be:
    failures on either lock both, and clearing on one unlocks both."""
    node_a, node_b = Database(db_url), Database(db_url)
    try:
        a = AuthLimiter(node_a, 3, 900, clock=clock)
        b = AuthLimiter(node_b, 3, 900, clock=clock)
        await a.fail("mailbox:bob@acme.example")
        await b.fail("mailbox:bob@acme.example")
        assert await a.retry_after("mailbox:bob@acme.example") == 0
        await a.fail("mailbox:bob@acme.example")
        assert await b.retry_after("mailbox:bob@acme.example") == 900
        await b.clear("mailbox:bob@acme.example")
        assert await a.retry_after("mailbox:bob@acme.example") == 0
    finally:
        await node_a.dispose()
        await node_b.dispose()


async def test_concurrent_attempts_cannot_overtake_the_limit(db_url: str,
                                                             clock: FakeClock) -> None:
    """Twenty guesses at once from four nodes: exactly the limit go ahead (attempts on
    one key take turns, so none is refused for another's provisional count alone)."""
    nodes = [Database(db_url) for _ in range(4)]
    try:
        limiters = [AuthLimiter(node, 5, 900, clock=clock) for node in nodes]
        results = await asyncio.gather(*(limiters[i % 4].attempt("ip:x", f"login:u{i}")
                                         for i in range(20)))
        allowed = [r for r in results if not r.retry_after]
        assert len(allowed) == 5
        assert await rows(nodes[0]) == 2 * len(allowed)  # the refused ones left nothing
    finally:
        for node in nodes:
            await node.dispose()


async def test_expired_failures_are_swept(db: Database, clock: FakeClock,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_limit, "PRUNE_EVERY", 30.0)
    limiter = AuthLimiter(db, 1, 10, clock=clock)
    await limiter.fail("k1")  # the first write sweeps (nothing yet) and starts the timer
    await limiter.fail("k2", "k3")
    assert await rows(db) == 3
    clock.advance(11)
    assert await limiter.retry_after("k1") == 0  # expired rows no longer count...
    await limiter.fail("k4")
    assert await rows(db) == 4  # ...and are swept at most every PRUNE_EVERY seconds
    clock.advance(20)
    await limiter.fail("k5")
    assert await rows(db) == 1  # k1-k4 had expired and are swept; k5 is fresh


async def test_clearing_a_key_takes_its_attempts_off_the_other_keys(db: Database,
                                                                    clock: FakeClock) -> None:
    """An unlocked login is let in from the address it failed from; that address stays
    counted for its failures against other logins."""
    limiter = AuthLimiter(db, 3, 900, clock=clock)
    for _ in range(2):
        await limiter.attempt("ip:a", "login:carol")
    await limiter.fail("ip:a", "login:mallory")
    assert await limiter.retry_after("ip:a") > 0
    await limiter.clear("login:carol")
    assert await limiter.retry_after("ip:a", "login:carol") == 0
    assert await rows(db) == 2  # mallory's failure, on both keys
    attempt = await limiter.fail("mailbox:x")
    await AuthLimiter(db, 100, 900, clock=clock).fail("mail-ip:b", attempt=attempt)
    await limiter.clear("mailbox:x")  # another limiter's key of the same attempt goes too
    assert await rows(db) == 2
