"""Running one service call per command: settings, database, services, actor.

:func:`run_with` loads the settings, opens the database, builds the services the command
needs (``build(db, settings)``), picks the actor (the operator, or the account named by
``--account``), awaits the action with ``asyncio.run`` and disposes the engine.
:func:`run_directory` builds only the :class:`~mailward.directory.Directory`, for commands
that need nothing above it: they start without importing the queue, filter or quarantine.
``context.run`` builds every service (:class:`~mailward.app.Services`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol, TypeVar

import typer

from mailward.config import Settings, load_settings
from mailward.db import Database
from mailward.directory import Actor, Directory
from mailward.directory.accounts import AccountService

from .output import handled


class WithAccounts(Protocol):
    """What :func:`run_with` needs of the services it builds: the accounts (``--account``)."""

    accounts: AccountService


S = TypeVar("S", bound=WithAccounts)
T = TypeVar("T")

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


def run_with(build: Callable[[Database, Settings], S],
             action: Callable[[S, Actor], Awaitable[T]], *, account: str | None = None) -> T:
    """Run ``action(build(db, settings), actor)`` against the configured database."""
    config = settings()
    with handled():
        return asyncio.run(_run(config, build, action, account))


def run_directory(action: Callable[[Directory, Actor], Awaitable[T]], *,
                  account: str | None = None) -> T:
    """Run ``action(directory, actor)``: for commands that use directory services only."""
    return run_with(Directory, action, account=account)


async def _run(config: Settings, build: Callable[[Database, Settings], S],
               action: Callable[[S, Actor], Awaitable[T]], account: str | None) -> T:
    db = Database(config.db_url)
    try:
        services = build(db, config)
        if account is None:
            actor = Actor.operator(CLI_OPERATOR)
        else:
            actor = await services.accounts.actor_for(account)
        return await action(services, actor.via(CLI_SOURCE))
    finally:
        await db.dispose()
