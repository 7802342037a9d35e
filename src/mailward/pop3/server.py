"""The POP3 listener: plain with STLS (port 110) or implicit TLS (port 995)."""

from __future__ import annotations

import asyncio
import socket
import ssl

from mailward.net.limits import ConnectionLimiter
from mailward.pop3.maildrop import DEFAULT_LOCKS, MaildropLocks
from mailward.pop3.session import READ_LIMIT, Pop3Authenticator, Pop3Session
from mailward.store import MailStore

DEFAULT_TIMEOUT = 600.0


async def start_pop3(
    *,
    authenticator: Pop3Authenticator,
    store: MailStore,
    sock: socket.socket,
    hostname: str,
    tls_context: ssl.SSLContext | None,
    implicit_tls: bool,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - per-session idle timeout
    allow_plaintext_auth: bool = False,
    locks: MaildropLocks = DEFAULT_LOCKS,
    preauth_timeout: float | None = None,
    limiter: ConnectionLimiter | None = None,
) -> asyncio.Server:
    """Serve POP3 on ``sock`` (bound; listened on here) in the running loop.

    With ``implicit_tls`` the TLS handshake starts the connection (``tls_context`` is
    required); otherwise ``tls_context``, if given, is offered through STLS.
    Authentication is refused until TLS is active unless ``allow_plaintext_auth``.
    ``timeout`` is each session's idle timeout in seconds, ``preauth_timeout`` (default:
    ``timeout``) the one until the client has logged in. ``locks`` is the in-process
    maildrop lock registry, shared by default by every listener of this process.
    A connection beyond the caps of ``limiter`` (share one among a role's listeners) gets
    ``-ERR [SYS/TEMP]`` (RFC 3206) instead of the greeting and is closed.

    Close with ``server.close(); await server.wait_closed()``.
    """
    if implicit_tls and tls_context is None:
        raise ValueError("implicit TLS needs a tls_context")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Pop3Session(
            reader,
            writer,
            authenticator=authenticator,
            store=store,
            locks=locks,
            hostname=hostname,
            tls_context=tls_context,
            tls_active=implicit_tls,
            allow_plaintext_auth=allow_plaintext_auth,
            timeout=timeout,
            preauth_timeout=preauth_timeout,
            limiter=limiter,
        )
        await session.run()

    return await asyncio.start_server(
        handle,
        sock=sock,
        ssl=tls_context if implicit_tls else None,
        limit=READ_LIMIT,
        ssl_handshake_timeout=timeout if implicit_tls else None,
    )
