"""Real SMTP peers for mail-flow tests: scripted customer servers and our running roles.

``Sink`` is an aiosmtpd server on 127.0.0.1 (port 0) that plays a customer's mail
server: it answers each RCPT and DATA as the test scripts and records what it accepted.
``mail_roles`` runs our own ``mx`` + ``delivery`` roles in the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import smtplib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select, text

from mailward.app import Services
from mailward.config import Settings
from mailward.db import Database, QueuedMessage, QueuedRecipient
from mailward.server import run

WAIT = 30.0
Script = Callable[[str], str | None]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class Sink:
    """A scripted SMTP server; ``rcpt``/``data`` return a reply line or None for 250."""

    rcpt: Script = lambda _address: None
    data: Callable[[Envelope], str | None] = lambda _envelope: None
    received: list[Received] = field(default_factory=list)
    port: int = 0
    host: str = "127.0.0.1"
    connections: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, options: list[str]) -> str:
        reply = self.rcpt(address)
        if reply is None:
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self.data(envelope)
        if reply is not None:
            return reply
        async with self._changed:
            sender = "" if envelope.mail_from == "<>" else envelope.mail_from
            self.received.append(Received(sender, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or b"")))
            self._changed.notify_all()
        return "250 2.0.0 accepted by sink"

    async def wait_for(self, count: int, seconds: float = WAIT) -> list[Received]:
        """Until at least ``count`` messages arrived; returns them all."""
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.received) >= count), seconds
            )
            return list(self.received)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@contextlib.asynccontextmanager
async def sink_server(sink: Sink | None = None, *, host: str = "127.0.0.1", port: int = 0,
                      **script: Any) -> AsyncIterator[Sink]:
    sink = sink or Sink(**script)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        sink.connections += 1
        return SMTP(sink, hostname="sink.test", enable_SMTPUTF8=True, decode_data=False)

    server = await loop.create_server(factory, host=host, port=port)
    sink.host, sink.port = server.sockets[0].getsockname()[:2]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()


def mail_settings(settings: Settings, **overrides: Any) -> Settings:
    """Settings for a loopback mail system that retries quickly."""
    values = {
        "bind": "127.0.0.1", "port_mx": 0, "port_web": 0, "port_submission": 0,
        "port_submissions": 0, "port_pop3": 0, "port_pop3s": 0, "port_imap": 0,
        "port_imaps": 0, "port_managesieve": 0, "retry_first_seconds": 1,
        "retry_max_interval_seconds": 2, "queue_poll_seconds": 0.2,
        "smtp_hostname": "mx.mailward.test", "smtp_timeout_seconds": 10,
    }
    if settings.db_url.startswith("postgresql"):  # exercise the PostgreSQL mail store too
        values["store_backend"] = "postgresql"
    values.update(overrides)
    return settings.model_copy(update=values)


@contextlib.asynccontextmanager
async def mail_roles(settings: Settings, roles: frozenset[str] = frozenset({"mx", "delivery"})
                     ) -> AsyncIterator[dict[str, str]]:
    """Run our roles in this loop; yield ``{role: url}``; stop them afterwards."""
    started: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(settings, set(roles), ready=started.set_result))
    done, _ = await asyncio.wait({task, started}, timeout=WAIT,
                                 return_when=asyncio.FIRST_COMPLETED)
    if started not in done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise RuntimeError("mail roles did not start")
    try:
        yield started.result()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], Any], seconds: float = WAIT) -> Any:
    """Poll an async ``check`` until it returns something truthy (work is asynchronous)."""
    async with asyncio.timeout(seconds):
        while not (result := await check()):  # noqa: ASYNC110 - DB/disk state, no event
            await asyncio.sleep(0.05)
    return result


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def message(sender: str, to: str, subject: str, body: str = "Hello.\r\n") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{abs(hash((sender, to, subject)))}@client.example>\r\n\r\n{body}"
    ).encode()


def filter_mail(sender: str, to: str, subject: str, *, attachment: str | None = None,
                extra: dict[str, str] | None = None) -> bytes:
    """A well-formed message (Date, Message-ID) for the spam filter's tests; ``attachment``
    names an attached Windows executable."""
    msg = EmailMessage()
    for name, value in (extra or {}).items():
        msg[name] = value
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Sun, 06 Dec 2026 10:00:00 +0000"
    msg["Message-ID"] = f"<{subject.replace(' ', '')}@{sender.rsplit('@', 1)[-1]}>"
    msg.set_content("Hello,\nthe documents you asked for are attached.\nRegards\n")
    if attachment:
        msg.add_attachment(b"MZ\x90\x00", maintype="application", subtype="octet-stream",
                           filename=attachment)
    return msg.as_bytes().replace(b"\n", b"\r\n")


def smtp_send(port: int, sender: str, recipients: list[str], data: bytes) -> None:
    """One message over SMTP to our listener on loopback (blocking: run it in a thread)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, recipients, data)


async def queued_notices(directory: Services) -> list[tuple[list[str], EmailMessage]]:
    """The notices mailward queued itself (origin ``notice``: DNS status changes, quarantine
    digests) so far: (envelope recipients, parsed message), oldest first."""
    async with directory.db.session() as session:
        messages = list(await session.scalars(
            select(QueuedMessage).where(QueuedMessage.origin == "notice")
            .order_by(QueuedMessage.id)))
        found = []
        for message in messages:
            assert message.sender == ""  # null sender: no bounce loops
            recipients = sorted(await session.scalars(
                select(QueuedRecipient.recipient)
                .where(QueuedRecipient.message_id == message.id)))
            data = await directory.queue.spool.read(message)
            parsed = email.message_from_bytes(data, policy=email.policy.default)
            found.append((recipients, parsed))
    return found  # type: ignore[return-value]


@contextlib.asynccontextmanager
async def refused_queue_rows(db: Database, recipient: str) -> AsyncIterator[None]:
    """A database trigger refusing queue rows for ``recipient``: a real failure in the
    middle of a transaction that queues mail. Dropped on leaving (the PostgreSQL test
    database is shared by the tests)."""
    if db.is_sqlite:
        create = ["CREATE TRIGGER test_refuse BEFORE INSERT ON queue_recipients "
                  f"WHEN NEW.recipient = '{recipient}' BEGIN SELECT RAISE(ABORT, 'refused'); "
                  "END"]
        drop = ["DROP TRIGGER IF EXISTS test_refuse"]
    else:
        create = [
            "CREATE FUNCTION test_refuse() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.recipient = '{recipient}' THEN RAISE EXCEPTION 'refused'; END IF; "
            "RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER test_refuse BEFORE INSERT ON queue_recipients "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse()"]
        drop = ["DROP TRIGGER IF EXISTS test_refuse ON queue_recipients",
                "DROP FUNCTION IF EXISTS test_refuse()"]

    async def run(statements: list[str]) -> None:
        async with db.session() as session, session.begin():
            for statement in statements:
                await session.execute(text(statement))

    await run(create)
    try:
        yield
    finally:
        await run(drop)
