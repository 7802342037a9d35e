"""The IMAP listener: plain with STARTTLS (port 143) or implicit TLS (port 993)."""

from __future__ import annotations

import asyncio
import socket

from mailward.imap.session import LINE_LIMIT, ImapServices, ImapSession


async def start_imap(services: ImapServices, *, sock: socket.socket,
                     implicit_tls: bool) -> asyncio.Server:
    """Serve IMAP on ``sock`` (bound; listened on here) in the running loop.

    With ``implicit_tls`` the TLS handshake starts the connection
    (``services.tls_context`` is required); otherwise the context, if any, is offered
    through STARTTLS, and logins wait for TLS unless ``allow_plaintext_auth``.
    A connection beyond the caps of ``services.limiter`` gets ``* BYE [UNAVAILABLE]``
    instead of the greeting and is closed.
    Close with ``server.close(); await server.wait_closed()``.
    """
    if implicit_tls and services.tls_context is None:
        raise ValueError("implicit TLS needs a tls_context")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await ImapSession(reader, writer, services, tls_active=implicit_tls).run()

    return await asyncio.start_server(
        handle,
        sock=sock,
        ssl=services.tls_context if implicit_tls else None,
        limit=LINE_LIMIT,
        ssl_handshake_timeout=60.0 if implicit_tls else None,
    )
