"""Async engine and session factory for SQLite (default) or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from mailward.db.generation import GROUP_KEY, LookupCaches, TrackedSession

POOL_SIZE = 10  # PostgreSQL connections kept per process (as many again at a peak)
RECYCLE_SECONDS = 1800  # a pooled PostgreSQL connection is replaced once this old


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and durable commits."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Twenty IMAP/POP3 clients queued on SQLAlchemy's default pool of 5 + 10. No ping
    # before each checkout: it was a round trip per statement (about an eighth of an IMAP
    # worker's time). After a database restart the first statement on each worker's
    # stale connection fails (a 451 or NO the client retries) and SQLAlchemy then
    # replaces the whole pool; connections older than RECYCLE_SECONDS are replaced too.
    return create_async_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_SIZE,
                               pool_recycle=RECYCLE_SECONDS)


class Database:
    """Owns one engine; hands out sessions (``async with db.session() as s``), which move
    the lookup generation when they commit a change to what ``lookups`` caches."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.lookups = LookupCaches(url)  # this process's lookup caches over this database
        self._sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=TrackedSession,
            info={GROUP_KEY: self.lookups})

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
