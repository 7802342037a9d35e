"""Alembic migrations produce exactly the models' schema on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from mailward.db.engine import make_engine
from mailward.db.migrate import current_revision, head_revision, is_current, upgrade
from mailward.db.models import Base


def _modelled(name: str | None, type_: str, _parents: object) -> bool:
    """SQLite's FTS5 table of the mail search index (and its shadow tables) is made by
    migration 0018 outside the models."""
    return not (type_ == "table" and name is not None and name.startswith("mail_search_fts"))


async def test_schema_matches_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(
                        c, opts={"compare_type": True, "include_name": _modelled}),
                    Base.metadata
                )
            )
        assert diff == []
        assert await current_revision(engine) == head_revision(db_url)
    finally:
        await engine.dispose()


async def test_upgrade_is_idempotent(db_url: str) -> None:
    await upgrade(db_url)
    assert await is_current(db_url)


async def test_fresh_database_is_not_current(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    assert not await is_current(url)
    await upgrade(url)
    assert await is_current(url)
