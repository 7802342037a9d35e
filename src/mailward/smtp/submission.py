"""SMTP submission (587 STARTTLS, 465 implicit TLS): the mx listener plus SMTP AUTH.

No MAIL before AUTH (530 5.7.0); AUTH PLAIN/LOGIN only over TLS unless plaintext is
allowed (tests on loopback). The login is the full address; what a logged-in user may
send as is the sink's decision (``check_sender``), as is everything after DATA. Until
AUTH succeeds a session is closed after ``preauth_timeout`` seconds of silence; after it,
the normal ``timeout`` applies.

Traced as the MX is (``mailward.smtp.tracing``), with a ``submit`` event (the logged-in
user, the peer) in place of ``connect``, and every event of a transaction concerning the
sender's domain and the logged-in mailbox.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
import socket
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, AnyStr, Protocol

from mailward.net.limits import ConnectionLimiter
from mailward.smtp.mx import (
    DEFAULT_TIMEOUT,
    LARGE_ACCEPTS,
    MxSMTP,
    _Transaction,
    format_reply,
)
from mailward.smtp.received import peer_ip
from mailward.smtp.tracing import Scope
from mailward.smtp.types import Envelope, InboundSink, Reply
from mailward.trace.events import Kind, TraceEvent, scope_domain

if TYPE_CHECKING:
    from mailward.trace.recorder import Trace

log = logging.getLogger(__name__)

R_AUTH_FIRST = "530 5.7.0 Authentication required"
R_NEED_TLS = "538 5.7.11 Encryption required for requested authentication mechanism"
R_AUTH_OK = "235 2.7.0 Authentication successful"
R_AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
R_AUTH_CANCELLED = "501 5.7.0 Authentication cancelled"
R_AUTH_SYNTAX = "501 5.5.2 Cannot decode the authentication response"
R_ALREADY = "503 5.5.1 Already authenticated"
R_MECHANISM = "504 5.5.4 Unrecognized authentication type (use PLAIN or LOGIN)"
MAX_AUTH_LINE = 12288  # RFC 4954 §4: at least 12288 octets for a SASL response


class LoginAnswer(Protocol):
    """A login's outcome (read-only): the mailbox, or how long a locked client waits."""

    @property
    def mailbox(self) -> str | None: ...

    @property
    def retry_after(self) -> int: ...


class Authenticator(Protocol):
    async def authenticate(self, login: str, password: str, peer: str,
                           protocol: str = ...) -> LoginAnswer: ...


class SubmissionSink(InboundSink, Protocol):
    async def check_sender(self, login: str, sender: str) -> Reply:
        """May ``login`` use ``sender`` as envelope sender? 250 = yes."""
        ...


class SubmissionSMTP(MxSMTP):
    role = "submission"

    def __init__(self, sink: SubmissionSink, *, authenticator: Authenticator,
                 allow_plaintext_auth: bool = False, preauth_timeout: float | None = None,
                 **kwargs: object) -> None:
        super().__init__(sink, **kwargs)  # type: ignore[arg-type]
        self.auth_timeout = float(self._timeout_duration)
        self.preauth_timeout = min(preauth_timeout or self.auth_timeout, self.auth_timeout)
        self._timeout_duration = self.preauth_timeout
        self.submission_sink = sink
        self.authenticator = authenticator
        self.allow_plaintext_auth = allow_plaintext_auth
        self.login: str | None = None
        self._commands["AUTH"] = self.smtp_AUTH

    def ehlo_keywords(self) -> list[str]:
        keywords = super().ehlo_keywords()
        if self.login is None and (self.tls_active or self.allow_plaintext_auth):
            keywords.append("AUTH PLAIN LOGIN")
        return keywords

    async def smtp_AUTH(self, arg: str) -> None:
        if await self.check_helo_needed("EHLO"):
            return
        if self.login is not None:
            await self.push(R_ALREADY)
            return
        if self.txn.sender is not None:
            await self.push("503 5.5.1 AUTH not permitted during a mail transaction")
            return
        if not (self.tls_active or self.allow_plaintext_auth):
            await self.push(R_NEED_TLS)
            return
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            credentials = await self._plain(initial.strip())
        elif mechanism == "LOGIN":
            credentials = await self._login(initial.strip())
        else:
            await self.push(R_MECHANISM)
            return
        if credentials is None:
            return  # already answered
        await self._check(*credentials)

    async def _check(self, login: str, password: str) -> None:
        assert self.session is not None
        peer = peer_ip(self.session.peer)
        answer = await self.authenticator.authenticate(login, password, peer, "submission")
        if answer.mailbox is not None:
            self.login = answer.mailbox
            self._timeout_duration = self.auth_timeout
            self._reset_timeout()
            log.info("%s authenticated as %s", peer, answer.mailbox)
            await self.push(R_AUTH_OK)
        elif answer.retry_after:
            await self.push(f"454 4.7.0 Too many failed logins; try again in "
                            f"{answer.retry_after} seconds")
        else:
            await self.push(R_AUTH_FAILED)

    async def _challenge(self, prompt: bytes) -> str | None:
        """Send a 334 challenge; the decoded answer, or None after replying to a bad one."""
        await self.push("334 " + base64.b64encode(prompt).decode("ascii"))
        try:
            line = await self._reader.readuntil(b"\n")
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            self._close()
            return None
        text = line.rstrip(b"\r\n")
        if text == b"*":
            await self.push(R_AUTH_CANCELLED)
            return None
        return await self._decode(text)

    async def _decode(self, text: bytes | str) -> str | None:
        try:
            return base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            await self.push(R_AUTH_SYNTAX)
            return None

    async def _plain(self, initial: str) -> tuple[str, str] | None:
        if initial == "=":
            decoded: str | None = ""
        elif initial:
            decoded = await self._decode(initial)
        else:
            decoded = await self._challenge(b"")
        if decoded is None:
            return None
        parts = decoded.split("\0")
        if len(parts) != 3 or not parts[1]:
            await self.push(R_AUTH_SYNTAX)
            return None
        authzid, login, password = parts
        if authzid and authzid.lower() != login.lower():
            await self.push(R_AUTH_FAILED)  # no proxy logins
            return None
        return login, password

    async def _login(self, initial: str) -> tuple[str, str] | None:
        login = await self._decode(initial) if initial else await self._challenge(b"Username:")
        if login is None:
            return None
        password = await self._challenge(b"Password:")
        if password is None:
            return None
        return login, password

    async def smtp_MAIL(self, arg: str) -> None:
        if self.session is not None and self.session.host_name and self.login is None:
            await self.push(R_AUTH_FIRST)
            return
        await super().smtp_MAIL(arg)

    async def push(self, status: AnyStr) -> None:
        # MAIL's own "250 2.1.0 OK" must wait for the ownership check: hold it back.
        if status == "250 2.1.0 OK" and self.login is not None and self.txn.sender is not None:
            reply = await self.submission_sink.check_sender(self.login, self.txn.sender)
            if not reply.ok:
                self.txn.sender, self.txn.transcript = None, None  # no transaction
                await super().push(format_reply(reply))
                return
        await super().push(status)

    def _envelope(self, txn: _Transaction, content: bytes, client_name: str | None
                  ) -> Envelope:
        envelope: Envelope = super()._envelope(txn, content, client_name)
        return dataclasses.replace(envelope, authenticated_as=self.login)

    def _scope(self, sender: str) -> Scope:
        """The sender's domain and the logged-in mailbox: whose mail this is."""
        return scope_domain(sender), self.login

    def _opening(self, sender: str, client_name: str | None) -> TraceEvent:
        facts = super()._opening(sender, client_name)
        domain, mailbox = self._scope(sender)
        return TraceEvent(Kind.SUBMIT, sender=sender, domain=domain, mailbox=mailbox,
                          peer=facts.peer, at=facts.at,
                          detail={**facts.detail, "login": self.login})

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._timeout_duration = self.preauth_timeout
        super().connection_made(transport)
        self.login = None  # STARTTLS starts a new session (RFC 3207 §4.2): log in again


async def start_submission(
    sink: SubmissionSink,
    *,
    authenticator: Authenticator,
    sock: socket.socket,
    hostname: str,
    tls_context: ssl.SSLContext | None,
    implicit_tls: bool = False,
    allow_plaintext_auth: bool = False,
    data_size_limit: int,
    max_recipients: int = 100,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - per-session idle timeout
    preauth_timeout: float | None = None,
    data_memory_bytes: int | None = None,
    spill_dir: Path | None = None,
    limiter: ConnectionLimiter | None = None,
    trace: Trace | None = None,
) -> asyncio.Server:
    """Serve submission on ``sock``: STARTTLS (587) or, with ``implicit_tls``, 465.

    ``preauth_timeout`` is the idle timeout before AUTH (default: ``timeout``); the
    other arguments are as for ``start_mx``.
    """
    if implicit_tls and tls_context is None:
        raise ValueError("implicit TLS needs a TLS context")
    loop = asyncio.get_running_loop()
    large_accepts = asyncio.Semaphore(LARGE_ACCEPTS)

    def factory() -> SubmissionSMTP:
        return SubmissionSMTP(
            sink, authenticator=authenticator, allow_plaintext_auth=allow_plaintext_auth,
            hostname=hostname, tls_context=None if implicit_tls else tls_context,
            data_size_limit=data_size_limit, max_recipients=max_recipients,
            timeout=timeout, reverse_dns=None, loop=loop, preauth_timeout=preauth_timeout,
            data_memory_bytes=data_memory_bytes, spill_dir=spill_dir, limiter=limiter,
            large_accepts=large_accepts, trace=trace,
        )

    return await loop.create_server(factory, sock=sock,
                                    ssl=tls_context if implicit_tls else None)
