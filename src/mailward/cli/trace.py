"""``mailward trace``: the message trace — search, show a message's whole story, prune.

The operator sees every trace; an account (``--account``) only the traces of mail for (or
from) its own domains, and in them only its own events and the message-level ones.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from mailward.app import Services
from mailward.core.paging import to_json
from mailward.directory import Actor
from mailward.trace.retention import Pruned
from mailward.trace.search import (
    DEFAULT_DAYS,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    OUTCOMES,
    TraceEventView,
    TraceQuery,
    TraceStory,
    TraceSummary,
)

from .context import AccountOption, JsonOption, run
from .output import esc, fail, out, print_json, usage_error

trace_app = typer.Typer(
    help="Message trace: search and show every event of a message's life.",
    no_args_is_help=True)

TraceIdArg = Annotated[
    str, typer.Argument(metavar="TRACE_ID",
                        help="The trace id, or the queue id of any copy of the message.")
]
RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
DETAIL_WIDTH = 100
DETAIL_KEYS = ("reply", "reason", "server", "ip", "score", "action", "helo", "tls_version",
               "folder", "to", "copy_queue_id", "dsn_queue_id", "by", "duration_ms",
               "latency_ms", "attempt", "size")


def parse_time(value: str | None, now: datetime) -> datetime | None:
    """``2h``/``3d``/``30m``/``1w`` ago, or an ISO 8601 time (UTC unless it says)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    relative = RELATIVE.match(text.lower())
    if relative:
        return now - timedelta(**{UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        usage_error(f"not a time: {value!r} (ISO 8601 such as 2026-12-07T10:00, or 30m, "
                    "2h, 3d, 1w ago)")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str | None, width: int) -> str:
    line = " ".join((text or "").split()) or "-"
    return line if len(line) <= width else line[: width - 1] + "…"


# -- search -------------------------------------------------------------------------------


@trace_app.command("search")
def trace_search(
    sender: Annotated[str | None, typer.Option(
        "--sender", metavar="EMAIL", show_default=False, help="Envelope sender.")] = None,
    recipient: Annotated[str | None, typer.Option(
        "--recipient", metavar="EMAIL", show_default=False, help="Envelope recipient.")] = None,
    subject: Annotated[str | None, typer.Option(
        "--subject", show_default=False,
        help="Part of the subject (case-insensitive).")] = None,
    message_id: Annotated[str | None, typer.Option(
        "--message-id", show_default=False, help="The Message-ID header.")] = None,
    queue_id: Annotated[str | None, typer.Option(
        "--queue-id", show_default=False,
        help="The trace id or the queue id of any copy.")] = None,
    ip: Annotated[str | None, typer.Option(
        "--ip", show_default=False, help="The sending client's IP address.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", show_default=False,
        help=f"From this time: ISO 8601 (UTC) or 30m/2h/3d/1w ago (default: "
             f"{DEFAULT_DAYS} days before --until).")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", show_default=False, help="Up to this time (default: now).")] = None,
    outcome: Annotated[str | None, typer.Option(
        "--outcome", show_default=False,
        help=f"The trace's final outcome: {', '.join(OUTCOMES)}.")] = None,
    limit: Annotated[int, typer.Option(
        "--limit", "-n", help=f"Most traces shown (1-{MAX_LIMIT}).")] = DEFAULT_LIMIT,
    after: Annotated[str | None, typer.Option(
        "--after", metavar="CURSOR", show_default=False,
        help="Continue a search: the cursor printed under the previous page.")] = None,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Traces matching every given field, newest first (searched: the last 7 days)."""
    if not 1 <= limit <= MAX_LIMIT:
        usage_error(f"--limit must be 1-{MAX_LIMIT}")
    now = datetime.now(UTC)
    query = TraceQuery(sender=sender, recipient=recipient, subject=subject,
                       message_id=message_id, queue_id=queue_id, peer=ip,
                       since=parse_time(since, now), until=parse_time(until, now),
                       outcome=outcome, limit=limit)
    found: list[TraceSummary] = run(lambda s, a: s.tracing.search(a, query, after),
                                    account=account)
    more = found[-1].cursor if len(found) == limit else None
    if json_:
        print_json({"items": found, "next": more})
        return
    console = out()
    if not found:
        console.print("no traces match" + (" after that cursor" if after else ""))
        return
    table = Table()
    table.add_column("Trace ID", no_wrap=True)
    table.add_column("Last event", no_wrap=True)
    table.add_column("Sender", overflow="fold")
    table.add_column("Recipients", overflow="fold")
    table.add_column("Subject", overflow="fold")
    table.add_column("Outcome", no_wrap=True)
    for summary in found:
        table.add_row(summary.trace_id, _time(summary.last_at),
                      esc(_sender(summary.sender)), esc(", ".join(summary.recipients) or "-"),
                      esc(_short(summary.subject, 50)), summary.outcome or "-")
    console.print(table)
    line = f"{len(found)} trace(s), newest first (times in UTC)"
    if more:
        line += f"; more: --after {more}"
    console.print(line)


def _sender(sender: str | None) -> str:
    if sender is None:
        return "-"
    return sender or "<> (null sender)"


# -- one trace ----------------------------------------------------------------------------


@trace_app.command("show")
def trace_show(trace_id: TraceIdArg, account: AccountOption = None,
               json_: JsonOption = False) -> None:
    """One message's story: every event of it in order (connection, answers, verdicts,
    delivery attempts, copies, bounces)."""
    story: TraceStory | None = run(lambda s, a: s.tracing.story(a, trace_id),
                                   account=account)
    if story is None:
        fail(f"no trace {trace_id.strip()!r}")
    if json_:
        print_json(story)
        return
    summary = story.summary
    console = out()
    rows = [
        ("trace id", summary.trace_id),
        ("sender", esc(_sender(summary.sender))),
        ("recipients", esc(", ".join(summary.recipients) or "-")),
        ("subject", esc(summary.subject or "-")),
        ("message-id", esc(summary.message_id or "-")),
        ("client", esc(summary.peer or "-")),
        ("queue ids", ", ".join(summary.queue_ids) or "-"),
        ("outcome", summary.outcome or "-"),
        ("first", f"{_time(summary.first_at)} UTC"),
        ("last", f"{_time(summary.last_at)} UTC"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        console.print(f"{label:<{width}}  {value}")
    table = Table(title=f"{len(story.events)} event(s)", title_justify="left")
    table.add_column("Time", no_wrap=True)
    table.add_column("Event", no_wrap=True)
    table.add_column("Outcome", no_wrap=True)
    table.add_column("Queue ID", no_wrap=True)
    table.add_column("Address", overflow="fold")
    table.add_column("Detail", overflow="fold")
    for event in story.events:
        table.add_row(_time(event.at), event.kind, event.outcome, event.queue_id or "-",
                      esc(_address(event)), esc(_short(describe(event), DETAIL_WIDTH)))
    console.print(table)


def _address(event: TraceEventView) -> str:
    if event.recipient:
        return event.recipient
    if event.kind in ("mail", "submit") and event.sender is not None:
        return _sender(event.sender)
    return event.peer or "-"


def describe(event: TraceEventView) -> str:
    """The event's detail on one line: its telling keys first, findings counted."""
    detail: dict[str, Any] = dict(to_json(event.detail))
    parts = [f"{key}={_value(detail.pop(key))}" for key in DETAIL_KEYS if key in detail]
    findings = detail.pop("findings", None)
    if isinstance(findings, list) and findings:
        parts.append("findings=" + ",".join(
            str(f.get("check")) for f in findings if isinstance(f, dict)))
    parts += [f"{key}={_value(value)}" for key, value in detail.items()
              if not isinstance(value, dict | list)]
    return " ".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    text = str(value)
    return f'"{text}"' if " " in text else text


# -- retention ----------------------------------------------------------------------------


@trace_app.command("prune")
def trace_prune(json_: JsonOption = False) -> None:
    """Delete trace events past trace_retention_days now (the delivery role does it hourly)."""
    pruned = run(_prune)
    if json_:
        print_json(pruned)
        return
    out().print(f"pruned {pruned.events} trace event(s), {pruned.counts + pruned.top} "
                f"counter(s), {pruned.gauges} queue sample(s), {pruned.outbox} sent-mail "
                f"record(s) and {pruned.deliveries} delivery report(s)")


async def _prune(services: Services, actor: Actor) -> Pruned:
    actor.require_operator("prune the message trace")
    return await services.tracing.prune()
