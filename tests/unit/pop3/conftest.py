"""Fixtures of the POP3 tests: a Maildir store, a plaintext listener, trustme TLS."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from pop3_testkit import HOSTNAME, Listener, running_pop3

from mailward.store import MaildirStore


@pytest.fixture
def store(tmp_path: Path) -> MaildirStore:
    return MaildirStore(tmp_path / "mail")


@pytest.fixture
async def pop(store: MaildirStore) -> AsyncIterator[Listener]:
    """A plaintext listener allowing plaintext authentication (loopback tests)."""
    async with running_pop3(store) as listener:
        yield listener


@pytest.fixture(scope="session")
def pop3_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pop3_server_tls(pop3_ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pop3_ca.issue_cert(HOSTNAME, "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def pop3_client_tls(pop3_ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    pop3_ca.configure_trust(ctx)
    return ctx
