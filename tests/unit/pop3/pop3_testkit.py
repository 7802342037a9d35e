"""Helpers of the POP3 tests: a dict authenticator and a listener on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from mailward.pop3 import MaildropLocks, start_pop3
from mailward.store import MailStore

HOSTNAME = "pop.example.test"
ANN = "ann@example.com"
BOB = "bob@example.com"


@dataclass
class FakeAuth:
    """login → (password, mailbox); records every attempt."""

    users: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {ANN: ("ann-secret", ANN), "bob": ("bob pw", BOB)}
    )
    attempts: list[tuple[str, str, str]] = field(default_factory=list)

    async def authenticate(self, login: str, password: str, peer: str) -> str | None:
        self.attempts.append((login, password, peer))
        entry = self.users.get(login)
        return entry[1] if entry and entry[0] == password else None


@dataclass
class Listener:
    port: int
    auth: FakeAuth
    locks: MaildropLocks


@contextlib.asynccontextmanager
async def running_pop3(
    store: MailStore,
    *,
    tls_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    allow_plaintext_auth: bool = True,
    timeout: float = 30,  # noqa: ASYNC109 - the sessions' idle timeout
    locks: MaildropLocks | None = None,
) -> AsyncIterator[Listener]:
    sock = socket.create_server(("127.0.0.1", 0))
    auth = FakeAuth()
    locks = locks or MaildropLocks()
    try:
        server = await start_pop3(
            authenticator=auth,
            store=store,
            sock=sock,
            hostname=HOSTNAME,
            tls_context=tls_context,
            implicit_tls=implicit_tls,
            timeout=timeout,
            allow_plaintext_auth=allow_plaintext_auth,
            locks=locks,
        )
    except BaseException:
        sock.close()
        raise
    try:
        yield Listener(sock.getsockname()[1], auth, locks)
    finally:
        server.close()
        await server.wait_closed()


def message(subject: str, body: str = "Hello.\r\n") -> bytes:
    return (f"From: x@example.org\r\nTo: {ANN}\r\nSubject: {subject}\r\n\r\n{body}").encode()
