"""What only the PostgreSQL store promises: several nodes share mailboxes exactly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from mailward.db import Database
from mailward.store import INBOX, QuotaExceeded, Stored
from mailward.store.postgres import PostgresStore

ANN = "ann@example.com"
NODES = 3


@pytest.fixture
def pg_url(pg_database: str) -> str:
    return pg_database


@pytest.fixture
async def nodes(pg_url: str) -> AsyncIterator[list[PostgresStore]]:
    """Stores on separate engines (connection pools), as on separate hosting nodes."""
    databases = [Database(pg_url) for _ in range(NODES)]
    async with databases[0].engine.begin() as conn:
        await conn.execute(
            text("TRUNCATE store_messages, store_folders, store_mailboxes RESTART IDENTITY CASCADE")
        )
    try:
        yield [PostgresStore(db) for db in databases]
    finally:
        for db in databases:
            await db.dispose()


async def test_concurrent_deliveries_from_several_nodes_never_collide(
    nodes: list[PostgresStore],
) -> None:
    bodies = [f"Subject: {n}\r\n\r\nnode mail {n:04d}\r\n".encode() for n in range(90)]
    stored = await asyncio.gather(
        *(nodes[n % NODES].deliver(ANN, body) for n, body in enumerate(bodies))
    )
    assert sorted(s.uid for s in stored) == list(range(1, 91))
    assert len({s.uidvalidity for s in stored}) == 1
    for result, body in zip(stored, bodies, strict=True):
        assert await nodes[0].fetch(ANN, INBOX, result.uid) == body
    assert await nodes[1].usage(ANN) == sum(len(b) for b in bodies)


async def test_quota_is_exact_under_concurrent_deliveries(nodes: list[PostgresStore]) -> None:
    async def attempt(n: int) -> Stored | None:
        try:
            return await nodes[n % NODES].deliver(ANN, b"x" * 100, quota_bytes=2_500)
        except QuotaExceeded:
            return None

    results = await asyncio.gather(*(attempt(n) for n in range(60)))
    accepted = [r for r in results if r is not None]
    assert len(accepted) == 25
    assert sorted(r.uid for r in accepted) == list(range(1, 26))
    assert await nodes[2].usage(ANN) == 2_500
    status = await nodes[0].folder_status(ANN, INBOX)
    assert (status.exists, status.uidnext) == (25, 26)


async def test_copies_and_deliveries_from_different_nodes_share_one_uid_sequence(
    nodes: list[PostgresStore],
) -> None:
    await nodes[0].create_folder(ANN, "Box")
    for n in range(10):
        await nodes[0].deliver(ANN, f"m{n}".encode())
    results = await asyncio.gather(
        nodes[1].copy(ANN, INBOX, range(1, 11), "Box"),
        *(nodes[2].deliver(ANN, f"d{n}".encode(), folder="Box") for n in range(10)),
    )
    mapping = results[0]
    delivered = [s.uid for s in results[1:]]
    assert sorted([*mapping.values(), *delivered]) == list(range(1, 21))
    assert [m.uid for m in await nodes[0].messages(ANN, "Box")] == list(range(1, 21))
    assert await nodes[0].usage(ANN) == 40 + 20  # 10 originals, 10 copies, 10 deliveries


async def test_requires_postgresql(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(ValueError, match="PostgreSQL"):
            PostgresStore(db)
    finally:
        await db.dispose()
