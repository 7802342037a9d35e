"""``mailward audit``: the audit log — who changed what, when, and from where.

With ``--account`` only that account's entries are shown (what its admin sees); the
operator sees every entry, including operator-wide ones (new accounts, operator users).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from mailward.core.audit import AuditView
from mailward.core.paging import Page
from mailward.directory.audit_log import MAX_PER_PAGE

from .context import AccountOption, JsonOption, run
from .output import empty_page, esc, out, page_summary, print_json, usage_error

audit_app = typer.Typer(help="The audit log: every change, who made it, when, from where.",
                        no_args_is_help=True)


def _when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or time (a date alone is its midnight; no offset means UTC)."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        usage_error(f"{option} {value!r} is not an ISO 8601 date or time "
                    "(e.g. 2026-11-25 or 2026-11-25T06:30:00+00:00)")


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


@audit_app.command("list")
def audit_list(
    account: AccountOption = None,
    action: Annotated[
        str | None, typer.Option("--action", metavar="PREFIX", show_default=False,
                                 help='Only actions starting with this, e.g. "address."')
    ] = None,
    who: Annotated[
        str | None, typer.Option("--who", metavar="TEXT", show_default=False,
                                 help="Only changes by logins containing this.")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", metavar="TEXT", show_default=False,
                                 help="Only changes whose target contains this.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="ISO", show_default=False,
                                 help="Only changes at or after this time (UTC if no offset).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="ISO", show_default=False,
                                 help="Only changes at or before this time (UTC if no offset).")
    ] = None,
    page: Annotated[int, typer.Option("--page", "-p", help="Page number, from 1.")] = 1,
    per_page: Annotated[
        int, typer.Option("--per-page", help=f"Entries per page (1-{MAX_PER_PAGE}).")
    ] = 50,
    json_: JsonOption = False,
) -> None:
    """Changes, newest first: time, account, who (and from where), action, target, detail."""
    start, end = _when(since, "--since"), _when(until, "--until")
    result: Page[AuditView] = run(
        lambda d, a: d.audit.search(a, action=action, who=who, target=target, since=start,
                                    until=end, page=page, per_page=per_page),
        account=account,
    )
    if json_:
        print_json(result)
        return
    console = out()
    if not result.items:
        console.print(empty_page(result, "change(s)", "no changes match"))
        return
    table = Table()
    table.add_column("Time (UTC)", no_wrap=True)
    table.add_column("Account", overflow="fold")
    table.add_column("Who", overflow="fold")
    table.add_column("From", no_wrap=True)
    table.add_column("Action", no_wrap=True)
    table.add_column("Target", overflow="fold")
    table.add_column("Detail", overflow="fold")
    for entry in result.items:
        table.add_row(
            _time(entry.at),
            esc(entry.account) if entry.account else "-",
            esc(entry.actor),
            esc(entry.source),
            esc(entry.action),
            esc(entry.target),
            esc(entry.detail) or "-",
        )
    console.print(table)
    console.print(page_summary(result, "change(s)"))
