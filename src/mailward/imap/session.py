"""One IMAP4rev1 session (RFC 3501): reading commands with literals, states, dispatch.

States: not authenticated → authenticated → selected → logout. Commands of the
authenticated and selected states live in :mod:`mailward.imap.mailboxes` and
:mod:`mailward.imap.messages`; this module has the I/O loop, the any-state and
login commands, ENABLE (RFC 5161: CONDSTORE and QRESYNC, RFC 7162), IDLE (RFC 2177) and
the untagged updates sent after each command.

Each connection counts in ``mailward_connections_total{role="imap"}``, an admitted one in
``mailward_sessions{protocol="imap"}`` while it lasts, each command's time (but IDLE's,
which lasts as long as the client wants) in ``mailward_command_seconds``; its log lines
carry a session id (``session=``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailward.imap import mailboxes, messages, reports
from mailward.imap.fetch import ParsedCache
from mailward.imap.parse import (
    Authenticate,
    Command,
    Enable,
    Id,
    Login,
    ParseError,
    literal_needed,
    parse_command,
)
from mailward.imap.reports import Lesson, SpamReporter
from mailward.imap.respond import imap_string
from mailward.imap.selected import RecentClaims, SelectedFolder
from mailward.net.limits import ConnectionLimiter
from mailward.net.lines import OVERLONG, read_line
from mailward.net.sasl import decode_sasl_plain
from mailward.obs.logs import reset_context, set_context
from mailward.obs.metrics import COMMAND_SECONDS, CONNECTIONS, SESSIONS
from mailward.store import (
    FolderExists,
    FolderHasChildren,
    InvalidFlag,
    InvalidFolderName,
    MailStore,
    NoSuchFolder,
    QuotaExceeded,
    StoreError,
)
from mailward.store.events import MailboxEvents
from mailward.trace.ids import new_id

log = logging.getLogger(__name__)

LINE_LIMIT = 65536  # longest command line outside literals
MAX_BAD = 50  # malformed commands before the session is closed
IDLE_TIMEOUT = 1800.0  # RFC 3501 §5.4: at least 30 minutes (once logged in)
PREAUTH_TIMEOUT = 60.0  # client silence allowed before login
PREAUTH_MAX_LITERAL = 8192  # largest literal accepted before login
SEND_TIMEOUT = 300.0
REFUSE_TIMEOUT = 10.0  # seconds to send the refusal to a client over the connection caps
IDLE_POLL = 30.0  # wake-up period of an idling session (cheap: no store call)
IDLE_RESYNC = 600.0  # list the folder again while idling even without a change notice
_TAG = re.compile(rb"^([\x21-\x7e]+?) ")

BASE_CAPABILITIES = ("IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE")
SESSION_CAPABILITIES = ("NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "SPECIAL-USE",
                        "LIST-EXTENDED", "LIST-STATUS", "QUOTA", "QUOTA=RES-STORAGE",
                        "CHILDREN", "CONDSTORE", "QRESYNC")


class ImapAuthenticator(Protocol):
    async def authenticate(self, login: str, password: str, peer: str) -> str | None:
        """The mailbox for these credentials or ``None``; raise ``LoginDeferred`` if locked."""
        ...


class LoginDeferred(Exception):
    """Logins are temporarily refused for this user or client (too many failures)."""


@dataclass
class ImapServices:
    """What sessions of one listener share."""

    authenticator: ImapAuthenticator
    store: MailStore
    events: MailboxEvents = field(default_factory=MailboxEvents)
    quota: Callable[[str], Awaitable[int | None]] | None = None
    claims: RecentClaims = field(default_factory=RecentClaims)
    hostname: str = "localhost"
    tls_context: ssl.SSLContext | None = None
    allow_plaintext_auth: bool = False
    max_literal: int = 50 * 1024 * 1024
    idle_timeout: float = IDLE_TIMEOUT
    preauth_max_literal: int = PREAUTH_MAX_LITERAL
    preauth_timeout: float = PREAUTH_TIMEOUT
    limiter: ConnectionLimiter | None = None  # shared by the listeners of the role
    parsed: ParsedCache = field(default_factory=ParsedCache)
    stopping: bool = False
    sessions: set[ImapSession] = field(default_factory=set)
    spam_reporter: SpamReporter | None = None  # learns from moves into/out of Junk
    idle_poll: float = IDLE_POLL  # see :func:`_idle`
    idle_resync: float = IDLE_RESYNC

    def shut_down(self) -> None:
        """Say BYE to every session: at once if it waits for the client, else after its
        current command."""
        self.stopping = True
        for session in list(self.sessions):
            if session.waiting:
                session.bye_now()


class Close(Exception):
    """End the session once the responses already queued are sent."""


class ImapSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 services: ImapServices, *, tls_active: bool) -> None:
        self.reader = reader
        self.writer = writer
        self.services = services
        self.store = services.store
        self.tls_active = tls_active
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else str(peer or "")
        self.user: str | None = None
        self.selected: SelectedFolder | None = None
        self.out: list[bytes] = []
        self.bad = 0
        self.waiting = False  # for the client's next input (between commands, IDLE)
        self.lessons: list[Lesson] = []  # for the spam reporter once the answer is sent
        self.condstore = False  # RFC 7162: MODSEQ in FETCH answers, HIGHESTMODSEQ at SELECT
        self.qresync = False  # RFC 7162: VANISHED instead of EXPUNGE, UID in FETCH
        self.session_id = new_id()

    # -- output ----------------------------------------------------------------------

    def untagged(self, line: bytes | str) -> None:
        self.out.append(b"* " + (line.encode("utf-8") if isinstance(line, str) else line))

    def tagged(self, tag: str, status: str, text: str, code: str | None = None) -> None:
        code_part = f"[{code}] " if code else ""
        self.out.append(f"{tag} {status} {code_part}{text}".encode())

    async def flush(self) -> None:
        if not self.out:
            return
        data = b"\r\n".join(self.out) + b"\r\n"
        self.out.clear()
        self.writer.write(data)
        async with asyncio.timeout(SEND_TIMEOUT):
            await self.writer.drain()

    # -- input -----------------------------------------------------------------------

    async def _line(self) -> bytes | None:
        """The next line incl. CRLF (``OVERLONG`` if too long), ``None`` at EOF."""
        return await read_line(self.reader)

    @property
    def timeout(self) -> float:
        """Client silence allowed now: short until the client has logged in."""
        return self.services.idle_timeout if self.user else self.services.preauth_timeout

    @property
    def max_literal(self) -> int:
        """Largest literal accepted now: small until the client has logged in."""
        return self.services.max_literal if self.user else self.services.preauth_max_literal

    async def read_command(self) -> bytes | None:
        """A whole command with its literals; ``b""`` when it was refused and answered.

        A literal over :attr:`max_literal` is refused before any of it is read: a
        synchronizing one with a tagged ``NO [TOOBIG]`` instead of the continuation (the
        client then sends nothing more of that command), a non-synchronizing one (whose
        octets are already on their way) with ``BAD [TOOBIG]`` and ``BYE`` (RFC 7888 §4).
        """
        timeout = self.timeout
        async with asyncio.timeout(timeout):
            data = await self._line()
        self.waiting = False  # a command has begun: shutdown lets it finish
        if data is None:
            return None
        if data is OVERLONG:
            self.out.append(b"* BAD Command line too long")
            return b""
        total = len(data)
        while (lit := literal_needed(data)) is not None:
            size, non_sync = lit
            total += size
            limit = self.max_literal
            if size > limit or total > limit + LINE_LIMIT:
                tag = _tag_of(data)
                if non_sync:  # the octets are on their way: we cannot stay in sync
                    self.tagged(tag, "BAD", "Literal too big", "TOOBIG")
                    self.untagged("BYE Literal too big, closing connection")
                    raise Close
                self.tagged(tag, "NO", f"Literal too big (at most {limit} octets"
                            f"{'' if self.user else ' before login'})", "TOOBIG")
                return b""
            if not non_sync:
                self.out.append(b"+ Ready for literal data")
                await self.flush()
            async with asyncio.timeout(timeout):
                chunk = await self.reader.readexactly(size)
                rest = await self._line()
            if rest is None:
                return None
            if rest is OVERLONG:
                self.out.append(b"* BAD Command line too long")
                return b""
            data += chunk + rest
            total += len(rest)
        return data

    # -- loop ------------------------------------------------------------------------

    async def run(self) -> None:
        CONNECTIONS.labels("imap").inc()
        tokens = set_context(session=self.session_id)
        try:
            await self._run()
        finally:
            reset_context(tokens)

    async def _run(self) -> None:
        limiter = self.services.limiter
        peer = self.writer.get_extra_info("peername")
        refused = limiter.admit(peer) if limiter is not None else None
        if refused is not None:
            await self._refuse(f"BYE [UNAVAILABLE] {refused.capitalize()}")
            return
        self.services.sessions.add(self)
        sessions = SESSIONS.labels("imap")
        sessions.inc()
        try:
            caps = " ".join(self.capabilities())
            self.untagged(f"OK [CAPABILITY {caps}] {self.services.hostname} IMAP ready")
            await self.flush()
            while True:
                try:
                    data = await self._await_client(self.read_command())
                except TimeoutError:
                    self.untagged("BYE Autologout; idle for too long")
                    raise Close from None
                if data is None:
                    return
                if data:
                    await self.execute(data)
                await self.flush()
                await self.report_pending()
        except Close:
            with contextlib.suppress(Exception):
                await self.flush()
            await self.report_pending()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            await self.report_pending()  # the command was carried out all the same
        finally:
            sessions.dec()
            if limiter is not None:  # before closing: the client may come back at once
                limiter.release(peer)
            self.services.sessions.discard(self)
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _refuse(self, text: str) -> None:
        """Answer a connection over the caps with ``* <text>`` instead of the greeting."""
        with contextlib.suppress(Exception):
            self.untagged(text)
            async with asyncio.timeout(REFUSE_TIMEOUT):
                await self.flush()
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(REFUSE_TIMEOUT):
                await self.writer.wait_closed()

    def bye_now(self) -> None:
        """Server shutdown while the client has the word: BYE and close; the pending
        read then ends at EOF."""
        self.writer.write(b"* BYE Server shutting down\r\n")
        self.writer.close()

    async def _await_client(self, reading: Coroutine[Any, Any, bytes | None]) -> bytes | None:
        """Await input while marked as waiting (see :meth:`ImapServices.shut_down`)."""
        if self.services.stopping:
            reading.close()
            self.untagged("BYE Server shutting down")
            raise Close
        self.waiting = True
        try:
            return await reading
        finally:
            self.waiting = False

    async def execute(self, data: bytes) -> None:
        try:
            command = parse_command(data)
        except ParseError as exc:
            self.bad += 1
            self.out.append(f"{exc.tag or '*'} BAD {exc.message}".encode())
            if self.bad >= MAX_BAD:
                self.untagged("BYE Too many invalid commands")
                raise Close from None
            return
        handler = self._handler(command.name)
        if handler is None:
            self.tagged(command.tag, "BAD", f"{command.name} not allowed now")
            return
        started = time.perf_counter()
        try:
            if self.selected is not None and command.name in messages.SELECTED:
                # Learn of changes first (never as EXPUNGE: the client's sequence
                # numbers in this command refer to what it was last told).
                await self.updates(allow_expunge=False)
            await handler(self, command)
        except StoreError as exc:
            self.tagged(command.tag, *store_error_answer(exc))
        except (Close, ConnectionError, TimeoutError, ssl.SSLError):
            raise
        except Exception:
            log.exception("IMAP %s failed for %s", command.name, self.user)
            self.tagged(command.tag, "NO", "Internal error, try again later", "SERVERBUG")
            return
        finally:
            if command.name != "IDLE":
                name = f"UID {command.name}" if command.uid else command.name
                COMMAND_SECONDS.labels("imap", name).observe(time.perf_counter() - started)
        if self.selected is not None and command.name not in ("IDLE", "LOGOUT"):
            await self.updates(allow_expunge=command.uid or command.name not in
                               ("FETCH", "STORE", "SEARCH"),
                               force=command.name in ("NOOP", "CHECK"))

    def _handler(self, name: str) -> Callable[[ImapSession, Command], Awaitable[None]] | None:
        if name in _ANY:
            return _ANY[name]
        if self.user is None:
            return _NOT_AUTHENTICATED.get(name)
        if name in mailboxes.AUTHENTICATED:
            return mailboxes.AUTHENTICATED[name]
        if self.selected is not None:
            return messages.SELECTED.get(name)
        return None

    async def updates(self, *, allow_expunge: bool = True, force: bool = False) -> None:
        """Queue untagged updates (EXISTS, EXPUNGE, FLAGS) for the selected folder.

        The untagged lines go before the tagged completion already queued.
        """
        sel = self.selected
        if sel is None:
            return
        version = self.services.events.version(sel.mailbox)
        if version == sel.version and not force and not sel.vanished:
            return
        lines = await sel.sync(self.store, self.services.claims, expunge_allowed=allow_expunge,
                               condstore=self.condstore, qresync=self.qresync)
        if not sel.vanished:
            sel.version = version
        if lines:
            tagged = self.out.pop() if self.out and not self.out[-1].startswith(b"* ") else None
            self.out += [b"* " + line[2:] for line in lines]
            if tagged is not None:
                self.out.append(tagged)

    async def enable_condstore(self) -> bool:
        """Turn CONDSTORE on (ENABLE or a CONDSTORE-enabling command, RFC 7162 §3.1);
        the selected folder's view is refreshed first so that its MODSEQs are current
        (flag changes found meanwhile are told as usual). True if it was off."""
        if self.condstore:
            return False
        sel = self.selected
        if sel is not None:
            lines = await sel.sync(self.store, self.services.claims, expunge_allowed=False)
            self.out += [b"* " + line[2:] for line in lines]
        self.condstore = True
        return True

    # -- spam reports ----------------------------------------------------------------

    def learn(self, source: str | None, target: str, *, uids: Iterable[int] = (),
              data: bytes | None = None) -> None:
        """Note messages just filed into ``target`` (now ``uids`` there, or ``data``) from
        ``source`` (``None``: APPEND) for the spam reporter, if that teaches anything."""
        if self.services.spam_reporter is None or self.user is None:
            return
        spam = reports.verdict(source, target)
        if spam is None:
            return
        lesson = Lesson(self.user, target, spam, tuple(uids), data)
        if lesson.uids or lesson.data is not None:
            self.lessons.append(lesson)

    async def report_pending(self) -> None:
        """Hand the noted messages to the spam reporter (after the answer was sent, before
        the next command is read); never raises but for cancellation."""
        if not self.lessons:
            return
        lessons, self.lessons = self.lessons, []
        reporter = self.services.spam_reporter
        if reporter is not None:
            await reports.report(reporter, self.store, lessons)

    # -- capabilities ---------------------------------------------------------------

    @property
    def auth_allowed(self) -> bool:
        return self.tls_active or self.services.allow_plaintext_auth

    def capabilities(self) -> list[str]:
        caps = list(BASE_CAPABILITIES)
        if self.user is None:
            if self.services.tls_context is not None and not self.tls_active:
                caps.append("STARTTLS")
            caps.append("AUTH=PLAIN" if self.auth_allowed else "LOGINDISABLED")
        else:
            caps += SESSION_CAPABILITIES
        return caps

    # -- login -----------------------------------------------------------------------

    async def login(self, tag: str, user: str, password: str) -> None:
        try:
            mailbox = await self.services.authenticator.authenticate(user, password, self.peer)
        except LoginDeferred as exc:
            self.tagged(tag, "NO", str(exc), "UNAVAILABLE")
            return
        if mailbox is None:
            self.tagged(tag, "NO", "Invalid login or password", "AUTHENTICATIONFAILED")
            return
        self.user = mailbox
        await mailboxes.ensure_special_folders(self.store, mailbox)
        self.tagged(tag, "OK", "Logged in", "CAPABILITY " + " ".join(self.capabilities()))


# Store errors as IMAP answers (RFC 5530 response codes): status, code, text (None: the
# store's own explanation).
_STORE_ANSWERS: tuple[tuple[type[StoreError], str, str | None, str | None], ...] = (
    (NoSuchFolder, "NO", "NONEXISTENT", "Mailbox does not exist"),
    (FolderExists, "NO", "ALREADYEXISTS", "Mailbox already exists"),
    (FolderHasChildren, "NO", "INUSE", "Mailbox has children; delete them first"),
    (InvalidFolderName, "NO", "CANNOT", None),
    (QuotaExceeded, "NO", "OVERQUOTA", None),
    (InvalidFlag, "BAD", None, None),
)


def store_error_answer(exc: StoreError) -> tuple[str, str, str | None]:
    """``(status, text, response code)`` of the tagged answer to a failed store call."""
    for kind, status, code, text in _STORE_ANSWERS:
        if isinstance(exc, kind):
            return status, text or str(exc), code
    return "NO", str(exc), None


def _tag_of(data: bytes) -> str:
    m = _TAG.match(data)
    return m.group(1).decode("ascii") if m else "*"


# -- any state ---------------------------------------------------------------------------

async def _capability(s: ImapSession, cmd: Command) -> None:
    s.untagged("CAPABILITY " + " ".join(s.capabilities()))
    s.tagged(cmd.tag, "OK", "Capability completed")


async def _noop(s: ImapSession, cmd: Command) -> None:
    s.tagged(cmd.tag, "OK", f"{cmd.name} completed")


async def _logout(s: ImapSession, cmd: Command) -> None:
    s.untagged("BYE Logging out")
    s.tagged(cmd.tag, "OK", "Logout completed")
    raise Close


async def _id(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Id)
    if cmd.params:
        log.info("IMAP client ID from %s: %s", s.peer,
                 ", ".join(f"{k}={v}" for k, v in cmd.params[:8]))
    s.untagged(b"ID (" + imap_string("name") + b" " + imap_string("mailward") + b")")
    s.tagged(cmd.tag, "OK", "ID completed")


async def _enable(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Enable)
    if s.user is None:
        s.tagged(cmd.tag, "BAD", "ENABLE needs an authenticated session")
        return
    enabled: list[str] = []
    for name in cmd.capabilities:
        if name == "CONDSTORE" and not s.condstore:
            await s.enable_condstore()
            enabled.append(name)
        elif name == "QRESYNC" and not s.qresync:
            if not s.condstore:
                await s.enable_condstore()  # QRESYNC implies CONDSTORE (RFC 7162 §3.2.3)
            s.qresync = True
            enabled.append(name)
    if enabled and s.selected is not None:  # as Dovecot: before ENABLED
        highest = (await s.store.folder_status(s.user, s.selected.name)).highestmodseq
        s.untagged(f"OK [HIGHESTMODSEQ {highest}] Highest")
    s.untagged(" ".join(["ENABLED", *enabled]))
    s.tagged(cmd.tag, "OK", "Enabled")


async def _idle(s: ImapSession, cmd: Command) -> None:
    """RFC 2177. Changes are learnt from the mailbox's change events: an idling session
    lists its folder only when the mailbox's version moved, or as a safety net once every
    ``idle_resync`` seconds (a change made behind the server's back, e.g. a file dropped
    into a Maildir); waking every ``idle_poll`` seconds costs no store call."""
    s.out.append(b"+ idling")
    await s.flush()
    events = s.services.events
    loop = asyncio.get_running_loop()
    read = asyncio.ensure_future(s._await_client(s._line()))
    deadline = loop.time() + s.services.idle_timeout
    resync_at = loop.time() + s.services.idle_resync
    try:
        while True:
            sel = s.selected
            waiter: asyncio.Future[Any]  # only its completion matters, not its result
            poll = s.services.idle_poll
            if sel is not None:
                waiter = asyncio.ensure_future(events.wait(sel.mailbox, sel.version, poll))
            else:
                waiter = asyncio.ensure_future(asyncio.sleep(poll))
            remaining = deadline - loop.time()
            done, _ = await asyncio.wait({read, waiter}, timeout=max(remaining, 0),
                                         return_when=asyncio.FIRST_COMPLETED)
            if read in done:
                waiter.cancel()
                line = read.result()
                if line is None:
                    raise Close
                if line.strip().upper() == b"DONE":
                    s.tagged(cmd.tag, "OK", "Idle completed")
                else:
                    s.tagged(cmd.tag, "BAD", "Expected DONE")
                return
            if not done:
                waiter.cancel()
                s.untagged("BYE Autologout; idle for too long")
                raise Close
            if sel is not None:
                safety = loop.time() >= resync_at
                if safety:
                    resync_at = loop.time() + s.services.idle_resync
                await s.updates(force=safety)
                await s.flush()
    finally:
        if not read.done():
            read.cancel()


# -- not authenticated -------------------------------------------------------------------

async def _starttls(s: ImapSession, cmd: Command) -> None:
    context = s.services.tls_context
    if context is None or s.tls_active:
        s.tagged(cmd.tag, "BAD", "STARTTLS not available")
        return
    s.tagged(cmd.tag, "OK", "Begin TLS negotiation now")
    await s.flush()
    s.reader._buffer.clear()  # type: ignore[attr-defined]  # no plaintext injection
    async with asyncio.timeout(SEND_TIMEOUT):
        await s.writer.start_tls(context)
    s.tls_active = True


async def _login(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Login)
    if not s.auth_allowed:
        s.tagged(cmd.tag, "NO", "Plaintext login is disabled until TLS is active "
                 "(use STARTTLS or port 993)", "PRIVACYREQUIRED")
        return
    await s.login(cmd.tag, cmd.user, cmd.password)


async def _authenticate(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Authenticate)
    if cmd.mechanism != "PLAIN":
        s.tagged(cmd.tag, "NO", "Unsupported authentication mechanism")
        return
    if not s.auth_allowed:
        s.tagged(cmd.tag, "NO", "Plaintext authentication is disabled until TLS is active",
                 "PRIVACYREQUIRED")
        return
    if cmd.initial_response is not None:
        response = cmd.initial_response.decode("ascii")
    else:
        s.out.append(b"+ ")
        await s.flush()
        async with asyncio.timeout(s.timeout):
            line = await s._line()
        if line is None:
            raise Close
        response = line.rstrip(b"\r\n").decode("ascii", "replace")
        if response == "*":
            s.tagged(cmd.tag, "BAD", "Authentication cancelled")
            return
    creds = decode_sasl_plain(response)
    if creds is None:
        s.tagged(cmd.tag, "BAD", "Malformed SASL PLAIN response")
        return
    await s.login(cmd.tag, *creds)


_ANY: dict[str, Callable[[ImapSession, Command], Awaitable[None]]] = {
    "CAPABILITY": _capability,
    "NOOP": _noop,
    "LOGOUT": _logout,
    "ID": _id,
}
_NOT_AUTHENTICATED: dict[str, Callable[[ImapSession, Command], Awaitable[None]]] = {
    "STARTTLS": _starttls,
    "LOGIN": _login,
    "AUTHENTICATE": _authenticate,
}
mailboxes.AUTHENTICATED.update({"ENABLE": _enable, "IDLE": _idle})
