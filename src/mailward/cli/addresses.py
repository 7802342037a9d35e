"""``mailward address``: search, show, set up, edit, move and delete addresses (docs/procedures.md).

``address add`` (the bulk form) lives in :mod:`mailward.cli.bulk`.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated

import typer
from rich.table import Table

from mailward.app import Services
from mailward.core.normalize import normalize_domain
from mailward.core.paging import Page
from mailward.db.models import AddressKind, AddressList
from mailward.directory import Actor, AddressFilter, InvalidInput
from mailward.directory.mail_login import LoginLockView
from mailward.directory.views import AddressView

from .bulk import address_add
from .context import AccountOption, JsonOption, YesOption, run
from .output import empty_page, esc, human_bytes, out, page_summary, print_json, report, usage_error
from .prompt import PasswordStdinOption, new_password

address_app = typer.Typer(help="Addresses on the Filter / Do Not Filter lists.",
                          no_args_is_help=True)
address_app.command("add")(address_add)

AddressArg = Annotated[str, typer.Argument(metavar="ADDRESS", help="The email address.")]
DestinationsArg = Annotated[
    str,
    typer.Argument(
        metavar="DESTS",
        help="Comma-separated destination addresses (at most 128 characters in all).",
    ),
]
SearchOption = Annotated[
    str | None, typer.Option("--search", "-s", help="Part of the address to look for.",
                             show_default=False)
]
DomainOption = Annotated[
    str | None, typer.Option("--domain", "-d", help="Only addresses of this domain.",
                             show_default=False)
]
ListFilterOption = Annotated[
    AddressList | None,
    typer.Option("--list", "-l", case_sensitive=False, help="Only addresses on this list.",
                 show_default=False),
]
KindOption = Annotated[
    AddressKind | None,
    typer.Option("--kind", "-k", case_sensitive=False, help="Only addresses of this kind.",
                 show_default=False),
]

KIND_LABELS = {
    AddressKind.PENDING: "pending",
    AddressKind.MAILBOX: "mailbox",
    AddressKind.FORWARDER: "forwarder",
    AddressKind.AUTOCC: "mailbox → auto-cc",
}


def _has_mailbox(view: AddressView) -> bool:
    return view.kind in (AddressKind.MAILBOX, AddressKind.AUTOCC)


def _usage(view: AddressView) -> str:
    if not _has_mailbox(view):
        return "-"
    return f"{human_bytes(view.used_bytes)} / {human_bytes(view.quota_bytes)}"


def _criteria(search: str | None, domain: str | None, list_: AddressList | None,
              kind: AddressKind | None) -> AddressFilter:
    """The search; an IDN domain is matched by its stored ASCII form."""
    if domain is not None:
        with suppress(InvalidInput):  # an invalid name simply matches nothing
            domain = normalize_domain(domain)
    return AddressFilter(search=search or "", domain=domain, list=list_, kind=kind)


def _describe(criteria: AddressFilter) -> str:
    parts = []
    if criteria.search:
        parts.append(f"containing {criteria.search!r}")
    if criteria.domain:
        parts.append(f"of domain {criteria.domain}")
    if criteria.list is not None:
        parts.append(f"on list {criteria.list.value}")
    if criteria.kind is not None:
        parts.append(f"of kind {criteria.kind.value}")
    return " ".join(parts) if parts else "(no filter: every address you can see)"


# -- reading ---------------------------------------------------------------------------


@address_app.command("list")
def address_list(
    account: AccountOption = None,
    search: SearchOption = None,
    domain: DomainOption = None,
    list_: ListFilterOption = None,
    kind: KindOption = None,
    page: Annotated[int, typer.Option("--page", "-p", help="Page number, from 1.")] = 1,
    per_page: Annotated[int, typer.Option("--per-page", help="Addresses per page (1-500).")] = 50,
    json_: JsonOption = False,
) -> None:
    """Search addresses; pending ones are marked "needs setup"."""
    criteria = _criteria(search, domain, list_, kind)
    result: Page[AddressView] = run(
        lambda d, a: d.addresses.search(a, criteria, page=page, per_page=per_page),
        account=account,
    )
    if json_:
        print_json(result)
        return
    console = out()
    if not result.items:
        console.print(empty_page(result, "address(es)", "no addresses match"))
        return
    longest = max(len(view.email) for view in result.items)
    table = Table()
    table.add_column("Address", overflow="fold", min_width=min(longest, 48))
    table.add_column("List", no_wrap=True)
    table.add_column("Kind", overflow="fold")
    table.add_column("Destinations", overflow="fold")
    table.add_column("Used / quota", no_wrap=True)
    table.add_column("Setup", no_wrap=True)
    for view in result.items:
        table.add_row(
            esc(view.email),
            view.list.value,
            KIND_LABELS[view.kind],
            esc(", ".join(view.destinations)) or "-",
            _usage(view),
            "[yellow]needs setup[/]" if view.needs_setup else "",
        )
    console.print(table)
    console.print(page_summary(result, "address(es)"))


@address_app.command("show")
def address_show(address: AddressArg, account: AccountOption = None,
                 json_: JsonOption = False) -> None:
    """Show one address."""
    view = run(lambda d, a: d.addresses.get(a, address), account=account)
    if json_:
        print_json(view)
        return
    locked = 0
    if view.kind in (AddressKind.MAILBOX, AddressKind.AUTOCC):
        locked = run(lambda d, a: d.mail_login.lock_state(a, d.addresses, address),
                     account=account).locked_seconds
    _print_details(view, locked)


def _print_details(view: AddressView, locked: int = 0) -> None:
    console = out()
    rows = [
        ("address", esc(view.email)),
        ("domain", esc(view.domain)),
        ("list", view.list.value),
        ("kind", KIND_LABELS[view.kind]),
        ("destinations", esc(", ".join(view.destinations)) or "-"),
        ("used / quota", _usage(view)),
    ]
    if view.needs_setup:
        rows.append(("setup", "[yellow]needs setup[/] (address setup ADDRESS --mailbox | "
                              "--forward DESTS)"))
    if locked:
        rows.append(("logins", f"[red]locked[/] for {_duration(locked)} after failed "
                               "attempts (address unlock ADDRESS)"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        console.print(f"{label:<{width}}  {value}")


def _duration(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{round(seconds / 60)} min"


@address_app.command("unlock")
def address_unlock(address: AddressArg, account: AccountOption = None,
                   json_: JsonOption = False) -> None:
    """Lift the lock that failed logins put on a mailbox (POP3, IMAP, submission, web),
    on every node; the user's next login is checked as usual."""
    async def unlock(d: Services, a: Actor) -> tuple[LoginLockView, LoginLockView]:
        was = await d.mail_login.lock_state(a, d.addresses, address)
        return was, await d.mail_login.unlock(a, d.addresses, address)

    was, view = run(unlock, account=account)
    message = (f"logins of [bold]{esc(view.email)}[/] unlocked (locked for another "
               f"{_duration(was.locked_seconds)})" if was.locked_seconds else
               f"logins of [bold]{esc(view.email)}[/] were not locked")
    report(view, message, json_)


# -- setting up and editing ------------------------------------------------------------


def _exists(address: str, account: str | None) -> None:
    """Fail before prompting for a password when the address is not there."""
    run(lambda d, a: d.addresses.get(a, address), account=account)


@address_app.command("setup")
def address_setup(
    address: AddressArg,
    mailbox: Annotated[
        bool, typer.Option("--mailbox", help="Set it up as a mailbox (asks for a password).")
    ] = False,
    forward: Annotated[
        str | None,
        typer.Option("--forward", metavar="DESTS", show_default=False,
                     help="Set it up as an alias/forwarder to these comma-separated addresses."),
    ] = None,
    password_stdin: PasswordStdinOption = False,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Set up a pending address as a mailbox or as an alias/forwarder."""
    if mailbox == (forward is not None):
        usage_error("give exactly one of --mailbox or --forward DESTS")
    if password_stdin and not mailbox:
        usage_error("--password-stdin goes with --mailbox")
    if mailbox:
        _exists(address, account)
        password, repeat = new_password(password_stdin)
        view = run(lambda d, a: d.addresses.setup_mailbox(a, address, password, repeat),
                   account=account)
        report(view, f"[bold]{esc(view.email)}[/] is set up as a mailbox", json_)
        return
    assert forward is not None
    view = run(lambda d, a: d.addresses.setup_forwarder(a, address, forward), account=account)
    report(view, f"[bold]{esc(view.email)}[/] forwards to {esc(', '.join(view.destinations))}",
          json_)


@address_app.command("password")
def address_password(
    address: AddressArg,
    password_stdin: PasswordStdinOption = False,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Change the password of a mailbox (or auto-cc) address."""
    _exists(address, account)
    password, repeat = new_password(password_stdin, label="New password")
    view = run(lambda d, a: d.addresses.set_password(a, address, password, repeat),
               account=account)
    report(view, f"password changed for [bold]{esc(view.email)}[/]", json_)


@address_app.command("forward")
def address_forward(
    address: AddressArg,
    destinations: DestinationsArg,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Change the destinations of a forwarder or auto-cc address."""
    view = run(lambda d, a: d.addresses.set_destinations(a, address, destinations),
               account=account)
    report(view, f"[bold]{esc(view.email)}[/] forwards to {esc(', '.join(view.destinations))}",
          json_)


@address_app.command("autocc")
def address_autocc(
    address: AddressArg,
    destinations: Annotated[
        str | None,
        typer.Argument(metavar="DESTS", show_default=False,
                       help="Comma-separated addresses that get a copy of every message."),
    ] = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Drop the auto-cc: a plain mailbox again.")
    ] = False,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Give a mailbox auto-cc destinations, change them, or remove them (--remove)."""
    if remove == (destinations is not None):
        usage_error("give either DESTS or --remove")
    if remove:
        view = run(lambda d, a: d.addresses.remove_autocc(a, address), account=account)
        report(view, f"auto-cc removed: [bold]{esc(view.email)}[/] is a plain mailbox", json_)
        return
    assert destinations is not None
    view = run(lambda d, a: d.addresses.set_autocc(a, address, destinations), account=account)
    report(view, f"[bold]{esc(view.email)}[/] keeps its mailbox and auto-cc's to "
                f"{esc(', '.join(view.destinations))}", json_)


@address_app.command("move")
def address_move(
    address: AddressArg,
    list_: Annotated[
        AddressList, typer.Option("--list", "-l", case_sensitive=False, help="The list to move to.")
    ],
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Move an address to the Filter or Do Not Filter list."""
    view = run(lambda d, a: d.addresses.set_list(a, address, list_), account=account)
    report(view, f"[bold]{esc(view.email)}[/] is on list {view.list.value}", json_)


# -- deleting --------------------------------------------------------------------------


@address_app.command("delete")
def address_delete(
    addresses: Annotated[
        list[str] | None,
        typer.Argument(metavar="ADDRESS", show_default=False,
                       help="Addresses to delete (all or none are deleted)."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Delete every address the filter options match.")
    ] = False,
    search: SearchOption = None,
    domain: DomainOption = None,
    list_: ListFilterOption = None,
    kind: KindOption = None,
    yes: YesOption = False,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Delete addresses by name, or every address matching a search (--all)."""
    filtering = any(v is not None for v in (search, domain, list_, kind))
    if addresses and all_:
        usage_error("give addresses or --all, not both")
    if addresses and filtering:
        usage_error("--search/--domain/--list/--kind select addresses only with --all")
    if not addresses and not all_:
        usage_error("name the addresses to delete, or use --all (with --search/--domain/"
                    "--list/--kind to narrow it)")
    if json_ and not yes:
        usage_error("--json needs --yes (there is no one to answer the question)")

    if addresses:
        if not yes:
            typer.confirm(f"Delete {len(addresses)} address(es): {', '.join(addresses)}?",
                          abort=True, err=True)
        deleted = run(lambda d, a: d.addresses.delete(a, addresses), account=account)
        message = f"deleted {len(deleted)} address(es): {esc(', '.join(deleted))}"
        report({"count": len(deleted), "addresses": deleted}, message, json_)
        return

    criteria = _criteria(search, domain, list_, kind)
    if not yes:
        found = run(lambda d, a: d.addresses.search(a, criteria, per_page=1), account=account)
        if found.total == 0:
            out().print("no addresses match")
            return
        typer.confirm(f"Delete all {found.total} address(es) {_describe(criteria)}?",
                      abort=True, err=True)
    count = run(lambda d, a: d.addresses.delete_matching(a, criteria), account=account)
    report({"count": count, "addresses": None}, f"deleted {count} address(es)", json_)

