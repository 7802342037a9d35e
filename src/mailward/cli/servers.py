"""``mailward servers``: a domain's mail server settings (docs/procedures.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mailward.app import Services
from mailward.directory import Actor
from mailward.dns.verify import UNVERIFIED_EFFECT
from mailward.routing import MailServerView
from mailward.routing.servers import HOSTING_SETUP_DONE

from .context import AccountOption, JsonOption, YesOption, run
from .output import err, esc, out, print_json, usage_error

servers_app = typer.Typer(
    help="Mail server settings: where a domain's filtered mail is delivered.",
    no_args_is_help=True,
)

DomainArg = Annotated[str, typer.Argument(metavar="DOMAIN", help="The domain.")]
ServerArg = Annotated[
    str, typer.Argument(metavar="HOST[:PORT]", help="FQDN or IP; IPv6 as [address]:port.")
]
PortOption = Annotated[
    int | None, typer.Option("--port", help="TCP port (default 25).", show_default=False)
]
HELD = ("no mail server settings: mail for {domain} is held (deferred) until a server is "
        "added or `mailward servers auto-configure` is run")


def _print_servers(views: list[MailServerView]) -> None:
    table = Table("Preference", "Mail server")
    for view in views:
        table.add_row(str(view.preference), esc(view.address))
    out().print(table)


@servers_app.command("list")
def servers_list(domain: DomainArg, account: AccountOption = None,
                 json_: JsonOption = False) -> None:
    """A domain's mail servers in delivery order (lowest preference first)."""

    async def action(services: Services, actor: Actor) -> tuple[list[MailServerView], bool]:
        views = await services.servers.list(actor, domain)
        return views, (await services.domains.get(actor, domain)).verified

    views, verified = run(action, account=account)
    if json_:
        print_json(views)
    elif views:
        _print_servers(views)
    else:
        err().print("warning: " + esc(HELD.format(domain=domain.strip().lower())))
    if not verified:
        err().print(f"note: {esc(domain.strip().lower())} is not verified: {UNVERIFIED_EFFECT} "
                    "(see `mailward domain show`)")


@servers_app.command("add")
def servers_add(
    domain: DomainArg,
    server: ServerArg,
    preference: Annotated[
        int, typer.Option("--preference", "-p", help="0-65535; lower is tried first.")
    ],
    port: PortOption = None,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Add a mail server (the customer's own, for filtering-only domains)."""
    view = run(lambda d, a: d.servers.add(a, domain, server, preference=preference, port=port),
               account=account)
    _report(view, "added", json_)


@servers_app.command("edit")
def servers_edit(
    domain: DomainArg,
    server: ServerArg,
    host: Annotated[
        str | None,
        typer.Option("--host", metavar="HOST[:PORT]", help="New host.", show_default=False),
    ] = None,
    port: PortOption = None,
    preference: Annotated[
        int | None, typer.Option("--preference", "-p", help="New preference.",
                                 show_default=False)
    ] = None,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Change a mail server's host, port or preference."""
    if host is None and port is None and preference is None:
        usage_error("nothing to change: give --host, --port or --preference")
    view = run(lambda d, a: d.servers.edit(a, domain, server, host=host, port=port,
                                           preference=preference), account=account)
    _report(view, "changed", json_)


@servers_app.command("delete")
def servers_delete(domain: DomainArg, server: ServerArg, account: AccountOption = None,
                   yes: YesOption = False, json_: JsonOption = False) -> None:
    """Remove a mail server from a domain."""
    if json_ and not yes:
        usage_error("--json needs --yes (there is no one to answer the question)")
    if not yes:
        typer.confirm(f"Remove mail server {server.strip()} from {domain.strip()}?",
                      abort=True, err=True)
    view = run(lambda d, a: d.servers.delete(a, domain, server), account=account)
    _report(view, "removed", json_)


@servers_app.command("auto-configure")
def servers_auto_configure(domain: DomainArg, account: AccountOption = None,
                           yes: YesOption = False, json_: JsonOption = False) -> None:
    """Deliver the domain's mail to the hosting servers ("throw the switch").

    Replaces every mail server of the domain with the hosting host at preference 0.
    """
    if json_ and not yes:
        usage_error("--json needs --yes (there is no one to answer the question)")
    if not yes:
        typer.confirm(f"Replace every mail server of {domain.strip()} with the hosting "
                      "servers?", abort=True, err=True)
    views = run(lambda d, a: d.servers.auto_configure_hosting(a, domain), account=account)
    if json_:
        print_json({"message": HOSTING_SETUP_DONE, "servers": views})
        return
    out().print(HOSTING_SETUP_DONE)
    _print_servers(views)


def _report(view: MailServerView, done: str, json_: bool) -> None:
    if json_:
        print_json(view)
    else:
        out().print(f"{done} mail server {esc(view.address)} (preference {view.preference}) "
                    f"for {esc(view.domain)}")
