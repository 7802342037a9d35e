"""Live updates of the mail pages: ``/mail/events`` (Server-Sent Events: ``change``
whenever the mailbox's version changes) and ``/mail/poll`` (the version as JSON, for
clients without EventSource).

A stream waits on the store's :class:`~mailward.store.MailboxEvents` for the mailbox
(IMAP IDLE's notices: deliveries, other sessions' changes, other nodes' changes), and
re-reads the version at least every ``HEARTBEAT_SECONDS`` in any case (for changes no
event announces, e.g. another program writing the Maildir), sending a comment line as a
heartbeat when nothing changed. A stream ends after ``STREAM_SECONDS`` (the
browser reconnects, and the login is checked again) or when the server begins to stop;
a session may hold ``MAX_STREAMS`` at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncGenerator
from typing import Any

from litestar import Request, get
from litestar.exceptions import HTTPException
from litestar.params import FromQuery
from litestar.response import ServerSentEvent, ServerSentEventMessage

from mailward.store import MailboxEvents
from mailward.web.context import context_of
from mailward.web.sessions import mail_cookie_name
from mailward.web.webmail.common import mailbox_of, webmail_of
from mailward.webmail import Webmail

__all__ = ["HANDLERS", "HEARTBEAT_SECONDS", "MAX_STREAMS", "STREAM_SECONDS", "changes"]

HEARTBEAT_SECONDS = 10.0
STREAM_SECONDS = 600.0
MAX_STREAMS = 4
RETRY_MS = 3000  # how long the browser waits before reconnecting

_streams: Counter[str] = Counter()  # open streams per session (this process)


class TooManyStreams(HTTPException):
    status_code = 429


def _events_of(webmail: Webmail) -> MailboxEvents | None:
    """The change notices of the store, when it announces its changes."""
    events = getattr(webmail.store, "events", None)
    return events if isinstance(events, MailboxEvents) else None


async def _next_notice(events: MailboxEvents | None, mailbox: str, notice: int,
                       seconds: float, stopping: asyncio.Event) -> int | None:
    """The events' next version for the mailbox (or the same after ``seconds``; without
    events, after ``seconds``); None when the server stops first."""
    waiter: asyncio.Future[Any] = asyncio.ensure_future(
        events.wait(mailbox, notice, seconds) if events is not None
        else asyncio.sleep(seconds, notice))
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in (waiter, stop):
            future.cancel()
    return None if stopping.is_set() or not waiter.done() or waiter.cancelled() \
        else int(waiter.result())


async def changes(webmail: Webmail, mailbox: str, since: str | None = None, *,
                  stopping: asyncio.Event | None = None,
                  heartbeat: float = HEARTBEAT_SECONDS, lifetime: float = STREAM_SECONDS
                  ) -> AsyncGenerator[tuple[str, str], None]:
    """``("ready", version)``, then ``("change", version)`` whenever the mailbox's version
    changes (at once if it is no longer ``since``, the version the page was rendered at),
    else ``("heartbeat", version)`` every ``heartbeat`` seconds; ends after ``lifetime``
    or when ``stopping`` is set."""
    stopping = stopping if stopping is not None else asyncio.Event()
    events = _events_of(webmail)
    notice: int | None = events.version(mailbox) if events is not None else 0
    last = await webmail.mailboxes.version(mailbox)
    yield "ready", last
    if since is not None and since != last:  # changed between the page and this stream
        yield "change", last
    ends = time.monotonic() + lifetime
    while (left := ends - time.monotonic()) > 0:
        assert notice is not None
        notice = await _next_notice(events, mailbox, notice, min(heartbeat, left), stopping)
        if notice is None:
            return
        current = await webmail.mailboxes.version(mailbox)
        if current != last:
            last = current
            yield "change", current
        else:
            yield "heartbeat", current


@get("/mail/events", include_in_schema=False)
async def events(request: Request[Any, Any, Any],
                 v: FromQuery[str | None] = None) -> ServerSentEvent:
    """The mailbox's changes as Server-Sent Events (``ready``, then ``change``) since
    version ``v`` (the page's)."""
    webmail, mailbox = webmail_of(request), mailbox_of(request)
    web = context_of(request)
    stopping = web.stopping
    session = request.cookies.get(mail_cookie_name(web.settings), mailbox)
    if _streams[session] >= MAX_STREAMS:
        raise TooManyStreams("too many open update streams for this session")

    async def stream() -> AsyncGenerator[ServerSentEventMessage, None]:
        _streams[session] += 1  # counted once it runs: its ``finally`` then uncounts it
        try:
            async for kind, version in changes(webmail, mailbox, v, stopping=stopping):
                if kind == "heartbeat":
                    yield ServerSentEventMessage(comment="keepalive")
                else:
                    yield ServerSentEventMessage(event=kind, data=version, retry=RETRY_MS)
        finally:
            _streams[session] -= 1
            if _streams[session] <= 0:
                del _streams[session]

    return ServerSentEvent(stream(), headers={"Cache-Control": "no-store",
                                              "X-Accel-Buffering": "no"})


@get("/mail/poll", include_in_schema=False)
async def poll(request: Request[Any, Any, Any]) -> dict[str, str]:
    """``{"version": ...}``: a client compares it with the last one it saw."""
    return {"version": await webmail_of(request).mailboxes.version(mailbox_of(request))}


HANDLERS = [events, poll]
