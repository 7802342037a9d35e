"""``mailward serve``: run the chosen roles (``mailward.server``) in ``--workers`` processes,
one event loop each."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator
from typing import Annotated

import typer

from .output import EXIT_USAGE, fail, handled
from .runner import settings
from .schema import is_migrated

INTERRUPTED = 130
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def serve(
    roles: Annotated[
        str,
        typer.Option("--roles", "-r", metavar="ROLES",
                     help="'all', or a comma-separated list of mx, delivery, submission, "
                          "imap, pop3, web."),
    ] = "all",
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-w", metavar="N", min=1, max=256,
                     help="Worker processes, one event loop each (default: setting "
                          "'workers', else the number of CPUs)."),
    ] = None,
) -> None:
    """Serve mail and the web panel until stopped (SIGINT/SIGTERM drain gracefully)."""
    # Imported here: the server pulls in every protocol stack, which other commands skip.
    server = importlib.import_module("mailward.server")
    try:
        chosen = server.parse_roles(roles)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    config = settings()
    if workers is not None:
        config = config.model_copy(update={"workers": workers})
    with handled():
        migrated = asyncio.run(is_migrated(config.db_url))
    if not migrated:
        fail("the database is not initialised or not migrated: run `mailward init` first")
    with _logging_to_stderr():
        try:
            with handled():
                status = server.run_until_stopped(config, chosen)
        except KeyboardInterrupt:
            raise typer.Exit(INTERRUPTED) from None
        except OSError as exc:  # a listener cannot bind (port in use, no permission)
            fail(exc.strerror or str(exc))
        except server.StartFailed as exc:  # a worker could not start; it logged why
            fail(str(exc))
    if status:
        raise typer.Exit(status)


@contextlib.contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """Log INFO and up to stderr while serving; leave global logging as it was after."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
