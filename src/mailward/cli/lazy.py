"""A command group that imports a sub-command's module only when that command runs.

Each command module pulls in the services it calls (SQLAlchemy, the directory, the queue,
Alembic ...), so importing every one of them up front made every ``mailward`` command,
even ``--help``, pay for all of them. :class:`LazyGroup` knows its commands from a
registry of ``name -> (module:attribute, one-line help)``: the group's help and its list of
names come from the registry alone; running (or asking the help of) one command imports
its module and builds it exactly as ``Typer.add_typer`` / ``Typer.command`` would.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple

import typer
from typer import _click  # the Click that Typer vendors: the types TyperGroup's methods take
from typer._click.shell_completion import CompletionItem
from typer.core import TyperCommand, TyperGroup
from typer.main import get_group


class LazyCommand(NamedTuple):
    """Where a command lives (``"package.module:attribute"``, a ``Typer`` app or a command
    function) and the one line the parent's help shows for it."""

    target: str
    help: str


class Summary(TyperCommand):
    """A not yet imported command: only its name and help line, for listings."""


class LazyGroup(TyperGroup):
    """A Typer group whose commands (subclasses set :attr:`lazy_commands`) load on use."""

    lazy_commands: ClassVar[Mapping[str, LazyCommand]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._summaries_only = False
        for name, entry in self.lazy_commands.items():
            self.commands.setdefault(name, Summary(name=name, help=entry.help))

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        command = self.commands.get(cmd_name)
        if isinstance(command, Summary) and not self._summaries_only:
            command = self.commands[cmd_name] = self.load(cmd_name)
        return command

    def load(self, name: str) -> TyperGroup | TyperCommand:
        """Import command ``name`` and build it as the eager ``add_typer``/``command`` did."""
        module, _, attribute = self.lazy_commands[name].target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
        holder = typer.Typer(rich_markup_mode=self.rich_markup_mode,
                             suggest_commands=self.suggest_commands)
        if isinstance(target, typer.Typer):
            holder.add_typer(target, name=name)
        else:
            holder.command(name)(target)
        command = get_group(holder).commands[name]
        assert isinstance(command, TyperGroup | TyperCommand)
        return command

    @contextmanager
    def _summaries(self) -> Iterator[None]:
        """Within: :meth:`get_command` answers with summaries, importing nothing."""
        self._summaries_only = True
        try:
            yield
        finally:
            self._summaries_only = False

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        with self._summaries():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: _click.Context, incomplete: str) -> list[CompletionItem]:
        with self._summaries():
            return super().shell_complete(ctx, incomplete)
