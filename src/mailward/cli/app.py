"""The ``mailward`` command: a Typer app assembled from one module per topic."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from .accounts import account_app, reseller_app, token_app, user_app
from .addresses import address_app
from .audit import audit_app
from .dns import dns_app
from .domains import domain_app
from .filter import filter_app
from .init import init
from .quarantine import quarantine_app
from .queue import queue_app
from .serve import serve
from .servers import servers_app

app = typer.Typer(
    name="mailward",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold passwords
)


def package_version() -> str:
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


app.command("init")(init)
app.command("serve")(serve)
app.add_typer(account_app, name="account")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(reseller_app, name="reseller")
app.add_typer(domain_app, name="domain")
app.add_typer(address_app, name="address")
app.add_typer(servers_app, name="servers")
app.add_typer(queue_app, name="queue")
app.add_typer(filter_app, name="filter")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(dns_app, name="dns")
app.add_typer(audit_app, name="audit")


def main() -> None:
    """Console-script entry point (``mailward``) and ``python -m mailward``."""
    app(prog_name="mailward")
