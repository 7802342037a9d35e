"""A hostile message cannot stall the MX: a multi-MB message of tens of thousands of tiny
MIME parts is read only up to ``filter_max_parts`` (a scored finding says so), parsed off
the event loop, and answered with a proper code; meanwhile another session is served.

Real sockets: smtplib clients → our mx (spam filter on) → a customer server; DNS from a
loopback server that holds the filter's blocklist query until the other session has been
answered, so "B is answered while A is in the filter" is an ordering, not a timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser

import pytest
from dns_server import TableResolver, _serving
from dnslib import DNSRecord
from mail_helpers import Sink, mail_roles, mail_settings, port_of, sink_server, smtp_send

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor

OP = Actor.operator()
ZONE = 'sender.example. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
RHSBL = "rhsbl.test"
WAIT = 30.0


class GatedResolver(TableResolver):
    """Answers from the zone, but holds a blocklist query (the filter is then past its
    parse, inside its checks) until ``release``; ``asked`` tells that it came."""

    def __init__(self, zone: str) -> None:
        super().__init__(zone)
        self.asked = threading.Event()
        self.release = threading.Event()

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        if str(request.q.qname).rstrip(".").endswith(RHSBL):
            self.asked.set()
            self.release.wait(WAIT)
        return super().resolve(request, handler)


@contextlib.contextmanager
def gated_dns() -> Iterator[tuple[str, GatedResolver]]:
    resolver = GatedResolver(ZONE)
    try:
        with _serving(resolver, "127.0.0.1", 0) as port:
            yield f"127.0.0.1:{port}", resolver
    finally:
        resolver.release.set()


@dataclass
class World:
    mx: int
    customer: Sink
    dns: GatedResolver


@pytest.fixture
async def world(settings: Settings, directory: Services) -> AsyncIterator[World]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "filtered.example", account="Acme")
    await directory.bulk.add_lines(OP, ["ann@filtered.example"], AddressList.FILTER)
    with gated_dns() as (nameserver, resolver):
        async with sink_server() as customer:
            await directory.servers.add(OP, "filtered.example", customer.address,
                                        preference=10)
            configured = mail_settings(settings, spam_filter=True,
                                       dns_nameservers=[nameserver], dns_timeout_seconds=20,
                                       filter_rhsbl=[f"{RHSBL}:2"], filter_max_parts=200)
            async with mail_roles(configured) as urls:
                yield World(port_of(urls["mx"]), customer, resolver)


def hostile(parts: int) -> bytes:
    """A message of ``parts`` tiny text parts (about 40 bytes each)."""
    part = b"--p\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    return (b"From: Ann <ann@sender.example>\r\nTo: ann@filtered.example\r\n"
            b"Subject: many parts\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n"
            b"Message-ID: <many@sender.example>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + part * parts + b"--p--\r\n")


async def test_a_many_part_message_is_bounded_and_does_not_hold_other_sessions(
        world: World) -> None:
    data = hostile(60_000)
    assert len(data) > 2_000_000
    other = await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", world.mx, timeout=WAIT)
    try:
        assert (await asyncio.to_thread(other.ehlo, "b.example"))[0] == 250
        sending = asyncio.create_task(asyncio.to_thread(
            smtp_send, world.mx, "ann@sender.example", ["ann@filtered.example"], data))
        # A's DATA is in the filter (its blocklist query is held): B is served meanwhile
        assert await asyncio.to_thread(world.dns.asked.wait, WAIT)
        assert (await asyncio.to_thread(other.noop))[0] == 250
        assert (await asyncio.to_thread(other.ehlo, "b.example"))[0] == 250
        assert not sending.done()
        world.dns.release.set()
        await sending  # 250: smtplib raises on any refusal
    finally:
        world.dns.release.set()
        with contextlib.suppress(smtplib.SMTPException, OSError):
            await asyncio.to_thread(other.quit)
    [got] = await world.customer.wait_for(1)
    # (only the header block: policy.default would take seconds over 60,000 parts)
    status = BytesHeaderParser(policy=policy.default).parsebytes(got.data)["X-Spam-Status"]
    assert "MIME_TOO_MANY_PARTS=3" in status  # read up to the cap, and scored for it
    assert got.data.endswith(b"--p--\r\n")  # the message itself is delivered whole
