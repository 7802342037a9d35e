"""Fixtures of the SMTP listener tests: a scripted sink and a listener on 127.0.0.1."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trustme
from smtp_testkit import HOSTNAME, FakeSink, Listener, running_mx


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
async def mx(sink: FakeSink) -> AsyncIterator[Listener]:
    """A plain listener (no TLS), 10 000-byte message limit."""
    async with running_mx(sink) as listener:
        yield listener


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(HOSTNAME, "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
async def mx_tls(sink: FakeSink, server_tls: ssl.SSLContext) -> AsyncIterator[Listener]:
    """A listener offering STARTTLS with a trustme certificate."""
    async with running_mx(sink, tls_context=server_tls) as listener:
        yield listener
