"""``/panel/trace``: find a message's trace (a GET search form: sender, recipient, subject,
Message-ID, queue id, client IP, time range, outcome) and ``/panel/trace/{trace_id}``: its
story, every event in order told in plain words.

The trace service scopes both to the user: operators see every trace, resellers their
accounts', account admins their domains'; a trace outside that is 404. The story's words
come from :func:`describe`, which the webmail's own trace page shares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Template

from mailward.directory import Actor, InvalidInput, ServiceError
from mailward.trace.search import (
    OUTCOMES,
    TraceEventView,
    TraceQuery,
    TraceStory,
    TraceSummary,
)
from mailward.web.charts import ms_label
from mailward.web.panel.common import account_url, page, user_of, web_of

__all__ = [
    "FIELDS",
    "HANDLERS",
    "Fact",
    "Told",
    "describe",
    "form_of",
    "form_query",
    "more_cursor",
    "parse_query",
    "quarantine_ids",
    "tell",
]

PER_PAGE = 50
FIELDS: tuple[tuple[str, str, str], ...] = (
    # (query parameter, label, placeholder)
    ("sender", "Sender", "ann@example.com"),
    ("recipient", "Recipient", "bob@example.net"),
    ("subject", "Subject contains", "invoice"),
    ("message_id", "Message-ID", "<id@example.com>"),
    ("queue_id", "Queue ID", "18e4c2f0a1b…"),
    ("peer", "Client IP", "192.0.2.7"),
)
"""The text fields of the search form (the time range and outcome come after them)."""


@dataclass(frozen=True, slots=True)
class Fact:
    """One line of an event's details: ``label: text``, linked to ``href`` when set."""

    label: str
    text: str
    href: str | None = None


@dataclass(frozen=True, slots=True)
class Told:
    """An event as the story page shows it: a headline and its details."""

    event: TraceEventView
    headline: str
    facts: list[Fact] = field(default_factory=list)


# -- the search form ------------------------------------------------------------------------


def _when(text: str, name: str) -> datetime | None:
    """``2024-03-05T13:00`` (a datetime-local field), ``2024-03-05 13:00`` or
    ``2024-03-05``, read as UTC."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name} must be a date and time like 2024-03-05 13:00") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_query(params: Mapping[str, str], *, limit: int = PER_PAGE) -> TraceQuery:
    """The search form's fields as a :class:`TraceQuery` (InvalidInput when a time or
    the outcome is not one)."""
    outcome = params.get("outcome", "").strip().lower()
    if outcome and outcome not in OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(OUTCOMES)}")
    return TraceQuery(
        **{name: params.get(name, "").strip() or None for name, _, _ in FIELDS},
        since=_when(params.get("since", ""), "from"),
        until=_when(params.get("until", ""), "until"),
        outcome=outcome or None,
        limit=limit,
    )


def form_of(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The search form's fields as the request gave them (empty when not)."""
    names = [name for name, _, _ in FIELDS] + ["since", "until", "outcome"]
    return {name: request.query_params.get(name, "").strip() for name in names}


def form_query(form: Mapping[str, str]) -> str:
    """The filled fields as a query string (for paging and the way back)."""
    return urlencode({k: v for k, v in form.items() if v})


def more_cursor(results: Sequence[TraceSummary] | None, per_page: int = PER_PAGE) -> str:
    """The ``page`` of the next (older) results: after a full page, its last cursor."""
    return results[-1].cursor if results and len(results) >= per_page else ""


# -- the story in plain words ---------------------------------------------------------------

Link = Callable[[str], str]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _score(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else _text(value)


def _ms(value: object) -> str:
    return ms_label(float(value)) if isinstance(value, int | float) else _text(value)


def _addr(value: str | None) -> str:
    return f"<{value}>" if value is not None else "(none)"


def describe(event: TraceEventView, *, trace_link: Link,
             quarantine_links: Mapping[str, str] | None = None,
             trace_id: str | None = None) -> Told:
    """``event`` in plain words: a headline (what happened, to whom, the outcome) and its
    details (the server's reply, the reason, the verdict's findings, the server tried and
    how long it took, …). Queue ids of copies and DSNs link to their trace
    (``trace_link(queue_id)``); a quarantine id links where ``quarantine_links`` says. The
    event's queue id shows when it is not ``trace_id`` (the first copy's)."""
    d = dict(event.detail)
    facts: list[Fact] = []
    used: set[str] = set()

    def fact(label: str, key: str, fmt: Callable[[object], str] = _text) -> None:
        used.add(key)
        if d.get(key) not in (None, "", []):
            facts.append(Fact(label, fmt(d[key])))

    kind, outcome = event.kind, event.outcome
    who = event.recipient or event.mailbox or ""
    if kind == "connect":
        name = f" ({d['client_name']})" if d.get("client_name") else ""
        headline = f"Connection from {event.peer or 'an unknown address'}{name}"
        used.add("client_name")
        fact("HELO", "helo")
        used.update({"tls", "tls_version", "cipher"})
        if d.get("tls"):
            tls = " ".join(_text(d[k]) for k in ("tls_version", "cipher") if d.get(k))
            facts.append(Fact("TLS", tls or "yes"))
        else:
            facts.append(Fact("TLS", "no (plain text)"))
    elif kind == "submit":
        headline = f"Sent by {event.mailbox or event.sender or 'an authenticated user'}"
        if event.peer:
            facts.append(Fact("From", event.peer))
    elif kind == "mail":
        headline = f"MAIL FROM {_addr(event.sender)}"
        fact("Answer", "reply")
        fact("Size announced", "size", lambda v: f"{_text(v)} bytes")
    elif kind == "rcpt":
        headline = f"RCPT TO {_addr(event.recipient)} {outcome}"
        fact("Answer", "reply")
        fact("Why", "reason")
    elif kind == "data":
        headline = f"Message {outcome}"
        fact("Answer", "reply")
        fact("Why", "reason")
        fact("Size", "size", lambda v: f"{_text(v)} bytes")
        used.add("queue_ids")
        for queue_id in d.get("queue_ids") or []:
            facts.append(Fact("Queued as", str(queue_id), trace_link(str(queue_id))))
    elif kind == "verdict":
        headline = f"Filter verdict for {who}: {outcome}"
        used.update({"filtered", "findings"})
        if d.get("filtered") is False:
            facts.append(Fact("Filter", "not filtered (the address is on Do Not Filter)"))
        fact("Score", "score", _score)
        fact("Spam", "spam")
        fact("Action", "action")
        fact("Why", "reason")
        for finding in d.get("findings") or []:
            if isinstance(finding, Mapping):
                points = _score(finding.get("score", 0))
                facts.append(Fact(f"Finding {finding.get('check', '?')}",
                                  f"{points} points: {_text(finding.get('reason', ''))}"))
    elif kind == "attempt":
        number = f" {d['attempt']}" if d.get("attempt") else ""
        server = d.get("server") or "?"
        headline = f"Delivery attempt{number} for {who} to {server}: {outcome}"
        used.update({"attempt", "server"})
        fact("Server address", "ip")
        fact("Reply", "reply")
        fact("Took", "duration_ms", _ms)
        fact("Time in the queue", "latency_ms", _ms)
        fact("Next try", "next_attempt")
    elif kind == "mailbox":
        headline = f"Delivered to the mailbox {event.mailbox or who}"
        fact("Folder", "folder")
        fact("Time in the queue", "latency_ms", _ms)
    elif kind == "forward":
        copy = "auto-cc copy" if d.get("copy") == "autocc" else "forwarded copy"
        headline = f"A {copy} was queued"
        used.add("copy")
        fact("To", "to")
        used.add("copy_queue_id")
        if d.get("copy_queue_id"):
            queue_id = str(d["copy_queue_id"])
            facts.append(Fact("Copy's queue ID", queue_id, trace_link(queue_id)))
    elif kind == "bounce":
        headline = f"A delivery status notification (bounce) to {_addr(event.sender)} " \
                   "was queued"
        used.add("dsn_queue_id")
        if d.get("dsn_queue_id"):
            queue_id = str(d["dsn_queue_id"])
            facts.append(Fact("Its queue ID", queue_id, trace_link(queue_id)))
    elif kind == "expire":
        headline = f"Gave up on {who}: the message stayed too long in the queue"
        fact("Last reply", "reply")
    elif kind == "dequeue":
        headline = "Left the queue"
        fact("Why", "reason")
        fact("By", "by")
    elif kind == "quarantine":
        headline = f"Held in the quarantine for {who}"
        fact("Why", "reason")
        fact("Score", "score", _score)
    elif kind == "release":
        headline = f"Released from the quarantine to {who}"
        fact("By", "by")
    elif kind == "discard":
        headline = f"Deleted from the quarantine ({who})"
        fact("By", "by")
        fact("Why", "reason")
    else:
        headline = f"{kind} {outcome}"
    if "quarantine_id" in d:
        used.add("quarantine_id")
        quarantine_id = str(d["quarantine_id"])
        href = (quarantine_links or {}).get(quarantine_id)
        facts.append(Fact("Quarantine entry", f"#{quarantine_id}", href))
    if event.queue_id and event.queue_id != trace_id and kind not in (
            "connect", "mail", "rcpt", "submit", "data"):
        facts.append(Fact("Queue ID", event.queue_id))
    for key, value in d.items():  # anything else the recorder wrote
        if key not in used and value not in (None, "", [], {}):
            facts.append(Fact(key.replace("_", " "), _text(value)))
    return Told(event, headline, facts)


def tell(story: TraceStory, *, trace_link: Link,
         quarantine_links: Mapping[str, str] | None = None) -> list[Told]:
    return [describe(e, trace_link=trace_link, quarantine_links=quarantine_links,
                     trace_id=story.summary.trace_id) for e in story.events]


def quarantine_ids(events: Sequence[TraceEventView]) -> list[tuple[str, str | None]]:
    """(quarantine id, the event's domain) of every event that names a quarantine entry."""
    return [(str(e.detail["quarantine_id"]), e.domain) for e in events
            if e.detail.get("quarantine_id") not in (None, "")]


# -- the pages ------------------------------------------------------------------------------


def _actor(request: Request[Any, Any, Any]) -> Actor:
    """The user's actor (the service scopes to it); mailbox users have their webmail."""
    user = user_of(request)
    if user.mailbox is not None:
        raise NotFoundException("no such page")
    return user.actor


async def _home_account(request: Request[Any, Any, Any], actor: Actor) -> dict[str, Any]:
    """An account admin's account for the layout's menu (nothing for operators)."""
    if user_of(request).manages_accounts:
        return {}
    accounts = await web_of(request).services.accounts.list(actor)
    if not accounts:
        return {}
    return {"account": accounts[0], "account_base": account_url(accounts[0].name)}


def trace_href(queue_id: str) -> str:
    return f"/panel/trace/{quote(queue_id, safe='')}"


@get("/trace", include_in_schema=False)
async def search(
    request: Request[Any, Any, Any],
    page_cursor: Annotated[str, QueryParameter(name="page")] = "",
) -> Template:
    actor = _actor(request)
    form = form_of(request)
    error, results = None, None
    try:
        results = await web_of(request).services.tracing.search(
            actor, parse_query(form), page_cursor or None)
    except InvalidInput as exc:
        error = str(exc)
    return page(request, "trace.html", status=400 if error else 200, form=form,
                fields=FIELDS, outcomes=OUTCOMES, results=results, error=error,
                query=form_query(form), more=more_cursor(results), paged=bool(page_cursor),
                **await _home_account(request, actor))


@get("/trace/{trace_id:str}", include_in_schema=False)
async def story(request: Request[Any, Any, Any], trace_id: FromPath[str],
                back: FromQuery[str] = "") -> Template:
    actor = _actor(request)
    services = web_of(request).services
    found = await services.tracing.story(actor, trace_id)
    if found is None:
        raise NotFoundException("no such trace")
    links: dict[str, str] = {}
    for quarantine_id, domain in quarantine_ids(found.events):
        href = await _quarantine_href(request, actor, quarantine_id, domain)
        if href:
            links[quarantine_id] = href
    told = tell(found, trace_link=trace_href, quarantine_links=links)
    return page(request, "trace.html", story=found, told=told, back_query=back,
                **await _home_account(request, actor))


async def _quarantine_href(request: Request[Any, Any, Any], actor: Actor, quarantine_id: str,
                           domain: str | None) -> str | None:
    """The panel page of quarantine entry ``quarantine_id`` when it still exists and the
    user may open it: under the account of the event's domain."""
    if domain is None or not quarantine_id.isdigit():
        return None
    services = web_of(request).services
    try:
        account = (await services.domains.get(actor, domain)).account
        await services.quarantine.show(actor, int(quarantine_id))
    except ServiceError:
        return None
    return account_url(account, "quarantine", quarantine_id)


HANDLERS = [search, story]
