"""The spam filter in the mail flow, over real sockets (smtplib → our mx → customer
server), both backends, DNS from a loopback server: Authentication-Results on every copy
(forged ones of ours removed), spam refused at DATA when every recipient is filtered, and
mixed recipients each getting their own treatment."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator

import pytest
from filter_helpers import filtered_world
from mail_helpers import (
    Sink,
    filter_mail,
    smtp_send,
)

from mailward.app import Services
from mailward.config import Settings
from mailward.directory import Actor

OP = Actor.operator()
ZONE = """
good.example.        300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc.good.example. 300 IN TXT "v=DMARC1; p=reject"
evil.example.        300 IN TXT "v=spf1 -all"
_dmarc.evil.example. 300 IN TXT "v=DMARC1; p=reject"
"""
AUTHSERV = "mx.mailward.test"


def mail(sender: str, subject: str, *, attachment: str | None = None,
         forged: bool = False) -> bytes:
    # a forged one: a sender pretending we already checked it
    extra = {"Authentication-Results": f"{AUTHSERV}; spf=pass; dmarc=pass"} if forged else {}
    return filter_mail(sender, "ann@filtered.example", subject, attachment=attachment,
                       extra=extra)


@pytest.fixture
async def world(settings: Settings, directory: Services) -> AsyncIterator[tuple[int, Sink]]:
    async with filtered_world(settings, directory, ZONE) as world:
        yield world


async def test_authentication_results_and_a_clean_message(world: tuple[int, Sink]) -> None:
    mx, customer = world
    await asyncio.to_thread(smtp_send, mx, "anna@good.example", ["ann@filtered.example"],
                            mail("anna@good.example", "Quarterly report", forged=True))
    [got] = await customer.wait_for(1)
    results = got.message.get_all("Authentication-Results")
    assert results == [f"{AUTHSERV}; spf=pass smtp.mailfrom=anna@good.example; dkim=none; "
                       "dmarc=pass header.from=good.example; arc=none"]  # the forged one is gone
    assert got.message["X-Spam-Flag"] == "NO"  # the verdict, with its score and tests
    assert got.message["X-Spam-Status"].startswith(f"No, score={got.message['X-Spam-Score']} ")


async def test_the_gtube_test_string_is_refused_even_from_a_good_sender(
        world: tuple[int, Sink]) -> None:
    """What an operator sends to see the filter act: GTUBE from a sender passing SPF and
    DMARC is still refused for a Filter recipient, and reaches a Do Not Filter one."""
    mx, customer = world
    test = mail("anna@good.example", "Filter test").replace(
        b"the documents you asked for", b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-"
        b"TEST-EMAIL*C.34X")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(smtp_send, mx, "anna@good.example", ["ann@filtered.example"],
                                test)
    assert refused.value.smtp_code == 550 and b"5.7.1" in refused.value.smtp_error
    await asyncio.to_thread(smtp_send, mx, "anna@good.example", ["bob@filtered.example"], test)
    [got] = await customer.wait_for(1)
    assert got.recipients == ["bob@filtered.example"]


async def test_spam_is_refused_at_data_time(world: tuple[int, Sink],
                                            directory: Services) -> None:
    mx, customer = world
    spam = mail("ceo@evil.example", "Invoice", attachment="invoice.pdf.exe")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(smtp_send, mx, "ceo@evil.example", ["ann@filtered.example"], spam)
    assert refused.value.smtp_code == 550 and b"5.7.1" in refused.value.smtp_error
    # with a Do Not Filter recipient too: bob gets it as it is; ann's copy, which alone
    # would have been refused, is held in the quarantine (one answer covers both)
    await asyncio.to_thread(smtp_send, mx, "ceo@evil.example",
                            ["ann@filtered.example", "bob@filtered.example"], spam)
    [bob] = await customer.wait_for(1)
    assert bob.recipients == ["bob@filtered.example"] and bob.message["X-Spam-Flag"] is None
    assert bob.message["Authentication-Results"].startswith(
        f"{AUTHSERV}; spf=fail smtp.mailfrom=ceo@evil.example")
    held = (await directory.quarantine.list(OP, address="ann@filtered.example")).items
    assert [(h.recipient, h.sender, h.subject) for h in held] == [
        ("ann@filtered.example", "ceo@evil.example", "Invoice")]
    assert held[0].reason.startswith("score ") and "reject threshold 15" in held[0].reason
    detail = await directory.quarantine.show(OP, held[0].id)
    checks = {f["check"]: f["score"] for f in detail.findings}
    assert checks["rule:executable-attachment"] == 9 and checks["dmarc"] == 9
    assert "Authentication-Results: " + AUTHSERV in detail.headers
