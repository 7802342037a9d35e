"""The ``mailward`` command: a Typer app whose topics load one module each, on use.

:data:`COMMANDS` names every top-level command, where it lives and its line in
``mailward --help``; nothing of a command's module (nor SQLAlchemy, the services, Alembic
...) is imported until that command runs, so ``--help`` and a listing start at once.
"""

from __future__ import annotations

import gc
from typing import Annotated

import typer

from .lazy import LazyCommand, LazyGroup

COMMANDS: dict[str, LazyCommand] = {
    # name: (module:Typer app or command function, the line `mailward --help` shows);
    # tests/integration/test_cli_startup.py checks each line against the command's own help
    "init": LazyCommand(
        "mailward.cli.init:init",
        "Create the data dir, migrate the database and create the first operator user."),
    "serve": LazyCommand(
        "mailward.cli.serve:serve",
        "Serve mail and the web panel until stopped (SIGINT/SIGTERM drain gracefully)."),
    "account": LazyCommand("mailward.cli.accounts:account_app",
                           "Customer accounts (operator only)."),
    "user": LazyCommand("mailward.cli.accounts:user_app",
                        "Users who log in to the panel and the API."),
    "token": LazyCommand("mailward.cli.accounts:token_app", "API tokens for the JSON API."),
    "reseller": LazyCommand("mailward.cli.accounts:reseller_app",
                            "Resellers: they manage their own customers' accounts."),
    "domain": LazyCommand("mailward.cli.domains:domain_app", "Customer domains."),
    "address": LazyCommand("mailward.cli.addresses:address_app",
                           "Addresses on the Filter / Do Not Filter lists."),
    "servers": LazyCommand(
        "mailward.cli.servers:servers_app",
        "Mail server settings: where a domain's filtered mail is delivered."),
    "queue": LazyCommand("mailward.cli.queue:queue_app",
                         "The mail queue: messages waiting for delivery."),
    "filter": LazyCommand(
        "mailward.cli.filter:filter_app",
        "Spam filter settings of domains and addresses: thresholds, allow/block lists, "
        "training."),
    "quarantine": LazyCommand("mailward.cli.quarantine:quarantine_app",
                              "Mail the spam filter held: list, show, release, delete."),
    "dns": LazyCommand(
        "mailward.cli.dns:dns_app",
        "DNS tools: look up records, the records a domain must publish, checks."),
    "audit": LazyCommand("mailward.cli.audit:audit_app",
                         "The audit log: every change, who made it, when, from where."),
    "trace": LazyCommand("mailward.cli.trace:trace_app",
                         "Message trace: search and show every event of a message's life."),
    "migrate": LazyCommand("mailward.cli.migrate:migrate_app",
                           "Copy mailboxes from an old IMAP server: add, list, show, cancel."),
}


class MailwardGroup(LazyGroup):
    """The top-level group: the commands of :data:`COMMANDS`, each imported on use."""

    lazy_commands = COMMANDS


app = typer.Typer(
    name="mailward",
    cls=MailwardGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold passwords
)


def package_version() -> str:
    """The installed version (``unknown`` in a bare source tree)."""
    # imported here, not at the top: reading package metadata costs every command ~30 ms
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mailward")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"mailward {package_version()}")
        raise typer.Exit()


@app.callback()
def root(
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
) -> None:
    """mailward: email filtering and hosting.

    Operator commands by default; --account NAME acts as that customer account.
    """


def main() -> None:
    """Console-script entry point (``mailward``) and ``python -m mailward``."""
    try:
        app(prog_name="mailward")
    finally:
        # The process ends here: spare the interpreter's last garbage collections over the
        # hundreds of thousands of objects SQLAlchemy and pydantic create at import (about
        # 0.2 s of every command). Nothing is lost: streams are still flushed, atexit
        # handlers still run, and the engine was disposed by the command itself.
        gc.freeze()
