"""Idle outgoing SMTP connections, kept per destination for the next message.

As Postfix's connection cache (scache): after a transaction that left the session clean,
:class:`mailward.queue.relay.Relay` puts the connection here; the next delivery to the
same destination (:class:`Destination`: server address and port, the MX name it stands
for, our HELO name) takes it instead of connecting, so several messages share one
connection. A taken connection belongs to its one taker until it is put back: never two
transactions at once on one connection.

Bounded: idle connections per destination and in total (the longest idle is closed to
make room), idle time (a timer per connection closes it: no polling), messages per
connection and age since connect. A connection the server closed while idle is noticed
when taken (aiosmtplib marks it disconnected) and dropped; one that dies at its first
command is the relay's to retry on a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple, cast

import aiosmtplib

from mailward.config import Settings

# Defaults, as the ``relay_connection_*`` settings' defaults (mailward.config).
IDLE_SECONDS = 5.0
PER_DESTINATION = 20
TOTAL = 200
MAX_USES = 100
MAX_AGE_SECONDS = 300.0
QUIT_SECONDS = 5.0  # longest wait for a QUIT reply when closing idle connections


def connection_cache(settings: Settings) -> ConnectionCache:
    """The cache the ``relay_connection_*`` settings describe."""
    return ConnectionCache(
        idle_seconds=settings.relay_connection_cache_seconds,
        per_destination=settings.relay_connection_cache_per_destination,
        total=settings.relay_connection_cache_total,
        max_uses=settings.relay_connection_max_uses,
        max_age_seconds=settings.relay_connection_max_age_seconds,
    )


class Destination(NamedTuple):
    """What a connection may be reused for: the same server, name and greeting."""

    host: str
    port: int
    name: str | None
    helo: str


@dataclass(eq=False)
class Connection:
    """One connected SMTP session, and how much it has been used."""

    smtp: aiosmtplib.SMTP
    destination: Destination
    born: float = field(default_factory=time.monotonic)
    uses: int = 0  # transactions started on it
    timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)

    @property
    def age(self) -> float:
        return time.monotonic() - self.born


def hang_up(connection: Connection) -> None:
    """Close without waiting: QUIT is written (politeness, no reply awaited) and the
    socket closed."""
    smtp = connection.smtp
    transport = smtp.transport
    if smtp.is_connected and transport is not None and not transport.is_closing():
        with contextlib.suppress(Exception):
            cast(asyncio.WriteTransport, transport).write(b"QUIT\r\n")
    smtp.close()


async def quit_politely(smtp: aiosmtplib.SMTP, wait: float | None = None) -> None:
    """QUIT and close; a connection that fails even that is just closed."""
    if not smtp.is_connected:
        smtp.close()
        return
    try:
        await smtp.quit(timeout=wait if wait is not None else smtp.timeout)
    except (aiosmtplib.SMTPException, OSError):
        smtp.close()


class ConnectionCache:
    """Idle connections by destination, most recently used first."""

    def __init__(self, *, idle_seconds: float = IDLE_SECONDS,
                 per_destination: int = PER_DESTINATION, total: int = TOTAL,
                 max_uses: int = MAX_USES, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self.per_destination = per_destination
        self.total = total
        self.max_uses = max_uses
        self.max_age_seconds = max_age_seconds
        self._idle: dict[Destination, list[Connection]] = {}
        self._order: OrderedDict[Connection, None] = OrderedDict()  # longest idle first
        self._closed = False

    @property
    def enabled(self) -> bool:
        return (not self._closed and self.idle_seconds > 0 and self.per_destination > 0
                and self.total > 0 and self.max_uses > 1)

    def __len__(self) -> int:
        return len(self._order)

    def idle(self, destination: Destination) -> int:
        """Idle connections kept for ``destination``."""
        return len(self._idle.get(destination, ()))

    def reusable(self, connection: Connection) -> bool:
        """Whether ``connection`` may carry another message."""
        return (connection.smtp.is_connected and connection.uses < self.max_uses
                and connection.age < self.max_age_seconds)

    def take(self, destination: Destination) -> Connection | None:
        """An idle connection to ``destination``, now the caller's; None if there is none."""
        stack = self._idle.get(destination)
        loop = asyncio.get_running_loop()
        while stack:
            connection = stack.pop()
            self._forget(connection)
            if connection.loop is not loop:  # left by an earlier event loop: unusable
                continue
            if self.reusable(connection):
                return connection
            hang_up(connection)
        return None

    def put(self, connection: Connection) -> bool:
        """Keep ``connection`` idle for its destination; False when it is not kept (the
        caller closes it then)."""
        if not self.enabled or not self.reusable(connection):
            return False
        if self.idle(connection.destination) >= self.per_destination:
            return False
        while len(self._order) >= self.total:
            oldest = next(iter(self._order))
            self._remove(oldest)
            hang_up(oldest)
        self._idle.setdefault(connection.destination, []).append(connection)
        self._order[connection] = None
        wait = min(self.idle_seconds, self.max_age_seconds - connection.age)
        connection.timer = connection.loop.call_later(max(wait, 0.0), self._expire, connection)
        return True

    async def aclose(self) -> None:
        """QUIT every idle connection and keep no more (shutdown)."""
        self._closed = True
        connections = list(self._order)
        for connection in connections:
            self._remove(connection)
        loop = asyncio.get_running_loop()
        connections = [c for c in connections if c.loop is loop]
        await asyncio.gather(*(quit_politely(c.smtp, min(c.smtp.timeout or QUIT_SECONDS,
                                                         QUIT_SECONDS))
                               for c in connections))

    def _expire(self, connection: Connection) -> None:
        connection.timer = None
        if connection in self._order:
            self._remove(connection)
            hang_up(connection)

    def _remove(self, connection: Connection) -> None:
        stack = self._idle.get(connection.destination)
        if stack is not None and connection in stack:
            stack.remove(connection)
        self._forget(connection)

    def _forget(self, connection: Connection) -> None:
        """Out of the bookkeeping (already off its stack), its timer cancelled."""
        self._order.pop(connection, None)
        if connection.timer is not None:
            connection.timer.cancel()
            connection.timer = None
        stack = self._idle.get(connection.destination)
        if stack is not None and not stack:
            del self._idle[connection.destination]
