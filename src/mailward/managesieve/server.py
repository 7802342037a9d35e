"""The ManageSieve listener (RFC 5804): plain with STARTTLS, port 4190."""

from __future__ import annotations

import asyncio
import socket
import ssl

from mailward.managesieve.session import (
    DEFAULT_MAX_REDIRECTS,
    READ_LIMIT,
    Authenticator,
    ManageSieveSession,
)
from mailward.net.limits import ConnectionLimiter
from mailward.sieve.scripts import SieveScripts

DEFAULT_TIMEOUT = 600.0


async def start_managesieve(
    *,
    authenticator: Authenticator,
    scripts: SieveScripts,
    sock: socket.socket,
    hostname: str,
    tls_context: ssl.SSLContext | None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - per-session idle timeout
    allow_plaintext_auth: bool = False,
    preauth_timeout: float | None = None,
    preauth_max_literal: int = 8192,
    limiter: ConnectionLimiter | None = None,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
) -> asyncio.Server:
    """Serve ManageSieve on ``sock`` (bound; listened on here) in the running loop.

    ``tls_context``, if given, is offered through STARTTLS; ``AUTHENTICATE`` is refused
    (``NO (ENCRYPT-NEEDED)``) until TLS is active unless ``allow_plaintext_auth``.
    ``timeout`` is each session's idle timeout in seconds, ``preauth_timeout`` (default:
    ``timeout``) the one until the client has logged in, ``preauth_max_literal`` the
    largest literal accepted before it has. A logged-in session edits the scripts of the
    mailbox it logged in as, through ``scripts``. A connection beyond the caps of
    ``limiter`` gets ``BYE (TRYLATER)`` instead of the greeting and is closed.

    Close with ``server.close(); await server.wait_closed()``.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = ManageSieveSession(
            reader,
            writer,
            authenticator=authenticator,
            scripts=scripts,
            hostname=hostname,
            tls_context=tls_context,
            allow_plaintext_auth=allow_plaintext_auth,
            timeout=timeout,
            preauth_timeout=preauth_timeout,
            preauth_max_literal=preauth_max_literal,
            limiter=limiter,
            max_redirects=max_redirects,
        )
        await session.run()

    return await asyncio.start_server(handle, sock=sock, limit=READ_LIMIT)
