"""One ManageSieve session (RFC 5804): non-authenticated → authenticated → logout.

The mailbox a session edits is the address its login authenticated as, never one named by
the client. Each connection counts in ``mailward_connections_total{role="managesieve"}``,
an admitted one in ``mailward_sessions{protocol="managesieve"}`` while it lasts, each
command's time in ``mailward_command_seconds``; its log lines carry a session id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.managesieve.grammar import (
    Literal,
    ParseError,
    Token,
    response,
    split_literal,
    string,
    text_argument,
    tokenize,
)
from mailward.net.limits import ConnectionLimiter
from mailward.net.lines import OVERLONG, close_writer, read_line
from mailward.net.sasl import decode_sasl_plain
from mailward.obs.logs import reset_context, set_context
from mailward.obs.metrics import COMMAND_SECONDS, CONNECTIONS, SESSIONS
from mailward.sieve.grammar import SUPPORTED
from mailward.sieve.interpreter import Limits
from mailward.sieve.scripts import MAX_SCRIPT_BYTES, MAX_SCRIPTS, SieveScripts
from mailward.trace.ids import new_id

log = logging.getLogger(__name__)

READ_LIMIT = 8192  # longest command line (quoted strings are at most 1024 octets each)
MAX_ERRORS = 20  # malformed/failed commands before the session is closed
DISCARD_LIMIT = 1024 * 1024  # a logged-in client's oversized literal is read and dropped
REFUSE_TIMEOUT = 10.0  # seconds to send the refusal to a client over the connection caps
DEFAULT_MAX_REDIRECTS = Limits().max_redirects  # the MAXREDIRECTS capability


class Authenticator(Protocol):
    """Checks credentials; the caller adds directory lookups and rate limiting."""

    async def authenticate(self, login: str, password: str, peer: str) -> str | None:
        """The mailbox address (lower-case) for these credentials, else ``None``.

        Raise :class:`LoginDeferred` when the login may not be tried now (locked).
        """
        ...


class LoginDeferred(Exception):
    """The login is temporarily refused (too many failures): answered ``NO (TRYLATER)``."""


class _Bye(Exception):
    """Say ``BYE`` with this text and end the session."""


class _TooLarge(Exception):
    """A logged-in client sent (and we dropped) a literal over the script size limit."""


Handler = Callable[["ManageSieveSession", list[Token]], Awaitable[None]]


def _arguments(args: list[Token], *kinds: type) -> list[str | int]:
    """``args`` checked against ``kinds`` (``str``: a string, ``int``: a number)."""
    if len(args) != len(kinds):
        raise ParseError(f"Expected {len(kinds)} argument(s), got {len(args)}")
    out: list[str | int] = []
    for token, kind in zip(args, kinds, strict=True):
        if kind is int:
            if not isinstance(token, int):
                raise ParseError("Expected a number")
            out.append(token)
        else:
            out.append(text_argument(token))
    return out


class ManageSieveSession:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        authenticator: Authenticator,
        scripts: SieveScripts,
        hostname: str,
        tls_context: ssl.SSLContext | None,
        allow_plaintext_auth: bool,
        timeout: float,
        preauth_timeout: float | None = None,
        preauth_max_literal: int = 8192,
        limiter: ConnectionLimiter | None = None,
        implementation: str = "mailward",
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.authenticator = authenticator
        self.scripts = scripts
        self.hostname = hostname
        self.tls_context = tls_context
        self.tls_active = False
        self.allow_plaintext_auth = allow_plaintext_auth
        self.timeout = timeout
        self.preauth_timeout = timeout if preauth_timeout is None else preauth_timeout
        self.preauth_max_literal = preauth_max_literal
        self.limiter = limiter
        self.implementation = implementation
        self.max_redirects = max_redirects
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else str(peer or "")
        self.mailbox: str | None = None
        self.errors = 0
        self.session_id = new_id()

    # -- I/O -----------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(self.timeout):
            await self.writer.drain()

    @property
    def _idle(self) -> float:
        return self.timeout if self.mailbox is not None else self.preauth_timeout

    async def read_tokens(self, *, command: bool) -> list[Token] | None:
        """The next command's tokens (``command``) or a client's SASL response; ``None``
        at EOF. A malformed command is read to its end, then raises :class:`ParseError`."""
        tokens: list[Token] = []
        error: ParseError | None = None
        budget = self.preauth_max_literal if self.mailbox is None else MAX_SCRIPT_BYTES
        too_large = False
        first = True
        while True:
            async with asyncio.timeout(self._idle):
                line = await read_line(self.reader)
            if line is None:
                return None
            if line is OVERLONG:
                raise _Bye("Line too long")
            chunk, size = split_literal(line)
            if error is None:
                if first and not command and chunk:
                    chunk = b" " + chunk  # a SASL response is a bare string
                try:
                    tokens += tokenize(chunk, first=first and command)
                except ParseError as exc:
                    error = exc
            first = False
            if size is None:
                break
            if size > budget:
                if self.mailbox is None or size > DISCARD_LIMIT:
                    raise _Bye("Literal too large")
                await self._discard(size)
                too_large = True
                continue
            budget -= size
            async with asyncio.timeout(self._idle):
                tokens.append(Literal(await self.reader.readexactly(size)))
        if too_large:
            raise _TooLarge
        if error is not None:
            raise error
        return tokens

    async def _discard(self, size: int) -> None:
        while size:
            async with asyncio.timeout(self.timeout):
                size -= len(await self.reader.readexactly(min(size, 65536)))

    async def run(self) -> None:
        CONNECTIONS.labels("managesieve").inc()
        tokens = set_context(session=self.session_id)
        try:
            await self._run()
        finally:
            reset_context(tokens)

    async def _run(self) -> None:
        peer = self.writer.get_extra_info("peername")
        refused = self.limiter.admit(peer) if self.limiter is not None else None
        if refused is not None:
            with contextlib.suppress(Exception):
                self.writer.write(response("BYE", refused.capitalize(), "TRYLATER"))
                async with asyncio.timeout(REFUSE_TIMEOUT):
                    await self.writer.drain()
            await close_writer(self.writer, REFUSE_TIMEOUT)
            return
        sessions = SESSIONS.labels("managesieve")
        sessions.inc()
        try:
            await self.send(self.capability_lines() + response("OK", f"{self.hostname} "
                                                               "ManageSieve ready"))
            while await self.next_command():
                pass
        except _Bye as exc:
            with contextlib.suppress(Exception):
                await self.send(response("BYE", str(exc)))
        except TimeoutError:
            with contextlib.suppress(Exception):
                self.writer.write(response("BYE", "Idle timeout, closing connection"))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except Exception:  # e.g. the database is unreachable: say so, then close
            log.exception("managesieve session of %s failed", self.mailbox or self.peer)
            with contextlib.suppress(Exception):
                await self.send(response("BYE", "Internal error, try again later",
                                         "TRYLATER"))
        finally:
            sessions.dec()
            if self.limiter is not None:  # before closing: the client may come back at once
                self.limiter.release(peer)
            await close_writer(self.writer, None)


    async def fail(self, text: str, code: str | None = None) -> None:
        """Answer ``NO``; end the session with ``BYE`` after too many of them."""
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            raise _Bye("Too many errors, closing connection")
        await self.send(response("NO", text, code))

    # -- dispatch ------------------------------------------------------------------

    async def next_command(self) -> bool:
        """Read and answer one command; ``False`` when the session ends."""
        try:
            tokens = await self.read_tokens(command=True)
        except ParseError as exc:
            await self.fail(str(exc))
            return True
        except _TooLarge:
            await self.fail(f"Script larger than {MAX_SCRIPT_BYTES} octets", "QUOTA/MAXSIZE")
            return True
        if tokens is None:
            return False
        name, args = str(tokens[0]), tokens[1:]
        table = _AUTHENTICATED if self.mailbox is not None else _NON_AUTHENTICATED
        handler = table.get(name)
        if handler is None:
            known = name in _AUTHENTICATED or name in _NON_AUTHENTICATED
            await self.fail("Command not allowed in this state" if known
                            else f"Unknown command {name}")
            return True
        started = time.perf_counter()
        try:
            await handler(self, args)
        except ParseError as exc:
            await self.fail(f"{name}: {exc}")
        except _Logout:
            return False
        finally:
            COMMAND_SECONDS.labels("managesieve", name).observe(time.perf_counter() - started)
        return True

    # -- any state -----------------------------------------------------------------

    @property
    def auth_allowed(self) -> bool:
        return self.tls_active or self.allow_plaintext_auth

    def capability_lines(self) -> bytes:
        """The capability listing (RFC 5804 section 1.7), without the closing ``OK``."""
        lines: list[tuple[str, str | None]] = [
            ("IMPLEMENTATION", self.implementation),
            ("SASL", "PLAIN" if self.auth_allowed and self.mailbox is None else ""),
            ("SIEVE", " ".join(sorted(SUPPORTED))),
        ]
        if self.tls_context is not None and not self.tls_active and self.mailbox is None:
            lines.append(("STARTTLS", None))
        lines += [("MAXREDIRECTS", str(self.max_redirects)), ("VERSION", "1.0")]
        if self.mailbox is not None:
            lines.append(("UNAUTHENTICATE", None))
        return b"".join(
            string(key) + (b" " + string(value) if value is not None else b"") + b"\r\n"
            for key, value in lines)

    async def do_capability(self, args: list[Token]) -> None:
        _arguments(args)
        await self.send(self.capability_lines() + response("OK", "Capability completed"))

    async def do_noop(self, args: list[Token]) -> None:
        if len(args) > 1:
            raise ParseError("NOOP takes at most one argument")
        if args:
            tag = text_argument(args[0])
            await self.send(response("OK", "Done", "TAG " + string(tag).decode()))
        else:
            await self.send(response("OK", "Done"))

    async def do_logout(self, args: list[Token]) -> None:
        _arguments(args)
        await self.send(response("OK", "Logout completed"))
        raise _Logout

    # -- non-authenticated ---------------------------------------------------------

    async def do_starttls(self, args: list[Token]) -> None:
        _arguments(args)
        if self.tls_context is None or self.tls_active:
            await self.fail("STARTTLS not available")
            return
        await self.send(response("OK", "Begin TLS negotiation"))
        # Discard anything pipelined in plaintext after STARTTLS (command injection).
        self.reader._buffer.clear()  # type: ignore[attr-defined]
        async with asyncio.timeout(self.timeout):
            await self.writer.start_tls(self.tls_context)
        self.tls_active = True
        # RFC 5804 section 2.2: the capabilities again, now over TLS
        await self.send(self.capability_lines() + response("OK", "TLS active"))

    async def do_authenticate(self, args: list[Token]) -> None:
        if not args or len(args) > 2:
            raise ParseError("AUTHENTICATE takes a mechanism and an optional response")
        mechanism = text_argument(args[0])
        if mechanism.upper() != "PLAIN":
            await self.fail(f"Unsupported SASL mechanism {mechanism}")
            return
        if not self.auth_allowed:
            await self.fail("Use STARTTLS first", "ENCRYPT-NEEDED")
            return
        if len(args) == 2:
            answer = text_argument(args[1])
        else:
            await self.send(b'""\r\n')  # the empty challenge
            tokens = await self.read_tokens(command=False)
            if tokens is None:
                raise _Logout
            if len(tokens) != 1:
                raise ParseError("Expected one string as the SASL response")
            answer = text_argument(tokens[0])
            if answer == "*":
                await self.fail("Authentication cancelled")
                return
        creds = decode_sasl_plain(answer)
        if creds is None:
            await self.fail("Malformed SASL PLAIN response")
            return
        try:
            mailbox = await self.authenticator.authenticate(*creds, self.peer)
        except LoginDeferred as exc:
            await self.fail(str(exc) or "Login temporarily refused", "TRYLATER")
            return
        if mailbox is None:
            await self.fail("Authentication failed")
            return
        self.mailbox = mailbox
        log.info("managesieve login %s from %s", mailbox, self.peer)
        await self.send(response("OK", "Logged in"))

    # -- authenticated -------------------------------------------------------------

    @property
    def _box(self) -> str:
        assert self.mailbox is not None
        return self.mailbox

    async def do_unauthenticate(self, args: list[Token]) -> None:
        _arguments(args)
        self.mailbox = None
        await self.send(response("OK", "Logged out; authenticate again"))

    async def _room(self, name: str, size: int) -> tuple[str, str] | None:
        """Why ``size`` octets under ``name`` would not fit: ``(code, text)``, or ``None``."""
        if size > MAX_SCRIPT_BYTES:
            return "QUOTA/MAXSIZE", f"Script larger than {MAX_SCRIPT_BYTES} octets"
        listing = await self.scripts.list(self._box)
        if len(listing) >= MAX_SCRIPTS and all(s.name != name for s in listing):
            return "QUOTA/MAXSCRIPTS", f"At most {MAX_SCRIPTS} scripts per mailbox"
        return None

    async def do_havespace(self, args: list[Token]) -> None:
        name, size = _arguments(args, str, int)
        refused = await self._room(str(name), int(size))
        if refused is not None:
            await self.fail(refused[1], refused[0])
            return
        await self.send(response("OK", "Putscript would succeed"))

    async def do_putscript(self, args: list[Token]) -> None:
        name, content = (str(a) for a in _arguments(args, str, str))
        refused = await self._room(name, len(content.encode("utf-8")))
        if refused is not None:
            await self.fail(refused[1], refused[0])
            return
        try:
            await self.scripts.put(self._box, name, content)
        except InvalidInput as exc:
            await self.fail(str(exc))
            return
        except Conflict as exc:
            await self.fail(str(exc), "TRYLATER")
            return
        await self.send(response("OK", "Script stored"))

    async def do_checkscript(self, args: list[Token]) -> None:
        (content,) = _arguments(args, str)
        try:
            await self.scripts.check(str(content))
        except InvalidInput as exc:
            await self.fail(str(exc))
            return
        await self.send(response("OK", "Script is valid"))

    async def do_listscripts(self, args: list[Token]) -> None:
        _arguments(args)
        listing = await self.scripts.list(self._box)
        lines = b"".join(string(s.name) + (b" ACTIVE" if s.active else b"") + b"\r\n"
                         for s in listing)
        await self.send(lines + response("OK", "Listscripts completed"))

    async def do_setactive(self, args: list[Token]) -> None:
        (name,) = (str(a) for a in _arguments(args, str))
        try:
            await self.scripts.set_active(self._box, name or None)
        except NotFound as exc:
            await self.fail(str(exc), "NONEXISTENT")
            return
        await self.send(response("OK", f"{name} is active" if name else "No script active"))

    async def do_getscript(self, args: list[Token]) -> None:
        (name,) = (str(a) for a in _arguments(args, str))
        try:
            content = await self.scripts.get(self._box, name)
        except NotFound as exc:
            await self.fail(str(exc), "NONEXISTENT")
            return
        data = content.encode("utf-8")
        await self.send(b"{%d}\r\n%s\r\n" % (len(data), data)
                        + response("OK", "Getscript completed"))

    async def do_deletescript(self, args: list[Token]) -> None:
        (name,) = (str(a) for a in _arguments(args, str))
        try:
            await self.scripts.delete(self._box, name)
        except NotFound as exc:
            await self.fail(str(exc), "NONEXISTENT")
            return
        except Conflict as exc:
            await self.fail(str(exc), "ACTIVE")
            return
        await self.send(response("OK", "Script deleted"))

    async def do_renamescript(self, args: list[Token]) -> None:
        old, new = (str(a) for a in _arguments(args, str, str))
        try:
            await self.scripts.rename(self._box, old, new)
        except NotFound as exc:
            await self.fail(str(exc), "NONEXISTENT")
            return
        except Conflict as exc:
            await self.fail(str(exc), "ALREADYEXISTS")
            return
        except InvalidInput as exc:
            await self.fail(str(exc))
            return
        await self.send(response("OK", "Script renamed"))


class _Logout(Exception):
    """The session ends after the response already written."""


_S = ManageSieveSession
_ANY: dict[str, Handler] = {
    "CAPABILITY": _S.do_capability, "NOOP": _S.do_noop, "LOGOUT": _S.do_logout,
}
_NON_AUTHENTICATED: dict[str, Handler] = {
    **_ANY, "STARTTLS": _S.do_starttls, "AUTHENTICATE": _S.do_authenticate,
}
_AUTHENTICATED: dict[str, Handler] = {
    **_ANY,
    "UNAUTHENTICATE": _S.do_unauthenticate,
    "HAVESPACE": _S.do_havespace,
    "PUTSCRIPT": _S.do_putscript,
    "CHECKSCRIPT": _S.do_checkscript,
    "LISTSCRIPTS": _S.do_listscripts,
    "SETACTIVE": _S.do_setactive,
    "GETSCRIPT": _S.do_getscript,
    "DELETESCRIPT": _S.do_deletescript,
    "RENAMESCRIPT": _S.do_renamescript,
}
