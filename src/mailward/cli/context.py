"""Running one service call per command: settings, database, directory, actor.

Every command goes through :func:`run`: it loads the settings, opens the database, builds
the :class:`~mailward.directory.Directory`, picks the actor (the operator, or the account
named by ``--account``), awaits the action with ``asyncio.run`` and disposes the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.engine import make_url

from mailward.config import Settings, load_settings
from mailward.db import Database
from mailward.db.migrate import is_current
from mailward.directory import Actor, Directory

from .output import handled

T = TypeVar("T")

Action = Callable[[Directory, Actor], Awaitable[T]]

CLI_OPERATOR = "cli"
CLI_SOURCE = "cli"  # where CLI changes come from, in the audit log

AccountOption = Annotated[
    str | None,
    typer.Option(
        "--account",
        "-a",
        metavar="NAME",
        help="Act as this customer account: only its domains and addresses are visible.",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout (see docs/cli.md).")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def settings() -> Settings:
    """The settings, or ``error: invalid configuration: ...`` and exit 1."""
    with handled():
        return load_settings()


def run(action: Action[T], *, account: str | None = None) -> T:
    """Run ``action(directory, actor)`` against the configured database."""
    config = settings()
    with handled():
        return asyncio.run(_run(config, action, account))


async def _run(config: Settings, action: Action[T], account: str | None) -> T:
    db = Database(config.db_url)
    try:
        directory = Directory(db, config)
        if account is None:
            actor = Actor.operator(CLI_OPERATOR)
        else:
            actor = await directory.accounts.actor_for(account)
        return await action(directory, actor.via(CLI_SOURCE))
    finally:
        await db.dispose()


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
