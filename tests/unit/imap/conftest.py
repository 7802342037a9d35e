"""Fixtures of the IMAP session tests: a listener over a Maildir (or PostgreSQL) store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from imap_testkit import ImapTestServer, imap_server

from mailward.db import Database
from mailward.store import MaildirStore
from mailward.store.postgres import PostgresStore


@pytest.fixture
def imap(tmp_path: Path) -> Iterator[ImapTestServer]:
    """A plaintext listener over a Maildir store (plaintext login allowed: loopback)."""
    with imap_server(lambda: MaildirStore(tmp_path / "mail")) as server:
        yield server


@pytest.fixture(params=["maildir", "postgres"])
def imap_any(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImapTestServer]:
    """The same listener over each store backend."""
    if request.param == "maildir":
        with imap_server(lambda: MaildirStore(tmp_path / "mail")) as server:
            yield server
        return
    url = request.getfixturevalue("pg_database")
    databases: list[Database] = []

    def make() -> PostgresStore:
        databases.append(Database(url))
        return PostgresStore(databases[-1])

    with imap_server(make) as server:
        server.call(_truncate(databases[0]))
        try:
            yield server
        finally:
            for db in databases:
                server.call(db.dispose())


async def _truncate(db: Database) -> None:
    from sqlalchemy import text

    async with db.engine.begin() as conn:
        await conn.execute(text("TRUNCATE store_subscriptions, store_messages, store_folders, "
                                "store_mailboxes RESTART IDENTITY CASCADE"))
