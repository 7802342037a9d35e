"""``mailward queue``: the mail queue — list, show, retry now, delete (without a bounce).

An account (``--account``) sees and touches only the queued recipients of its own
domains; the operator sees everything, including mail leaving us (forwards, bounces).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from mailward.core.paging import Page
from mailward.db.models import utcnow
from mailward.queue.admin import MAX_PER_PAGE, QueueEntry, QueueMessageView

from .context import AccountOption, JsonOption, YesOption, run
from .output import empty_page, esc, human_bytes, out, page_summary, print_json, usage_error

queue_app = typer.Typer(help="The mail queue: messages waiting for delivery.",
                        no_args_is_help=True)


class QueueState(enum.StrEnum):
    """The states ``queue list --status`` filters on (``mailward.queue.admin.STATUSES``)."""

    QUEUED = "queued"
    DEFERRED = "deferred"
    ACTIVE = "active"
    HELD = "held"


QueueIdArg = Annotated[
    str, typer.Argument(metavar="QUEUE_ID", help="The message's queue id (see `queue list`).")
]

ERROR_WIDTH = 60
STATE_STYLES = {"deferred": "yellow", "held": "red", "active": "cyan"}


def _state(status: str) -> str:
    style = STATE_STYLES.get(status)
    return f"[{style}]{status}[/]" if style else status


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _next_attempt(entry: QueueEntry, now: datetime) -> str:
    if entry.status == QueueState.ACTIVE:
        return "delivering"
    return "now" if entry.next_attempt_at <= now else _time(entry.next_attempt_at)


def _short(text: str | None, width: int = ERROR_WIDTH) -> str:
    """The last error on one line, cut to ``width`` characters."""
    if not text:
        return "-"
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _sender(sender: str) -> str:
    return sender or "<> (null sender: a bounce)"


# -- reading ---------------------------------------------------------------------------


@queue_app.command("list")
def queue_list(
    account: AccountOption = None,
    domain: Annotated[
        str | None, typer.Option("--domain", "-d", help="Only recipients of this domain.",
                                 show_default=False)
    ] = None,
    status: Annotated[
        QueueState | None,
        typer.Option("--status", "-s", case_sensitive=False, show_default=False,
                     help="Only recipients in this state (held: deferred because the "
                          "domain has no mail server settings)."),
    ] = None,
    page: Annotated[int, typer.Option("--page", "-p", help="Page number, from 1.")] = 1,
    per_page: Annotated[
        int, typer.Option("--per-page", help=f"Recipients per page (1-{MAX_PER_PAGE}).")
    ] = 50,
    json_: JsonOption = False,
) -> None:
    """Queued recipients, oldest message first: one row per recipient of each message."""
    state = None if status is None else status.value
    result: Page[QueueEntry] = run(
        lambda d, a: d.queue.list(a, domain=domain, status=state, page=page,
                                  per_page=per_page),
        account=account,
    )
    if json_:
        print_json(result)
        return
    console = out()
    if not result.items:
        nothing = "no queued mail matches" if domain or status else "the queue is empty"
        console.print(empty_page(result, "queued recipient(s)", nothing))
        return
    now = utcnow()
    table = Table()
    table.add_column("Queue ID", no_wrap=True)
    table.add_column("Recipient", overflow="fold")
    table.add_column("Status", no_wrap=True)
    table.add_column("Attempts", justify="right", no_wrap=True)
    table.add_column("Next attempt", no_wrap=True)
    table.add_column("Last error", overflow="fold")
    for entry in result.items:
        table.add_row(
            entry.queue_id,
            esc(entry.recipient),
            _state(entry.status),
            str(entry.attempts),
            _next_attempt(entry, now),
            esc(_short(entry.last_error)),
        )
    console.print(table)
    console.print(page_summary(result, "queued recipient(s)") + " (times in UTC)")


@queue_app.command("show")
def queue_show(queue_id: QueueIdArg, account: AccountOption = None,
               json_: JsonOption = False) -> None:
    """One queued message: envelope, subject, size, and every recipient's state."""
    view = run(lambda d, a: d.queue.show(a, queue_id), account=account)
    if json_:
        print_json(view)
        return
    _print_message(view)


def _print_message(view: QueueMessageView) -> None:
    console = out()
    rows = [
        ("queue id", view.queue_id),
        ("sender", esc(_sender(view.sender))),
        ("subject", esc(view.subject) if view.subject is not None else "-"),
        ("size", human_bytes(view.size) + (f" ({view.size} bytes)" if view.size >= 1024 else "")),
        ("origin", esc(view.origin)),
        ("peer", esc(view.peer) if view.peer else "-"),
        ("received", f"{_time(view.received_at)} UTC"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        console.print(f"{label:<{width}}  {value}")
    now = utcnow()
    table = Table(title=f"{len(view.recipients)} recipient(s)", title_justify="left")
    table.add_column("Recipient", overflow="fold")
    table.add_column("Status", no_wrap=True)
    table.add_column("Attempts", justify="right", no_wrap=True)
    table.add_column("Next attempt", no_wrap=True)
    table.add_column("Last error", overflow="fold")
    for entry in view.recipients:
        table.add_row(
            esc(entry.recipient),
            _state(entry.status),
            str(entry.attempts),
            _next_attempt(entry, now),
            esc(entry.last_error) if entry.last_error else "-",
        )
    console.print(table)


# -- acting ----------------------------------------------------------------------------


@queue_app.command("retry")
def queue_retry(queue_id: QueueIdArg, account: AccountOption = None,
                json_: JsonOption = False) -> None:
    """Make a message's waiting recipients due now (queued, deferred and held ones)."""
    view = run(lambda d, a: d.queue.retry(a, queue_id), account=account)
    if json_:
        print_json(view)
        return
    waiting = [e for e in view.recipients if e.status != QueueState.ACTIVE]
    busy = len(view.recipients) - len(waiting)
    message = f"queued message {view.queue_id}: {len(waiting)} recipient(s) due now"
    if busy:
        message += f" ({busy} being delivered already)"
    out().print(message)


@queue_app.command("delete")
def queue_delete(queue_id: QueueIdArg, account: AccountOption = None,
                 yes: YesOption = False, json_: JsonOption = False) -> None:
    """Remove a message's recipients from the queue without delivering or bouncing it.

    With --account only that account's recipients of the message are removed.
    """
    if json_ and not yes:
        usage_error("--json needs --yes (there is no one to answer the question)")
    if not yes:
        found = run(lambda d, a: d.queue.show(a, queue_id), account=account)
        typer.confirm(
            f"Delete queued message {found.queue_id} for {len(found.recipients)} "
            f"recipient(s): {', '.join(e.recipient for e in found.recipients)}? "
            "No bounce is sent.",
            abort=True, err=True,
        )
    view = run(lambda d, a: d.queue.delete(a, queue_id), account=account)
    if json_:
        print_json(view)
        return
    out().print(f"deleted queued message {view.queue_id} for {len(view.recipients)} "
                f"recipient(s): {esc(', '.join(e.recipient for e in view.recipients))}")
