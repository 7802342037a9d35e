"""Parse once on the MX path, over real sockets (smtplib → our mx → customer server), both
backends, DNS from a loopback server: a message DKIM-signed by its author and ARC-sealed
by a list is read by one full parse (``parsed.parse``) and one header index
(``HeaderIndex.of``), whatever reads it: SPF/DKIM/DMARC/ARC, the filter's checks, the
judge, the quarantine hold. ``parsed.PARSES`` counts every parse made in this process."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import dkim
import pytest
from filter_helpers import filtered_world
from mail_helpers import Sink, smtp_send

from mailward.app import Services
from mailward.config import Settings
from mailward.directory import Actor
from mailward.dkim.keys import generate_keypair
from mailward.filter.parsed import PARSES

OP = Actor.operator()
AUTHSERV = "mx.mailward.test"
AUTHOR_KEY = generate_keypair(1024)  # small: fast, and dkimpy accepts 1024-bit keys
LIST_KEY = generate_keypair(1024)
LIST_HOST = "lists.example.org"
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def txt(name: str, text: str) -> str:
    chunks = " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))
    return f"{name} 300 IN TXT {chunks}\n"


ZONE = (txt("author.example.", "v=spf1 ip4:127.0.0.1 -all")
        + txt("_dmarc.author.example.", "v=DMARC1; p=reject")
        + txt("s1._domainkey.author.example.", f"v=DKIM1; k=rsa; p={AUTHOR_KEY.public_b64}")
        + txt(f"arc._domainkey.{LIST_HOST}.", f"v=DKIM1; k=rsa; p={LIST_KEY.public_b64}"))


def signed_and_sealed(subject: str, text: bytes) -> bytes:
    """A message from anna@author.example, DKIM-signed by author.example, then sealed (ARC)
    by the list that passed it on unchanged."""
    message = (f"From: Anna <anna@author.example>\r\nTo: ann@filtered.example\r\n"
               f"Subject: {subject}\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n"
               f"Message-ID: <{subject.replace(' ', '')}@author.example>\r\n\r\n").encode() \
        + text + b"\r\n"
    message = dkim.sign(message, b"s1", b"author.example", AUTHOR_KEY.private_pem.encode(),
                        include_headers=[b"from", b"to", b"subject", b"date"]) + message
    message = (f"Authentication-Results: {LIST_HOST}; spf=pass smtp.mailfrom=anna@author."
               "example; dkim=pass header.d=author.example\r\n").encode() + message
    arc_set = dkim.arc_sign(message, b"arc", LIST_HOST.encode(), LIST_KEY.private_pem.encode(),
                            LIST_HOST.encode())
    return b"".join(arc_set) + message


@pytest.fixture
async def world(settings: Settings, directory: Services) -> AsyncIterator[tuple[int, Sink]]:
    async with filtered_world(settings, directory, ZONE) as world:
        yield world


async def send_counting(mx: int, recipients: list[str], data: bytes) -> Counter[str]:
    """The parses made while our mx takes one message (smtplib returns after the 250)."""
    before = Counter(PARSES)
    await asyncio.to_thread(smtp_send, mx, "anna@author.example", recipients, data)
    return Counter(PARSES) - before


async def test_a_signed_and_sealed_message_is_parsed_once(world: tuple[int, Sink]) -> None:
    mx, customer = world
    parses = await send_counting(mx, ["ann@filtered.example"],
                                 signed_and_sealed("Release plan", b"Shipping on Friday."))
    assert parses == Counter({"message": 1, "index": 1})  # no parse_headers, no second parse
    [got] = await customer.wait_for(1)
    # DKIM, DMARC and ARC were checked from that one index
    assert got.message["Authentication-Results"] == (
        f"{AUTHSERV}; spf=pass smtp.mailfrom=anna@author.example; dkim=pass "
        "header.d=author.example header.s=s1; dmarc=pass header.from=author.example; "
        "arc=pass")
    assert got.message["X-Spam-Flag"] == "NO" and got.message["Subject"] == "Release plan"


async def test_a_held_copy_is_parsed_once_too(world: tuple[int, Sink],
                                             directory: Services) -> None:
    """Refused for the Filter recipient (GTUBE), delivered to the Do Not Filter one: the
    quarantine hold reads From and Subject from the same index."""
    mx, customer = world
    parses = await send_counting(mx, ["ann@filtered.example", "bob@filtered.example"],
                                 signed_and_sealed("Filter test", GTUBE))
    assert parses == Counter({"message": 1, "index": 1})
    [bob] = await customer.wait_for(1)
    assert bob.recipients == ["bob@filtered.example"]
    [held] = (await directory.quarantine.list(OP, address="ann@filtered.example")).items
    assert (held.sender, held.from_header, held.subject) == (
        "anna@author.example", "Anna <anna@author.example>", "Filter test")
