"""The public inbound SMTP listener of the ``mx`` role: a thin aiosmtpd subclass.

Protocol events in, one sink call out (``InboundSink.check_recipient`` at RCPT,
``InboundSink.accept`` after DATA). Differences from stock aiosmtpd:

* our own command loop: enhanced status codes on every reply (RFC 2034), ``421`` after
  too many garbage lines, no AUTH on the MX;
* MAIL/RCPT parameters of DSN, SIZE, BODY, SMTPUTF8 and AUTH (``mailward.smtp.params``);
* DATA ends only at ``<CRLF>.<CRLF>`` and a message with a bare CR or LF is refused
  (SMTP smuggling, CVE-2023-51766; RFC 5321 §2.3.8);
* DATA past ``data_memory_bytes`` goes to a temporary file (``mailward.smtp.data``), and
  a message over the size limit is read to its end and dropped, never buffered whole; the
  whole message is loaded once, for the sink, when it has been received (at most
  ``LARGE_ACCEPTS`` spilled messages per listener at a time);
* connection caps (``ConnectionLimiter``): beyond them ``421 4.7.0`` and close (§3.8);
* our ``Received:`` header prepended to the bytes handed to the sink, its ``id`` the
  transaction's trace id (also the first queue id of what the sink spools).

Each connection has a session id and each MAIL a trace id, both in the log context of
every line the session logs; with a ``Trace`` the session's events are recorded
(``mailward.smtp.tracing``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, AnyStr

from aiosmtpd.smtp import SMTP, TLSSetupException

from mailward.net.limits import ConnectionLimiter
from mailward.obs import metrics
from mailward.obs.logs import SESSION, TRACE
from mailward.smtp.data import R_LINE_TOO_LONG, DataBuffer, read_data
from mailward.smtp.params import (
    MailParams,
    ParamError,
    parse_mail_params,
    parse_mailbox,
    parse_rcpt_params,
    split_path,
)
from mailward.smtp.received import (
    TlsInfo,
    new_id,
    peer_ip,
    protocol_name,
    received_header,
    system_reverse_dns,
)
from mailward.smtp.tracing import Scope, SessionTrace, parse_reply
from mailward.smtp.types import (
    Envelope,
    InboundSink,
    RecipientAnswer,
    RecipientParams,
    Reply,
    Transcript,
)
from mailward.trace.events import Kind, TraceEvent

if TYPE_CHECKING:
    from mailward.trace.recorder import Trace

log = logging.getLogger(__name__)

ReverseResolver = Callable[[str], Coroutine[Any, Any, str | None]]
"""``ip → verified host name or None``; used for the ``Received:`` header."""

IDENT = "mailward ESMTP"
DEFAULT_TIMEOUT = 300.0
RDNS_WAIT = 10.0  # at most this long at end of DATA for a reverse lookup still running
MAX_COMMAND_LINE = 512  # RFC 5321 §4.5.3.1.4, including CRLF
LARGE_ACCEPTS = 4  # spilled messages loaded whole for the sink at once, per listener

R_OK = "250 2.0.0 OK"
R_BAD_SYNTAX = "500 5.5.2 Error: bad syntax"
R_UNRECOGNIZED = "500 5.5.2 Error: command not recognized"
R_HELO_FIRST = "503 5.5.1 Error: send HELO/EHLO first"
R_NESTED_MAIL = "503 5.5.1 Error: nested MAIL command"
R_NEED_MAIL = "503 5.5.1 Error: need MAIL command"
R_NEED_RCPT = "503 5.5.1 Error: need RCPT command"
R_NO_VALID_RCPT = "554 5.5.1 Error: no valid recipients"
R_MAIL_SYNTAX = "501 5.5.4 Syntax: MAIL FROM:<address> [SP <parameters>]"
R_RCPT_SYNTAX = "501 5.5.4 Syntax: RCPT TO:<address> [SP <parameters>]"
R_BAD_SENDER = "501 5.1.7 Bad sender address syntax"
R_BAD_RCPT = "501 5.1.3 Bad recipient address syntax"
R_NEED_SMTPUTF8 = "553 5.6.7 Non-ASCII address requires SMTPUTF8"
R_TOO_MANY_RCPT = "452 4.5.3 Error: too many recipients"
R_TEMPFAIL = "451 4.3.0 Error: temporary failure, try again later"
R_TLS_READY = "220 2.0.0 Ready to start TLS"


@dataclass(slots=True)
class _Transaction:
    """State from MAIL to the end of DATA (or RSET)."""

    sender: str | None = None  # None: no MAIL yet; "" is the null reverse-path
    params: MailParams = field(default_factory=MailParams)
    recipients: list[RecipientParams] = field(default_factory=list)
    rcpt_seen: bool = False
    transcript: Transcript | None = None  # from MAIL on: its trace id and events


def _consume_result(task: asyncio.Task[str | None]) -> None:
    """Retrieve a finished lookup's exception so asyncio does not report it as lost."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("reverse DNS failed: %r", task.exception())


def format_reply(reply: Reply) -> str:
    """A sink's ``Reply`` as wire text; multi-line text becomes a multi-line reply."""
    lines = [" ".join(ln.split()) for ln in reply.text.splitlines()] or [""]
    status = f"{reply.status} " if reply.status else ""
    out = [f"{reply.code:03d}-{status}{ln}" for ln in lines[:-1]]
    out.append(f"{reply.code:03d} {status}{lines[-1]}")
    return "\r\n".join(out)


class MxSMTP(SMTP):
    """One inbound SMTP connection.

    ``Envelope.extra`` carries ``smtp_id`` (the id in our ``Received:``), ``client_name``
    (verified reverse DNS or ``unknown``) and, with TLS, ``tls_version``/``tls_cipher``.
    A MAIL ``AUTH=`` value is checked but dropped: an MX has no authenticated clients.
    """

    max_bad_commands = 5  # as aiosmtpd's BOGUS_LIMIT: the 5th garbage line gets 421
    max_rcpt_errors = 50  # 5xx RCPT replies per connection before 421 (harvest attacks)
    role = "mx"  # the connections metric's label

    def __init__(
        self,
        sink: InboundSink,
        *,
        hostname: str,
        tls_context: ssl.SSLContext | None = None,
        data_size_limit: int,
        max_recipients: int = 100,
        timeout: float = DEFAULT_TIMEOUT,
        reverse_dns: ReverseResolver | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        data_memory_bytes: int | None = None,
        spill_dir: Path | None = None,
        limiter: ConnectionLimiter | None = None,
        large_accepts: asyncio.Semaphore | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.txn = _Transaction()
        self.tracing = SessionTrace(trace)
        super().__init__(
            object(),  # no aiosmtpd handler hooks: the sink is called directly
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident=IDENT,
            tls_context=tls_context,
            timeout=timeout,
            loop=loop,
        )
        self.sink = sink
        self.max_recipients = max_recipients
        self._reverse_dns = reverse_dns
        self._rdns_task: asyncio.Task[str | None] | None = None
        self._bad_commands = 0
        self._rcpt_errors = 0
        self._closing = False
        self.data_memory_bytes, self.spill_dir = data_memory_bytes, spill_dir
        self.limiter = limiter
        self._large_accepts = large_accepts
        self._refused: str | None = None  # why a connection cap refused this one
        self._counted: object = None  # the peer admitted by the limiter, until released
        self._commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "EHLO": self.smtp_EHLO, "HELO": self.smtp_HELO, "MAIL": self.smtp_MAIL,
            "RCPT": self.smtp_RCPT, "DATA": self.smtp_DATA, "RSET": self.smtp_RSET,
            "NOOP": self.smtp_NOOP, "QUIT": self.smtp_QUIT, "VRFY": self.smtp_VRFY,
            "EXPN": self.smtp_EXPN, "HELP": self.smtp_HELP, "STARTTLS": self.smtp_STARTTLS,
        }  # fmt: skip

    # -- connection plumbing -------------------------------------------------------------

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()
        self.txn = _Transaction()

    def _set_rset_state(self) -> None:
        """A transaction ends without DATA (RSET, EHLO, STARTTLS, an error): its trace,
        if it had a recipient, is recorded."""
        self._end_transaction()
        self.tracing.hand_over()
        super()._set_rset_state()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.session is None:  # not again at STARTTLS
            metrics.CONNECTIONS.labels(self.role).inc()
            if self.limiter is not None:
                peer = transport.get_extra_info("peername")
                self._refused = self.limiter.admit(peer)
                self._counted = peer if self._refused is None else None
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.limiter is not None and self._counted is not None:
            self.limiter.release(self._counted)
            self._counted = None
        super().connection_lost(error)
        if self._rdns_task is not None:
            self._rdns_task.cancel()

    async def push(self, status: AnyStr) -> None:
        if status == "220 Ready to start TLS":  # sent by aiosmtpd's smtp_STARTTLS
            await super().push(R_TLS_READY)
            return
        await super().push(status)

    def _close(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.close()

    async def _handle_client(self) -> None:
        assert self.session is not None
        SESSION.set(self.tracing.session_id)  # this task's context: every line it logs
        ip = peer_ip(self.session.peer)
        if self._refused:  # over a connection cap (RFC 5321 §3.8)
            log.warning("%s refused: %s", ip, self._refused)
            reply = f"421 4.7.0 {self.hostname} {self._refused}"
            self.tracing.refused_connection(ip, reply, self._refused)
            await self.push(reply)
            self._close()
            return
        metrics.SESSIONS.labels("smtp").inc()
        try:
            await self._serve(ip)
        finally:
            metrics.SESSIONS.labels("smtp").dec()
            self._end_transaction()  # a lost connection: what it had is recorded
            self.tracing.hand_over()

    async def _serve(self, ip: str) -> None:
        if self._reverse_dns is not None and ip:
            self._rdns_task = self.loop.create_task(self._reverse_dns(ip))
            self._rdns_task.add_done_callback(_consume_result)
        await self.push(f"220 {self.hostname} {self.__ident__}")
        while self.transport is not None and not self._closing:
            try:
                await self._next_command()
            except asyncio.CancelledError:
                self._writer.close()
                raise
            except ConnectionError:
                log.info("%s connection lost", ip)
                self._writer.close()
                return
            except TLSSetupException:
                log.info("%s TLS handshake failed", ip)
                self._close()
                self.connection_lost(None)  # the TLS layer never reports it to us
                return
            except Exception:
                log.exception("%s SMTP session error", ip)
                self._end_transaction()
                self._set_post_data_state()
                try:
                    await self.push(R_TEMPFAIL)
                except ConnectionError:
                    return

    async def _discard_long_line(self, consumed: int) -> None:
        """Drop the rest of an over-long line without buffering it."""
        await self._reader.read(consumed)
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await self._reader.read(exc.consumed)

    async def _garbage(self, reply: str) -> None:
        """Answer a garbage line; the ``max_bad_commands``-th one ends the session."""
        self._bad_commands += 1
        if self._bad_commands >= self.max_bad_commands:
            await self.push(f"421 4.7.0 {self.hostname} Error: too many errors")
            self._close()
        else:
            await self.push(reply)

    async def _next_command(self) -> None:
        try:
            raw = await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            await self._discard_long_line(exc.consumed)
            await self._garbage(R_LINE_TOO_LONG)
            return
        except asyncio.IncompleteReadError:
            self._close()
            return
        line = raw.rstrip(b"\r\n")
        verb_bytes, _, arg_bytes = line.partition(b" ")
        if not verb_bytes.isalpha():
            await self._garbage(R_BAD_SYNTAX)
            return
        verb = verb_bytes.decode("ascii").upper()
        method = self._commands.get(verb)
        if method is None:
            await self._garbage(R_UNRECOGNIZED)
            return
        if len(raw) > (self.line_length_limit if verb in ("MAIL", "RCPT") else MAX_COMMAND_LINE):
            await self._garbage(R_LINE_TOO_LONG)
            return
        try:
            arg = arg_bytes.strip(b" \t").decode("utf-8")
        except UnicodeDecodeError:
            await self._garbage(R_BAD_SYNTAX)
            return
        self._reset_timeout()
        transcript = self.txn.transcript
        TRACE.set(transcript.trace_id if transcript is not None else None)
        await method(arg)

    async def check_helo_needed(self, helo: str = "HELO") -> bool:
        assert self.session is not None
        if not self.session.host_name:
            await self.push(R_HELO_FIRST)
            return True
        return False

    # -- commands --------------------------------------------------------------------------

    async def smtp_HELO(self, arg: str) -> None:
        await self._greet(arg, extended=False)

    async def smtp_EHLO(self, arg: str) -> None:
        await self._greet(arg, extended=True)

    async def _greet(self, arg: str, *, extended: bool) -> None:
        verb = "EHLO" if extended else "HELO"
        if not arg:
            await self.push(f"501 5.5.4 Syntax: {verb} hostname")
            return
        assert self.session is not None
        self._set_rset_state()
        self.session.host_name = arg
        self.session.extended_smtp = extended
        if not extended:
            await self.push(f"250 {self.hostname}")
            return
        lines = [self.hostname, *self.ehlo_keywords()]
        await self.push("\r\n".join(f"250-{ln}" for ln in lines[:-1]) + f"\r\n250 {lines[-1]}")

    def ehlo_keywords(self) -> list[str]:
        """The extensions EHLO offers (subclasses add theirs)."""
        lines = ["PIPELINING"]
        lines.append(f"SIZE {self.data_size_limit}" if self.data_size_limit else "SIZE")
        lines += ["8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN"]
        if self.tls_context is not None and not self.tls_active:
            lines.append("STARTTLS")
        return lines

    @property
    def tls_active(self) -> bool:
        """TLS is on: after STARTTLS, or from the start on an implicit-TLS port."""
        if self._tls_protocol is not None:
            return True
        return self.transport is not None and bool(self.transport.get_extra_info("ssl_object"))

    async def smtp_MAIL(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        assert self.session is not None
        if self.txn.sender is not None:
            await self.push(R_NESTED_MAIL)
            return
        if arg[:5].upper() != "FROM:" or not arg[5:].strip():
            await self.push(R_MAIL_SYNTAX)
            return
        try:
            path, rest = split_path(arg[5:])
        except ValueError:
            await self.push(R_BAD_SENDER)
            return
        sender = parse_mailbox(path) if path else ""
        if sender is None:
            await self.push(R_BAD_SENDER)
            return
        if rest.strip() and not self.session.extended_smtp:
            await self.push(R_MAIL_SYNTAX)
            return
        try:
            params = parse_mail_params(rest, size_limit=self.data_size_limit)
        except ParamError as exc:
            await self.push(format_reply(exc.reply))
            return
        if not sender.isascii() and not params.smtputf8:
            await self.push(R_NEED_SMTPUTF8)
            return
        self.txn.sender, self.txn.params = sender, params
        self.tracing.hand_over()  # the transaction before this one, if still held
        self.txn.transcript = self.tracing.begin(
            self._opening(sender, self._known_client_name()) if self.tracing.on else None,
            sender, params.size, self._scope(sender))
        TRACE.set(self.txn.transcript.trace_id)
        log.info("%s sender <%s>", peer_ip(self.session.peer), sender)
        await self.push("250 2.1.0 OK")

    async def smtp_RCPT(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        assert self.session is not None
        txn = self.txn
        if txn.sender is None:
            await self.push(R_NEED_MAIL)
            return
        if arg[:3].upper() != "TO:" or not arg[3:].strip():
            await self.push(R_RCPT_SYNTAX)
            return
        try:
            path, rest = split_path(arg[3:])
        except ValueError:
            path, rest = "", ""
        if self._rcpt_errors >= self.max_rcpt_errors:
            closing = f"421 4.7.0 {self.hostname} Error: too many errors"
            self._rcpt_refused(path, closing, "too many errors")  # a harvest stopped
            await self.push(closing)
            self._close()
            return
        txn.rcpt_seen = True
        address = parse_mailbox(path, allow_postmaster=True)
        if address is None:
            self._rcpt_errors += 1
            self._rcpt_refused(path, R_BAD_RCPT, "syntax")
            await self.push(R_BAD_RCPT)
            return
        if rest.strip() and not self.session.extended_smtp:
            self._rcpt_refused(address, R_RCPT_SYNTAX, "syntax")
            await self.push(R_RCPT_SYNTAX)
            return
        try:
            params = parse_rcpt_params(rest)
        except ParamError as exc:
            self._rcpt_refused(address, str(exc.reply), "parameters")
            await self.push(format_reply(exc.reply))
            return
        if not address.isascii() and not txn.params.smtputf8:
            self._rcpt_refused(address, R_NEED_SMTPUTF8, "smtputf8")
            await self.push(R_NEED_SMTPUTF8)
            return
        if len(txn.recipients) >= self.max_recipients:
            self._rcpt_refused(address, R_TOO_MANY_RCPT, "too many recipients")
            await self.push(R_TOO_MANY_RCPT)
            return
        try:
            answer = RecipientAnswer.of(await self.sink.check_recipient(address))
        except Exception:
            log.exception("check_recipient(%r) failed", address)
            self._rcpt_refused(address, R_TEMPFAIL, "error")
            await self.push(R_TEMPFAIL)
            return
        reply = answer.reply
        if reply.ok:
            txn.recipients.append(RecipientParams(address, params.notify, params.orcpt))
        elif reply.code >= 500:
            self._rcpt_errors += 1
        self.tracing.rcpt(txn.transcript, txn.sender, address, answer,
                          self._scope(txn.sender))
        await self.push(format_reply(reply))

    async def smtp_RSET(self, arg: str) -> None:
        if arg:
            await self.push("501 5.5.4 Syntax: RSET")
            return
        self._set_rset_state()
        await self.push(R_OK)

    async def smtp_NOOP(self, arg: str) -> None:
        await self.push(R_OK)

    async def smtp_QUIT(self, arg: str) -> None:
        if arg:
            await self.push("501 5.5.4 Syntax: QUIT")
            return
        self._end_transaction()
        await self.tracing.write()  # stored before the client hears 221
        await self.push(f"221 2.0.0 {self.hostname} closing connection")
        self._close()

    async def smtp_VRFY(self, arg: str) -> None:
        if not arg:
            await self.push("501 5.5.4 Syntax: VRFY <address>")
            return
        await self.push("252 2.0.0 Cannot VRFY user; send mail and it will be tried")

    async def smtp_EXPN(self, arg: str) -> None:
        await self.push("502 5.5.1 EXPN not available")

    async def smtp_HELP(self, arg: str) -> None:
        await self.push("214 2.0.0 See RFC 5321")

    async def smtp_STARTTLS(self, arg: str) -> None:
        if arg:
            await self.push("501 5.5.4 Syntax: STARTTLS")
        elif self.tls_context is None:
            await self.push("454 4.7.0 TLS not available")
        elif self.tls_active:
            await self.push("503 5.5.1 Error: TLS already active")
        else:
            await super().smtp_STARTTLS(arg)  # resets the session on success (RFC 3207)

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        txn = self.txn
        if txn.sender is None:
            await self.push(R_NEED_MAIL)
            return
        if not txn.recipients:
            await self.push(R_NO_VALID_RCPT if txn.rcpt_seen else R_NEED_RCPT)
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        buffer = DataBuffer(self.data_memory_bytes, self.spill_dir)
        try:
            error = await read_data(self._reader, buffer, limit=self.data_size_limit or 0,
                                    keepalive=self._reset_timeout)
            self._set_post_data_state()
            if error is not None:
                self.tracing.data(txn.transcript, txn.sender, error, None,
                                  self._scope(txn.sender))
                await self.push(error)
                return
            gate: AbstractAsyncContextManager[object] = (
                self._large_accepts if buffer.spilled and self._large_accepts is not None
                else nullcontext())
            async with gate:
                content = await buffer.value()
                buffer.close()
                envelope = self._envelope(txn, content, await self._client_name())
                del content
                try:
                    reply = await self.sink.accept(envelope)
                except Exception:
                    log.exception("accept() failed for message %s",
                                  envelope.extra.get("smtp_id"))
                    self.tracing.data(txn.transcript, txn.sender, R_TEMPFAIL,
                                      len(envelope.data), self._scope(txn.sender))
                    await self.push(R_TEMPFAIL)
                    return
        finally:
            buffer.close()
        log.info("%s message %s: %s", envelope.peer, envelope.extra["smtp_id"], reply)
        self.tracing.data(txn.transcript, txn.sender, reply, len(envelope.data),
                          self._scope(txn.sender))
        await self.push(format_reply(reply))

    # -- the trace -------------------------------------------------------------------------

    def _scope(self, sender: str) -> Scope:
        """The customer domain and mailbox every event of a transaction concerns (the
        MX's: none; its RCPT answers say whom each recipient concerns)."""
        return None, None

    def _opening(self, sender: str, client_name: str | None) -> TraceEvent:
        """The session's facts: the first event of each transaction's group."""
        assert self.session is not None
        detail: dict[str, object] = {"helo": self.session.host_name or "",
                                     "tls": self.tls_active}
        tls = self._tls_info()
        if tls is not None:
            detail |= {"tls_version": tls.version, "cipher": tls.cipher}
        if client_name:
            detail["client_name"] = client_name
        return TraceEvent(Kind.CONNECT, peer=peer_ip(self.session.peer), detail=detail,
                          at=self.tracing.connected_at)

    def _known_client_name(self) -> str | None:
        """The verified reverse DNS name if its lookup has finished (no waiting)."""
        task = self._rdns_task
        if task is None or not task.done() or task.cancelled() or task.exception():
            return None
        return task.result()

    def _rcpt_refused(self, address: str, reply: str, reason: str) -> None:
        """A RCPT the listener itself refused (syntax, limits)."""
        self.tracing.rcpt(self.txn.transcript, self.txn.sender, address,
                          RecipientAnswer(parse_reply(reply), reason=reason),
                          self._scope(self.txn.sender or ""))

    def _end_transaction(self) -> None:
        """The current transaction ends without DATA: held if it had a recipient."""
        transcript, self.txn.transcript = self.txn.transcript, None
        if transcript is not None and self.tracing.on and self.session is not None:
            opening = self._opening(self.txn.sender or "", self._known_client_name())
            self.tracing.end(transcript, opening)

    # -- the envelope handed to the sink --------------------------------------------------

    async def _client_name(self) -> str | None:
        task = self._rdns_task
        if task is None:
            return None
        done, _ = await asyncio.wait({task}, timeout=RDNS_WAIT)
        if not done:
            task.cancel()  # give up for the rest of the session too
            return None
        if task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    def _tls_info(self) -> TlsInfo | None:
        assert self.session is not None
        if not self.tls_active:
            return None
        extra = self.session.ssl or {}
        obj = extra.get("ssl_object") or (
            self.transport.get_extra_info("ssl_object") if self.transport else None)
        cipher = obj.cipher() if obj is not None else extra.get("cipher")
        version = obj.version() if obj is not None else None
        if not cipher:
            return None
        return TlsInfo(version or cipher[1], cipher[0], cipher[2])

    def _envelope(self, txn: _Transaction, content: bytes, client_name: str | None) -> Envelope:
        assert self.session is not None and txn.sender is not None
        tls = self._tls_info()
        ip = peer_ip(self.session.peer)
        helo = self.session.host_name or ""
        transcript = txn.transcript
        smtp_id = transcript.trace_id if transcript is not None else new_id()
        if transcript is not None and transcript.events:  # with the reverse DNS name now
            transcript.events[0] = self._opening(txn.sender, client_name)
        header = received_header(
            helo=helo,
            client_name=client_name,
            client_ip=ip,
            hostname=self.hostname,
            protocol=protocol_name(
                esmtp=self.session.extended_smtp,
                tls=tls is not None,
                smtputf8=txn.params.smtputf8,
            ),
            smtp_id=smtp_id,
            tls=tls,
            recipient=txn.recipients[0].address if len(txn.recipients) == 1 else None,
        )
        extra = {"smtp_id": smtp_id, "client_name": client_name or "unknown"}
        if tls is not None:
            extra |= {"tls_version": tls.version, "tls_cipher": tls.cipher}
        p = txn.params
        return Envelope(
            sender=txn.sender,
            recipients=tuple(txn.recipients),
            data=header + content,
            peer=ip,
            helo=helo,
            tls=tls is not None,
            envid=p.envid,
            ret=p.ret,
            smtputf8=p.smtputf8,
            body=p.body,
            extra=extra,
            transcript=transcript,
        )


async def start_mx(
    sink: InboundSink,
    *,
    sock: socket.socket,
    hostname: str,
    tls_context: ssl.SSLContext | None,
    data_size_limit: int,
    max_recipients: int = 100,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - per-session idle timeout
    reverse_dns: ReverseResolver | None = system_reverse_dns,
    data_memory_bytes: int | None = None,
    spill_dir: Path | None = None,
    limiter: ConnectionLimiter | None = None,
    trace: Trace | None = None,
) -> asyncio.Server:
    """Serve inbound SMTP on ``sock`` (bound; listened on here) in the running loop.

    ``timeout`` is each session's idle timeout in seconds (reset by every valid command
    and while DATA flows), not a limit on this call. DATA past ``data_memory_bytes`` goes
    to a temporary file in ``spill_dir``; ``limiter`` caps connections (share one among
    a role's listeners); ``trace`` records each transaction (None: nothing is recorded).

    Close with ``server.close(); await server.wait_closed()``.
    """
    loop = asyncio.get_running_loop()
    large_accepts = asyncio.Semaphore(LARGE_ACCEPTS)

    def factory() -> MxSMTP:
        return MxSMTP(
            sink, hostname=hostname, tls_context=tls_context,
            data_size_limit=data_size_limit, max_recipients=max_recipients,
            timeout=timeout, reverse_dns=reverse_dns, loop=loop,
            data_memory_bytes=data_memory_bytes, spill_dir=spill_dir, limiter=limiter,
            large_accepts=large_accepts, trace=trace,
        )

    return await loop.create_server(factory, sock=sock)
