"""Shared fixtures: a fresh, migrated database per test on SQLite and on real PostgreSQL.

Tests that take ``db_url`` (or anything built on it) run once per backend. PostgreSQL
comes from ``MAILWARD_TEST_PG_URL``; one database is created per test session and
dropped at the end, and tables are emptied before each test. Each pytest-xdist worker
(`make test` runs one per CPU) is a session of its own, so workers never share a database.
If PostgreSQL cannot be reached the tests error out: the PostgreSQL backend is part of the
product.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from mailward.app import Services
from mailward.config import Settings, load_settings
from mailward.db import Database
from mailward.db.migrate import upgrade
from mailward.db.models import Base
from mailward.directory import Actor

PG_URL = os.environ.get(
    "MAILWARD_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]

# Cheap Argon2id parameters keep the suite fast (production values come from config), and
# no background DNS re-checks and no spam filter checks: they would ask the system's
# resolvers. Their tests turn them on against their own loopback DNS servers. No quarantine
# digests either: their own tests turn them on. Customer mail servers in tests are
# loopback listeners, so private addresses are allowed (their refusal has its own tests).
TEST_CONFIG = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1,
               "dns_recheck_interval_seconds": 0, "quarantine_digest_interval_seconds": 0,
               "spam_filter": False, "allow_private_mail_servers": True, "port_metrics": 0,
               "port_managesieve": 0}
TEST_CONFIG_ENV = {f"MAILWARD_{k.upper()}": str(v) for k, v in TEST_CONFIG.items()}


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session (dropped afterwards)."""
    name = f"mailward_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = _dsn(PG_URL)

    async def create() -> None:
        try:
            conn = await asyncpg.connect(admin, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise RuntimeError(
                f"PostgreSQL at {PG_URL} is unreachable ({exc}); start it as "
                "../shared/ci-services.md says - the PostgreSQL tests must not be skipped"
            ) from exc
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    asyncio.run(upgrade(url))
    try:
        yield url
    finally:
        asyncio.run(drop())


def _truncate(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)

    async def run() -> None:
        conn = await asyncpg.connect(_dsn(url), timeout=10)
        try:
            await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty, migrated database of the current backend."""
    if backend == "postgresql":
        url = request.getfixturevalue("pg_database")
        _truncate(url)
        return url
    path = tmp_path / "mailward.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once per test session; each test gets a copy of it (the
    migrations take a third of a second, a copy a millisecond)."""
    path = tmp_path_factory.mktemp("template") / "mailward.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{path}"))
    assert not path.with_name(path.name + "-wal").exists()  # everything is in the file
    return path


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", database_url=db_url, **TEST_CONFIG)


@pytest.fixture
def config_env() -> dict[str, str]:
    """``MAILWARD_*`` variables that make Argon2id cheap for tests."""
    return dict(TEST_CONFIG_ENV)


@pytest.fixture
def mailward_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment that points ``mailward`` (CLI/server) at the test database."""
    env = {
        "MAILWARD_DATA_DIR": str(settings.data_dir),
        "MAILWARD_DATABASE_URL": settings.db_url,
        **TEST_CONFIG_ENV,
    }
    monkeypatch.delenv("MAILWARD_CONFIG", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
async def directory(settings: Settings) -> AsyncIterator[Services]:
    db = Database(settings.db_url)
    try:
        yield Services(db, settings)
    finally:
        await db.dispose()


@pytest.fixture
def operator() -> Actor:
    return Actor.operator()
