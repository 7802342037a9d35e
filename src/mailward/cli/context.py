"""Running one service call per command against every service (:class:`Services`).

:func:`run` is :func:`~mailward.cli.runner.run_with` building the
:class:`~mailward.app.Services`; the options, :func:`settings` and the actor handling
live in :mod:`mailward.cli.runner` (re-exported here), so a command that needs only the
directory can use :func:`~mailward.cli.runner.run_directory` without importing the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from mailward.app import Services
from mailward.directory import Actor

from .runner import (
    CLI_OPERATOR,
    CLI_SOURCE,
    AccountOption,
    JsonOption,
    YesOption,
    run_with,
    settings,
)

__all__ = [
    "CLI_OPERATOR",
    "CLI_SOURCE",
    "AccountOption",
    "Action",
    "JsonOption",
    "YesOption",
    "run",
    "settings",
]

T = TypeVar("T")

Action = Callable[[Services, Actor], Awaitable[T]]


def run(action: Action[T], *, account: str | None = None) -> T:
    """Run ``action(services, actor)`` against the configured database."""
    return run_with(Services, action, account=account)
