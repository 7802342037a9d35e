"""One POP3 session: AUTHORIZATION → TRANSACTION → UPDATE (RFC 1939, 2449, 2595, 5034).

Commands are read one line at a time and answered in order, so a client may pipeline
them (RFC 2449 PIPELINING).

Each connection counts in ``mailward_connections_total{role="pop3"}``, an admitted one in
``mailward_sessions{protocol="pop3"}`` while it lasts, each command's time in
``mailward_command_seconds``; its log lines carry a session id (``session=``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from typing import Protocol

from mailward.net.limits import ConnectionLimiter
from mailward.net.lines import OVERLONG, close_writer, read_line
from mailward.net.sasl import decode_sasl_plain
from mailward.obs.logs import reset_context, set_context
from mailward.obs.metrics import COMMAND_SECONDS, CONNECTIONS, SESSIONS
from mailward.pop3.commands import (
    Command,
    CommandError,
    capabilities,
    err,
    message_body,
    multiline,
    ok,
    parse_command,
    parse_number,
)
from mailward.pop3.maildrop import Entry, Maildrop, MaildropLocks
from mailward.store import MailStore, StoreError
from mailward.trace.ids import new_id

log = logging.getLogger(__name__)

MAX_ERRORS = 20  # malformed/failed commands before the session is closed
READ_LIMIT = 4096  # longest line buffered (SASL continuation lines may exceed 255)
REFUSE_TIMEOUT = 10.0  # seconds to send the refusal to a client over the connection caps


class Pop3Authenticator(Protocol):
    """Checks credentials; the caller adds directory lookups and rate limiting."""

    async def authenticate(self, login: str, password: str, peer: str) -> str | None:
        """The mailbox address (lower-case) for these credentials, else ``None``.

        Raise :class:`LoginDeferred` when the login may not be tried now (locked).
        """
        ...


class LoginDeferred(Exception):
    """The login is temporarily refused (e.g. after too many failures): not a bad password."""


class _Close(Exception):
    """End the session after the response already written."""


class Pop3Session:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        authenticator: Pop3Authenticator,
        store: MailStore,
        locks: MaildropLocks,
        hostname: str,
        tls_context: ssl.SSLContext | None,
        tls_active: bool,
        allow_plaintext_auth: bool,
        timeout: float,
        preauth_timeout: float | None = None,
        limiter: ConnectionLimiter | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.authenticator = authenticator
        self.store = store
        self.locks = locks
        self.hostname = hostname
        self.tls_context = tls_context
        self.tls_active = tls_active
        self.allow_plaintext_auth = allow_plaintext_auth
        self.timeout = timeout
        self.preauth_timeout = timeout if preauth_timeout is None else preauth_timeout
        self.limiter = limiter
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else str(peer or "")
        self.user: str | None = None
        self.maildrop: Maildrop | None = None
        self.errors = 0
        self.session_id = new_id()

    # -- I/O -----------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(self.timeout):
            await self.writer.drain()

    async def read_line(self) -> bytes | None:
        """The next line (``OVERLONG`` if it exceeded the buffer), ``None`` at EOF.

        The client may be silent for ``preauth_timeout`` until it has logged in, then for
        ``timeout``.
        """
        limit = self.timeout if self.maildrop is not None else self.preauth_timeout
        async with asyncio.timeout(limit):
            return await read_line(self.reader)

    async def run(self) -> None:
        CONNECTIONS.labels("pop3").inc()
        tokens = set_context(session=self.session_id)
        try:
            await self._run()
        finally:
            reset_context(tokens)

    async def _run(self) -> None:
        peer = self.writer.get_extra_info("peername")
        refused = self.limiter.admit(peer) if self.limiter is not None else None
        if refused is not None:  # RFC 3206: a temporary condition
            with contextlib.suppress(Exception):
                self.writer.write(err(refused.capitalize(), "SYS/TEMP"))
                async with asyncio.timeout(REFUSE_TIMEOUT):
                    await self.writer.drain()
            await close_writer(self.writer, REFUSE_TIMEOUT)
            return
        sessions = SESSIONS.labels("pop3")
        sessions.inc()
        try:
            await self.send(ok(f"{self.hostname} POP3 ready"))
            while True:
                line = await self.read_line()
                if line is None:
                    return
                try:
                    await self.dispatch(line)
                except _Close:
                    return
        except TimeoutError:
            with contextlib.suppress(Exception):
                self.writer.write(err("Idle timeout, closing connection"))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            sessions.dec()
            if self.maildrop is not None:
                with contextlib.suppress(Exception):
                    await self.locks.release(self.maildrop.mailbox)
            if self.limiter is not None:  # before closing: the client may come back at once
                self.limiter.release(peer)
            await close_writer(self.writer, None)


    async def fail(self, text: str, code: str | None = None) -> None:
        """Answer ``-ERR``; close the session after too many of them."""
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            await self.send(err("Too many errors, closing connection"))
            raise _Close
        await self.send(err(text, code))

    # -- dispatch ------------------------------------------------------------------

    async def dispatch(self, line: bytes) -> None:
        if line is OVERLONG:
            await self.fail("Line too long")
            return
        try:
            cmd = parse_command(line)
        except CommandError as exc:
            await self.fail(str(exc))
            return
        if self.maildrop is None:
            handler = _AUTHORIZATION.get(cmd.verb)
        else:
            handler = _TRANSACTION.get(cmd.verb)
        if handler is None:
            await self.fail("Unknown command or not allowed in this state")
            return
        started = time.perf_counter()
        try:
            await handler(self, cmd)
        finally:
            COMMAND_SECONDS.labels("pop3", cmd.verb).observe(time.perf_counter() - started)

    # -- any state ----------------------------------------------------------------

    @property
    def auth_allowed(self) -> bool:
        return self.tls_active or self.allow_plaintext_auth

    async def do_capa(self, cmd: Command) -> None:
        caps = capabilities(
            auth_allowed=self.auth_allowed,
            stls=self.tls_context is not None and not self.tls_active,
            authorization=self.maildrop is None,
        )
        await self.send(multiline(ok("Capability list follows"), caps))

    async def do_noop(self, cmd: Command) -> None:
        await self.send(ok())

    async def do_quit(self, cmd: Command) -> None:
        if self.maildrop is None:
            await self.send(ok("Bye"))
            raise _Close
        maildrop, self.maildrop = self.maildrop, None
        try:  # UPDATE state
            removed = await maildrop.commit()
        except StoreError:
            log.exception("POP3 update failed for %s", maildrop.mailbox)
            reply = err("Some deleted messages not removed", "SYS/TEMP")
        else:
            reply = ok(f"Bye ({removed} messages deleted)")
        # Unlock before answering: once the client has the +OK, the maildrop is free.
        with contextlib.suppress(Exception):
            await self.locks.release(maildrop.mailbox)
        await self.send(reply)
        raise _Close

    # -- AUTHORIZATION -------------------------------------------------------------

    async def do_stls(self, cmd: Command) -> None:
        if self.tls_context is None or self.tls_active:
            await self.fail("STLS not available")
            return
        await self.send(ok("Begin TLS negotiation"))
        # Discard anything pipelined in plaintext after STLS (command injection).
        self.reader._buffer.clear()  # type: ignore[attr-defined]
        async with asyncio.timeout(self.timeout):
            await self.writer.start_tls(self.tls_context)
        self.tls_active = True
        self.user = None

    async def do_user(self, cmd: Command) -> None:
        if not self.auth_allowed:
            await self.fail("Plaintext authentication disallowed without TLS", "AUTH")
            return
        if not cmd.rest:
            await self.fail("USER needs a name")
            return
        self.user = cmd.rest
        await self.send(ok())

    async def do_pass(self, cmd: Command) -> None:
        user, self.user = self.user, None
        if user is None:
            await self.fail("USER first")
            return
        await self.login(user, cmd.rest)

    async def do_auth(self, cmd: Command) -> None:
        if not cmd.args:
            await self.send(multiline(ok("Mechanisms follow"), ["PLAIN"]))
            return
        if cmd.args[0].upper() != "PLAIN" or len(cmd.args) > 2:
            await self.fail("Unsupported authentication mechanism")
            return
        if not self.auth_allowed:
            await self.fail("Plaintext authentication disallowed without TLS", "AUTH")
            return
        if len(cmd.args) == 2:
            response = cmd.args[1]
        else:
            await self.send(b"+ \r\n")
            line = await self.read_line()
            if line is None:
                raise _Close
            response = line.rstrip(b"\r\n").decode("ascii", "replace")
            if response == "*":
                await self.fail("Authentication cancelled")
                return
        creds = decode_sasl_plain(response)
        if creds is None:
            await self.fail("Malformed SASL PLAIN response")
            return
        await self.login(*creds)

    async def login(self, login: str, password: str) -> None:
        try:
            mailbox = await self.authenticator.authenticate(login, password, self.peer)
        except LoginDeferred as exc:
            await self.fail(str(exc) or "Login temporarily refused", "SYS/TEMP")
            return
        if mailbox is None:
            await self.fail("Authentication failed", "AUTH")
            return
        if not await self.locks.acquire(mailbox):
            await self.fail("Maildrop already locked by another session", "IN-USE")
            return
        try:
            self.maildrop = await Maildrop.open(self.store, mailbox)
        except StoreError:
            await self.locks.release(mailbox)
            log.exception("POP3 could not open maildrop %s", mailbox)
            await self.fail("Maildrop temporarily unavailable", "SYS/TEMP")
            return
        count, size = self.maildrop.stat()
        await self.send(ok(f"Maildrop has {count} messages ({size} octets)"))

    # -- TRANSACTION ---------------------------------------------------------------

    async def _message(self, cmd: Command, nargs: int = 1) -> tuple[int, int] | None:
        """Parse the message number argument; answer ``-ERR`` and return None if bad."""
        if len(cmd.args) != nargs:
            await self.fail(f"{cmd.verb} takes {nargs} argument(s)")
            return None
        number = parse_number(cmd.args[0])
        if number is None:
            await self.fail("Invalid message number")
            return None
        assert self.maildrop is not None
        if self.maildrop.get(number) is None:
            await self.fail("No such message")
            return None
        return number, len(cmd.args)

    async def do_stat(self, cmd: Command) -> None:
        assert self.maildrop is not None
        count, size = self.maildrop.stat()
        await self.send(ok(f"{count} {size}"))

    async def _listing(self, cmd: Command, value: Callable[[Entry], object]) -> None:
        assert self.maildrop is not None
        if not cmd.args:
            lines = [f"{n} {value(e)}" for n, e in self.maildrop.live()]
            await self.send(multiline(ok(), lines))
            return
        found = await self._message(cmd)
        if found is not None:
            entry = self.maildrop.get(found[0])
            assert entry is not None
            await self.send(ok(f"{found[0]} {value(entry)}"))

    async def do_list(self, cmd: Command) -> None:
        await self._listing(cmd, lambda e: e.size)

    async def do_uidl(self, cmd: Command) -> None:
        assert self.maildrop is not None
        await self._listing(cmd, self.maildrop.uidl)

    async def _send_message(self, number: int, body_lines: int | None) -> None:
        assert self.maildrop is not None
        entry = self.maildrop.get(number)
        assert entry is not None
        try:
            data = await self.maildrop.fetch(entry)
        except StoreError:
            await self.fail("Message no longer available")
            return
        first = ok(f"{len(data)} octets")
        await self.send(first + message_body(data, body_lines))

    async def do_retr(self, cmd: Command) -> None:
        found = await self._message(cmd)
        if found is not None:
            await self._send_message(found[0], None)

    async def do_top(self, cmd: Command) -> None:
        if len(cmd.args) == 2 and parse_number(cmd.args[1]) is None:
            await self.fail("Invalid line count")
            return
        found = await self._message(cmd, nargs=2)
        if found is not None:
            await self._send_message(found[0], parse_number(cmd.args[1]))

    async def do_dele(self, cmd: Command) -> None:
        found = await self._message(cmd)
        if found is not None:
            assert self.maildrop is not None
            entry = self.maildrop.get(found[0])
            assert entry is not None
            entry.deleted = True
            await self.send(ok(f"Message {found[0]} deleted"))

    async def do_rset(self, cmd: Command) -> None:
        assert self.maildrop is not None
        self.maildrop.reset()
        count, size = self.maildrop.stat()
        await self.send(ok(f"Maildrop has {count} messages ({size} octets)"))


_ANY = {"CAPA": Pop3Session.do_capa, "NOOP": Pop3Session.do_noop, "QUIT": Pop3Session.do_quit}
_AUTHORIZATION = {
    **_ANY,
    "STLS": Pop3Session.do_stls,
    "USER": Pop3Session.do_user,
    "PASS": Pop3Session.do_pass,
    "AUTH": Pop3Session.do_auth,
}
_AUTHORIZATION.pop("NOOP")  # NOOP is a TRANSACTION command (RFC 1939)
_TRANSACTION = {
    **_ANY,
    "STAT": Pop3Session.do_stat,
    "LIST": Pop3Session.do_list,
    "UIDL": Pop3Session.do_uidl,
    "RETR": Pop3Session.do_retr,
    "TOP": Pop3Session.do_top,
    "DELE": Pop3Session.do_dele,
    "RSET": Pop3Session.do_rset,
}
