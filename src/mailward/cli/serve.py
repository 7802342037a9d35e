"""``mailward serve``: run the chosen roles (``mailward.server``) in one event loop."""

from __future__ import annotations

import asyncio
import importlib
from typing import Annotated

import typer

from .context import is_migrated, settings
from .output import EXIT_USAGE, fail, handled

INTERRUPTED = 130


def serve(
    roles: Annotated[
        str,
        typer.Option("--roles", "-r", metavar="ROLES",
                     help="'all', or a comma-separated list of mx, delivery, submission, "
                          "imap, pop3, web."),
    ] = "all",
) -> None:
    """Serve mail and the web panel until stopped (SIGINT/SIGTERM drain gracefully)."""
    # Imported here: the server pulls in every protocol stack, which other commands skip.
    server = importlib.import_module("mailward.server")
    try:
        chosen = server.parse_roles(roles)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    config = settings()
    with handled():
        migrated = asyncio.run(is_migrated(config.db_url))
    if not migrated:
        fail("the database is not initialised or not migrated: run `mailward init` first")
    try:
        with handled():
            asyncio.run(server.run(config, chosen))
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None
