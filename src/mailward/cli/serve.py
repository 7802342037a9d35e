"""``mailward serve``: run the chosen roles (``mailward.server``) in ``--workers`` processes,
one event loop each.

With several workers the metrics of every worker process are kept in files of
``data_dir/metrics`` (``PROMETHEUS_MULTIPROC_DIR``): ``prometheus_client`` decides how it
keeps values when it is first imported, so the directory is set up before the server, the
CLI's output helpers (they import the directory, which counts failed logins) or anything
else that imports it; this module imports nothing that does at its top.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
from collections.abc import Iterator
from typing import Annotated

import typer

from mailward.config import Settings, load_settings
from mailward.obs.logs import configure_logging
from mailward.obs.multiproc import TooLate, prepare

INTERRUPTED = 130
METRICS_DIR = "metrics"  # under data_dir: the worker processes' metric files


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
    config = _settings_if_valid()
    if config is not None and (workers or config.workers or _cpus()) > 1:
        _metrics_dir(config)
    # Imported only now (see the module): the output helpers, Alembic, and the server,
    # which pulls in every protocol stack.
    output = importlib.import_module("mailward.cli.output")
    schema = importlib.import_module("mailward.cli.schema")
    server = importlib.import_module("mailward.server")
    if config is None:
        with output.handled():  # says why the settings are invalid, and exits
            config = load_settings()
    config = config.model_copy(update={"workers": workers or config.workers or _cpus()})
    try:
        chosen = server.parse_roles(roles)
    except ValueError as exc:
        output.fail(str(exc), output.EXIT_USAGE)
    with output.handled():
        migrated = asyncio.run(schema.is_migrated(config.db_url))
    if not migrated:
        output.fail("the database is not initialised or not migrated: run `mailward init` "
                    "first")
    with _logging(config):  # the supervisor warns if the metrics cannot be aggregated
        try:
            with output.handled():
                status = server.run_until_stopped(config, chosen)
        except KeyboardInterrupt:
            raise typer.Exit(INTERRUPTED) from None
        except OSError as exc:  # a listener cannot bind (port in use, no permission)
            output.fail(exc.strerror or str(exc))
        except server.StartFailed as exc:  # a worker could not start; it logged why
            output.fail(str(exc))
    if status:
        raise typer.Exit(status)


def _settings_if_valid() -> Settings | None:
    """The settings, ``None`` if invalid (asked again, and explained, under ``handled``)."""
    try:
        return load_settings()
    except Exception:
        return None


def _cpus() -> int:
    """The CPUs this process may run on (``workers``' default, as the supervisor counts)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def _metrics_dir(config: Settings) -> None:
    """An empty ``data_dir/metrics`` as ``PROMETHEUS_MULTIPROC_DIR`` (for the workers)."""
    with contextlib.suppress(TooLate):  # serve inside a program that imported it (the
        prepare((config.data_dir / METRICS_DIR).resolve())  # supervisor logs it)


@contextlib.contextmanager
def _logging(config: Settings) -> Iterator[None]:
    """Log ``log_level`` and up to stderr as ``log_format`` while serving; leave global
    logging as it was after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging(config.log_format, config.log_level)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
