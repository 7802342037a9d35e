"""``mailward domain``: customer domains, their hosting switch, catch-all and aliases."""

from __future__ import annotations

import enum
from typing import Annotated

import typer
from rich.table import Table

from mailward.app import Services
from mailward.core.normalize import normalize_domain
from mailward.directory import Actor, AddressFilter
from mailward.directory.aliases import AliasService, AliasVerification, DomainAliasView
from mailward.directory.views import DomainView
from mailward.dkim import DkimRecordView, DkimService
from mailward.dns.verify import UNVERIFIED_EFFECT, find_proof, verify_domain, verify_record

from .context import AccountOption, JsonOption, YesOption, run, settings
from .output import esc, fail, out, print_json, report, usage_error

domain_app = typer.Typer(help="Customer domains.", no_args_is_help=True)

DomainArg = Annotated[str, typer.Argument(metavar="DOMAIN", help="Domain name (IDN allowed).")]


class OnOff(enum.StrEnum):
    ON = "on"
    OFF = "off"


@domain_app.command("add")
def domain_add(
    domain: DomainArg,
    account: Annotated[
        str, typer.Option("--account", "-a", metavar="NAME", help="The account that owns it.")
    ],
    hosting: Annotated[bool, typer.Option("--hosting", help="Host its mailboxes here.")] = False,
    json_: JsonOption = False,
) -> None:
    """Add a domain to an account (operator only; it is verified at once)."""
    view = run(lambda d, a: d.domains.create(a, domain, account=account, hosting=hosting))
    if json_:
        print_json(view)
        return
    out().print(
        f"added domain [bold]{esc(view.display_name)}[/] to account {esc(view.account)}"
        + (" (hosting on)" if view.hosting else "")
    )


@domain_app.command("list")
def domain_list(account: AccountOption = None, json_: JsonOption = False) -> None:
    """List domains (with --account: that account's domains)."""
    views = run(lambda d, a: d.domains.list(a), account=account)
    if json_:
        print_json(views)
        return
    if not views:
        out().print("no domains")
        return
    table = Table("Domain", "Account", "Hosting", "Verified", "Created")
    for view in views:
        name = view.name if view.name == view.display_name else f"{view.display_name} ({view.name})"
        table.add_row(
            esc(name), esc(view.account), "on" if view.hosting else "off",
            _verified(view), view.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out().print(table)


def _verified(view: DomainView) -> str:
    return f"yes ({view.verified_by})" if view.verified else "no"


def _print_domain(view: DomainView) -> None:
    console = out()
    name = view.name if view.name == view.display_name else f"{view.display_name} ({view.name})"
    console.print(f"[bold]{esc(name)}[/]  account {esc(view.account)}, hosting "
                  f"{'on' if view.hosting else 'off'}, added "
                  f"{view.created_at.strftime('%Y-%m-%d %H:%M')}")
    if view.verified and view.verified_at is not None:
        console.print(f"verified by {esc(view.verified_by)} on "
                      f"{view.verified_at.strftime('%Y-%m-%d %H:%M')}")
        return
    console.print(f"[bold]not verified[/]: {esc(UNVERIFIED_EFFECT)}")
    console.print("to verify, publish this TXT record (or MX records naming our filtering "
                  f"hosts), then run: mailward domain verify {esc(view.name)}")
    console.print(esc(verify_record(view)))


@domain_app.command("show")
def domain_show(domain: DomainArg, account: AccountOption = None, json_: JsonOption = False
                ) -> None:
    """Show one domain: hosting, and whether it is verified (and how to verify it)."""
    view = run(lambda d, a: d.domains.get(a, domain), account=account)
    if json_:
        print_json(view)
        return
    _print_domain(view)


@domain_app.command("verify")
def domain_verify(
    domain: DomainArg,
    operator: Annotated[bool, typer.Option(
        "--operator", help="Mark it verified without DNS proof (operator only; audit-logged)."
    )] = False,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Check DNS now for the domain's proof of control (its TXT token, or MX records naming
    our filtering hosts); exit 1 when not verified."""
    config = settings()
    result = run(lambda d, a: verify_domain(d.directory, config, a, domain, operator=operator),
                 account=account)
    if json_:
        print_json(result.domain)
    else:
        _print_domain(result.domain)
    if not result.verified:
        fail(result.detail)
    if not json_:
        out().print(esc(result.detail))


@domain_app.command("hosting")
def domain_hosting(
    domain: DomainArg,
    state: Annotated[OnOff, typer.Argument(metavar="on|off", case_sensitive=False)],
    json_: JsonOption = False,
) -> None:
    """Switch hosting on or off for a domain (operator only)."""
    view = run(lambda d, a: d.domains.set_hosting(a, domain, state is OnOff.ON))
    report(view, f"hosting {state.value} for [bold]{esc(view.display_name)}[/]", json_)


@domain_app.command("delete")
def domain_delete(
    domain: DomainArg,
    force: Annotated[
        bool, typer.Option("--force", help="Also delete the addresses on the domain.")
    ] = False,
    yes: YesOption = False,
    json_: JsonOption = False,
) -> None:
    """Delete a domain (operator only); with addresses on it only with --force."""
    if json_ and not yes:
        usage_error("--json needs --yes (there is no one to answer the question)")
    if not yes:

        async def inspect(services: Services, actor: Actor) -> tuple[str, int]:
            view = await services.domains.get(actor, domain)
            found = await services.addresses.search(
                actor, AddressFilter(domain=view.name), per_page=1
            )
            return view.name, found.total

        name, count = run(inspect)
        what = f"domain {name}"
        if count and force:
            what += f" and its {count} address(es)"
        typer.confirm(f"Delete {what}?", abort=True, err=True)
    deleted = run(lambda d, a: d.domains.delete(a, domain, force=force))
    name = normalize_domain(domain)  # valid: the service has just found it
    if json_:
        print_json({"domain": name, "deleted_addresses": deleted})
    else:
        also = f" and its {deleted} address(es)" if deleted else ""
        out().print(f"deleted domain [bold]{esc(name)}[/]{also}")


@domain_app.command("dkim")
def domain_dkim(
    domain: DomainArg,
    rotate: Annotated[
        bool,
        typer.Option("--rotate", help="Make a new key under a new selector; it signs at once."),
    ] = False,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Show the DKIM TXT record to publish for a domain (with --rotate: a new key first)."""

    async def action(services: Services, actor: Actor) -> DkimRecordView:
        service = DkimService(services.db)
        if rotate:
            return await service.rotate(actor, domain)
        return await service.record(actor, domain)

    view = run(action, account=account)
    if json_:
        print_json(view)
        return
    console = out()
    if rotate:
        console.print(
            f"new DKIM key for [bold]{esc(view.domain)}[/] (selector {esc(view.selector)}); "
            "publish this record, and keep the old one published for a few days:"
        )
    console.print(f"{esc(view.name)}. IN TXT " + " ".join(f'"{esc(s)}"' for s in view.strings))


# -- catch-all and alias domains (mailward.directory.aliases) -------------------------------


@domain_app.command("catch-all")
def domain_catch_all(
    domain: DomainArg,
    address: Annotated[str | None, typer.Argument(
        metavar="[ADDRESS]", help="One of the domain's mailboxes or forwarders.")] = None,
    off: Annotated[bool, typer.Option("--off", help="Turn the catch-all off.")] = False,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Show, set (ADDRESS) or turn off (--off) the domain's catch-all: the address that
    receives mail for unlisted names (it invites spam: dictionary attacks). Audit-logged."""
    if address is not None and off:
        usage_error("give an ADDRESS or --off, not both")
    if address is None and not off:
        view = run(lambda d, a: AliasService(d.db).catch_all(a, domain), account=account)
    else:
        view = run(lambda d, a: AliasService(d.db).set_catch_all(a, domain, address),
                   account=account)
    if json_:
        print_json(view)
        return
    if view.address is None:
        out().print(f"no catch-all for [bold]{esc(view.domain)}[/]: unlisted names are refused")
        return
    out().print(f"catch-all for [bold]{esc(view.domain)}[/]: {esc(view.address)}")
    out().print(f"warning: {esc(view.warning)}")


alias_app = typer.Typer(help="Alias domains: another name for a domain's addresses.",
                        no_args_is_help=True)
domain_app.add_typer(alias_app, name="alias")
AliasArg = Annotated[str, typer.Argument(metavar="ALIAS", help="The alias domain name.")]


def _print_alias(view: DomainAliasView) -> None:
    console = out()
    console.print(f"[bold]{esc(view.display_alias)}[/]  alias of {esc(view.domain)}, "
                  + (f"verified by {esc(view.verified_by)}" if view.verified else
                     "[bold]not verified[/]: it receives no mail until it is"))
    if not view.verified:
        console.print("to verify, publish this TXT record (or MX records naming our "
                      f"filtering hosts), then run: mailward domain alias verify "
                      f"{esc(view.alias)}")
        console.print(esc(f'{view.alias}. 3600 IN TXT "{view.verification_txt}"'))


@alias_app.command("add")
def alias_add(domain: DomainArg, alias: AliasArg, account: AccountOption = None,
              json_: JsonOption = False) -> None:
    """Make ALIAS deliver to DOMAIN's addresses (once ALIAS is verified)."""
    view = run(lambda d, a: AliasService(d.db).add_alias(a, domain, alias), account=account)
    if json_:
        print_json(view)
        return
    _print_alias(view)


@alias_app.command("list")
def alias_list(domain: DomainArg, account: AccountOption = None,
               json_: JsonOption = False) -> None:
    """List DOMAIN's alias domains."""
    views = run(lambda d, a: AliasService(d.db).aliases(a, domain), account=account)
    if json_:
        print_json(views)
        return
    if not views:
        out().print("no alias domains")
    for view in views:
        out().print(f"{esc(view.alias)}  "
                    + (f"verified ({esc(view.verified_by)})" if view.verified else "unverified"))


@alias_app.command("verify")
def alias_verify(
    alias: AliasArg,
    operator: Annotated[bool, typer.Option(
        "--operator", help="Mark it verified without DNS proof (operator only; audit-logged)."
    )] = False,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Check DNS now for the alias's proof of control; exit 1 when not verified."""
    config = settings()

    async def action(services: Services, actor: Actor) -> AliasVerification:
        return await AliasService(services.db).verify_alias(
            actor, alias, lambda view: find_proof(config, view), operator=operator)

    result = run(action, account=account)
    if json_:
        print_json(result.alias)
    else:
        _print_alias(result.alias)
    if not result.verified:
        fail(result.detail)
    if not json_:
        out().print(esc(result.detail))


@alias_app.command("delete")
def alias_delete(alias: AliasArg, account: AccountOption = None,
                 json_: JsonOption = False) -> None:
    """Remove an alias domain: its mail is refused again."""
    view = run(lambda d, a: AliasService(d.db).remove_alias(a, alias), account=account)
    report(view, f"removed alias domain [bold]{esc(view.alias)}[/] of {esc(view.domain)}", json_)
