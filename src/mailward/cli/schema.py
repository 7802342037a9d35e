"""Whether the database schema is current, for ``init`` and ``serve`` (imports Alembic)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from mailward.db.migrate import is_current


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for other backends and in-memory databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


async def is_migrated(url: str) -> bool:
    """Whether the database is at the newest migration, without creating anything.

    Opening a SQLite URL creates the file, so a missing file simply means "no".
    """
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return False
    return await is_current(url)
