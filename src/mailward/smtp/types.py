"""What the SMTP listeners hand to the services behind them, and what they get back.

The listener (``mailward.smtp.mx``) speaks the protocol; an ``InboundSink`` decides.
Keeping this boundary small lets the protocol be tested with a scripted sink and the
services be tested without a socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply: basic code, enhanced status code (RFC 3463) and text."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


@dataclass(frozen=True, slots=True)
class RecipientParams:
    """One RCPT TO: the address and its DSN parameters (RFC 3461)."""

    address: str
    notify: tuple[str, ...] = ()  # e.g. ("FAILURE", "DELAY") or ("NEVER",); empty = default
    orcpt: str | None = None  # ORCPT value as given ("rfc822;user@example.com")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message as received: the envelope, peer facts, and the bytes to spool.

    ``data`` already starts with our ``Received:`` header and uses CRLF line endings.
    """

    sender: str  # "" for the null reverse-path
    recipients: tuple[RecipientParams, ...]
    data: bytes
    peer: str  # client IP address
    helo: str
    tls: bool
    authenticated_as: str | None = None
    envid: str | None = None  # MAIL FROM ENVID=
    ret: str | None = None  # MAIL FROM RET=FULL|HDRS
    smtputf8: bool = False
    body: str | None = None  # MAIL FROM BODY=7BIT|8BITMIME
    extra: dict[str, str] = field(default_factory=dict)


class InboundSink(Protocol):
    """The service side of a listener."""

    async def check_recipient(self, address: str) -> Reply:
        """Answer RCPT TO for ``address`` (already stripped of <>); 250 accepts it."""
        ...

    async def accept(self, envelope: Envelope) -> Reply:
        """Take responsibility for the message (durably) or refuse it; 250 = accepted."""
        ...
