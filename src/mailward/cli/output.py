"""Shared output for every command: Rich consoles, ``--json`` documents, and the one
place that turns service/config failures into ``error: <reason>`` on stderr, exit 1.

Usage errors (bad options, missing arguments) stay Click's: exit code 2.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from mailward.config import ConfigError
from mailward.core.paging import Page, to_json
from mailward.directory import ServiceError

__all__ = [
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "err",
    "esc",
    "fail",
    "handled",
    "human_bytes",
    "out",
    "print_json",
    "usage_error",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2
PIPED_WIDTH = 1000  # columns when stdout is not a terminal: tables take what they need


def out() -> Console:
    """A console on stdout, made per call so test runners' swapped streams are used.

    ``soft_wrap`` keeps long lines whole (grep-able when piped); markup is only ours:
    every piece of user data goes through :func:`esc`. Piped (not a terminal), tables are
    as wide as their content instead of folding cells at 80 columns, so an address is
    never cut in two for ``grep``.
    """
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPED_WIDTH
    return console


def err() -> Console:
    """A console on stderr (progress bars, notes)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def esc(value: Any) -> str:
    """User data made safe to embed in Rich markup."""
    return escape(str(value))


def print_json(value: Any) -> None:
    """Print one JSON document on stdout (views go through ``to_json``)."""
    typer.echo(json.dumps(to_json(value), indent=2, ensure_ascii=False))


def report(value: Any, message: str, json_: bool) -> None:
    """Print ``value`` as JSON with ``--json``, else the one-line human ``message``."""
    if json_:
        print_json(value)
    else:
        out().print(message)


def fail(reason: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``error: <reason>`` (one line) on stderr and exit with ``code``."""
    typer.echo(f"error: {_one_line(reason)}", err=True)
    raise typer.Exit(code)


def usage_error(message: str) -> NoReturn:
    """A wrong combination of arguments: Typer's usage message and exit code 2."""
    raise typer.BadParameter(message)


@contextmanager
def handled() -> Iterator[None]:
    """Turn expected failures into ``error: <reason>`` and exit code 1."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    try:
        yield
    except (ServiceError, ConfigError) as exc:
        fail(str(exc))
    except DBAPIError as exc:
        fail(_database_reason(str(exc.orig) if exc.orig is not None else str(exc)))
    except SQLAlchemyError as exc:
        fail(_database_reason(str(exc)))
    except (ConnectionError, TimeoutError, socket.gaierror) as exc:
        # asyncpg reports an unreachable server as a plain OSError, not a DBAPIError
        fail(f"cannot reach the database: {exc.strerror or str(exc) or type(exc).__name__}")


def _database_reason(message: str) -> str:
    reason = f"database: {_one_line(message)}"
    lowered = message.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        reason += " (run `mailward init` first)"
    return reason


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else "unknown error"


def human_bytes(value: int | None) -> str:
    """1024-based sizes as people read them: ``0 B``, ``1.5 MB``, ``2 GB``."""
    if value is None:
        return "unlimited"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            if unit == "B" or size == int(size):
                return f"{int(size)} {unit}"
            return f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def page_summary(result: Page[Any], noun: str) -> str:
    """``"1-50 of 120 address(es), page 1 of 3"`` under a listing."""
    first = (result.page - 1) * result.per_page + 1
    last = first + len(result.items) - 1
    return f"{first}-{last} of {result.total} {noun}, page {result.page} of {result.pages}"


def empty_page(result: Page[Any], noun: str, nothing: str) -> str:
    """What a listing with no rows says: ``nothing`` when nothing matched at all, else that
    this page is past the end (``"page 4 is empty: 120 address(es) on 3 page(s)"``)."""
    if result.total == 0:
        return nothing
    return f"page {result.page} is empty: {result.total} {noun} on {result.pages} page(s)"
