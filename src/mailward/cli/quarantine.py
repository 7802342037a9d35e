"""``mailward quarantine``: mail the spam filter held — list, show, download, release, delete.

An account (``--account``) sees and touches only the held copies of its own addresses;
the operator sees everything.
"""

from __future__ import annotations

import enum
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mailward.core.paging import Page
from mailward.quarantine.service import MAX_PER_PAGE, QuarantineDetail, QuarantineView

from .context import AccountOption, JsonOption, YesOption, run
from .output import (
    empty_page,
    err,
    esc,
    fail,
    human_bytes,
    out,
    page_summary,
    print_json,
    usage_error,
)

quarantine_app = typer.Typer(help="Mail the spam filter held: list, show, release, delete.",
                             no_args_is_help=True)


class QuarantineState(enum.StrEnum):
    """``quarantine list --status``: the service's states, and ``all``."""

    HELD = "held"
    RELEASED = "released"
    ALL = "all"


IdArg = Annotated[
    int, typer.Argument(metavar="ID", help="The quarantine id (see `quarantine list`).")
]

SUBJECT_WIDTH = 50


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, width: int = SUBJECT_WIDTH) -> str:
    line = " ".join(text.split()) or "-"
    return line if len(line) <= width else line[: width - 1] + "…"


def _from(view: QuarantineView) -> str:
    return view.from_header or view.sender or "<>"


def _status(view: QuarantineView) -> str:
    return "[red]held[/]" if view.status == "held" else view.status


# -- reading --------------------------------------------------------------------------------


@quarantine_app.command("list")
def quarantine_list(
    address: Annotated[
        str | None, typer.Option("--address", metavar="EMAIL", show_default=False,
                                 help="Only mail held for this address.")
    ] = None,
    domain: Annotated[
        str | None, typer.Option("--domain", "-d", show_default=False,
                                 help="Only mail held for this domain's addresses.")
    ] = None,
    status: Annotated[
        QuarantineState, typer.Option("--status", "-s", case_sensitive=False,
                                      help="held (waiting), released, or all.")
    ] = QuarantineState.HELD,
    page: Annotated[int, typer.Option("--page", "-p", help="Page number, from 1.")] = 1,
    per_page: Annotated[
        int, typer.Option("--per-page", help=f"Entries per page (1-{MAX_PER_PAGE}).")
    ] = 50,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Held mail, newest first: one row per recipient whose copy was held."""
    state = None if status is QuarantineState.ALL else status.value
    result: Page[QuarantineView] = run(
        lambda d, a: d.quarantine.list(a, address=address, domain=domain, status=state,
                                       page=page, per_page=per_page),
        account=account,
    )
    if json_:
        print_json(result)
        return
    console = out()
    if not result.items:
        nothing = ("nothing in the quarantine matches" if address or domain
                   or status is not QuarantineState.HELD else "the quarantine is empty")
        console.print(empty_page(result, "quarantined message(s)", nothing))
        return
    table = Table()
    table.add_column("ID", justify="right", no_wrap=True)
    table.add_column("Received", no_wrap=True)
    table.add_column("Recipient", overflow="fold")
    table.add_column("From", overflow="fold")
    table.add_column("Subject", overflow="fold")
    table.add_column("Score", justify="right", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    for view in result.items:
        table.add_row(str(view.id), _time(view.received_at), esc(view.recipient),
                      esc(_short(_from(view))), esc(_short(view.subject)), f"{view.score:.1f}",
                      _status(view))
    console.print(table)
    console.print(page_summary(result, "quarantined message(s)") + " (times in UTC)")


def _entry_rows(view: QuarantineView) -> list[tuple[str, str]]:
    rows = [
        ("id", str(view.id)),
        ("recipient", esc(view.recipient)),
        ("sender", esc(view.sender or "<>")),
        ("from", esc(view.from_header or "-")),
        ("subject", esc(view.subject or "-")),
        ("size", human_bytes(view.size)),
        ("score", f"{view.score:.1f}"),
        ("reason", esc(view.reason)),
        ("status", _status(view)),
        ("received", f"{_time(view.received_at)} UTC"),
        ("expires", f"{_time(view.expires_at)} UTC"),
    ]
    if view.released_at is not None:
        rows.append(("released", f"{_time(view.released_at)} UTC by "
                                 f"{esc(view.released_by or '-')}"))
    return rows


@quarantine_app.command("show")
def quarantine_show(entry_id: IdArg, account: AccountOption = None,
                    json_: JsonOption = False) -> None:
    """One held message: envelope, score and why, the filter's findings, its headers."""
    detail: QuarantineDetail = run(lambda d, a: d.quarantine.show(a, entry_id),
                                   account=account)
    if json_:
        print_json(detail)
        return
    console = out()
    rows = [*_entry_rows(detail.entry), ("peer", esc(detail.peer or "-"))]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        console.print(f"{label:<{width}}  {value}")
    if detail.findings:
        table = Table(title="findings", title_justify="left")
        table.add_column("Check", no_wrap=True)
        table.add_column("Score", justify="right", no_wrap=True)
        table.add_column("Reason", overflow="fold")
        for finding in detail.findings:
            table.add_row(esc(finding.get("check", "")),
                          f"{float(finding.get('score', 0.0)):+g}",  # type: ignore[arg-type]
                          esc(finding.get("reason", "")))
        console.print(table)
    console.print("headers:")
    console.print(esc(detail.headers.rstrip()))


@quarantine_app.command("download")
def quarantine_download(
    entry_id: IdArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", show_default=False,
                                  help="Write the message to FILE instead of stdout.")
    ] = None,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """The held message as it arrived (raw RFC 5322 bytes), on stdout or into FILE."""
    if json_ and output is None:
        usage_error("--json needs --output FILE (without it stdout is the message itself)")
    data: bytes = run(lambda d, a: d.quarantine.content(a, entry_id), account=account)
    if output is None:
        stream = typer.get_binary_stream("stdout")
        stream.write(data)
        stream.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
    if json_:
        print_json({"id": entry_id, "file": str(output.resolve()), "size": len(data)})
        return
    out().print(f"saved quarantined message {entry_id} ({human_bytes(len(data))}) "
                f"to {esc(output)}")


# -- acting ---------------------------------------------------------------------------------


@quarantine_app.command("release")
def quarantine_release(
    entry_id: IdArg,
    allow_sender: Annotated[
        bool, typer.Option("--allow-sender",
                           help="Also put the From address on the recipient's allow list.")
    ] = False,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Deliver a held message to its recipient; the domain's model learns it is not spam."""
    released = run(lambda d, a: d.quarantine.release(a, entry_id, allow_sender=allow_sender),
                   account=account)
    if json_:
        print_json(released)
        return
    console = out()
    console.print(f"released quarantined message {released.entry.id} to "
                  f"{esc(released.entry.recipient)}: queued as {released.queue_id}")
    if allow_sender and released.allowed:
        console.print(f"added {esc(released.allowed)} to {esc(released.entry.recipient)}'s "
                      "allow list")
    elif allow_sender:
        err().print("note: the sender was not allowed (the message has no single From "
                    "address)")


@quarantine_app.command("delete")
def quarantine_delete(entry_id: IdArg, account: AccountOption = None, yes: YesOption = False,
                      json_: JsonOption = False) -> None:
    """Delete a held message for its recipient, without delivering it."""
    if json_ and not yes:
        usage_error("--json needs --yes (there is no one to answer the question)")
    if not yes:
        found = run(lambda d, a: d.quarantine.show(a, entry_id), account=account).entry
        typer.confirm(f"Delete quarantined message {found.id} for {found.recipient} "
                      f"from {_from(found)} ({_short(found.subject)!r})?", abort=True, err=True)
    view = run(lambda d, a: d.quarantine.delete(a, entry_id), account=account)
    if json_:
        print_json(view)
        return
    out().print(f"deleted quarantined message {view.id} for {esc(view.recipient)}")
