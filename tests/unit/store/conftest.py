"""Store backends under test: the contract suite runs once per entry of ``BACKENDS``.

``make_store`` returns a factory; every call opens a *new* store instance on the same
underlying storage, so tests can check what persists across instances (restarts). For
PostgreSQL each instance gets its own :class:`Database` (its own connection pool), as
separate hosting nodes would; the store tables are emptied before each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from mailward.db import Database
from mailward.store import MaildirStore, MailStore
from mailward.store.postgres import PostgresStore

StoreFactory = Callable[[], MailStore]

BACKENDS = ["maildir", "postgres"]
STORE_TABLES = "store_subscriptions, store_messages, store_folders, store_mailboxes"


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """The backend name, and for PostgreSQL the session's migrated database URL."""
    if request.param == "postgres":
        return request.param, request.getfixturevalue("pg_database")
    return request.param, None


@pytest.fixture
async def make_store(
    store_backend: tuple[str, str | None], tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    backend, url = store_backend
    if backend == "maildir":
        root = tmp_path / "mail"
        yield lambda: MaildirStore(root)
        return
    if backend != "postgres" or url is None:
        raise AssertionError(f"unknown store backend {backend}")
    admin = Database(url)
    try:
        async with admin.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {STORE_TABLES} RESTART IDENTITY CASCADE"))
    finally:
        await admin.dispose()
    databases: list[Database] = []

    def factory() -> MailStore:
        databases.append(Database(url))
        return PostgresStore(databases[-1])

    try:
        yield factory
    finally:
        for db in databases:
            await db.dispose()


@pytest.fixture
def store(make_store: StoreFactory) -> MailStore:
    return make_store()
