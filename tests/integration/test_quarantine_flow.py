"""Quarantine and per-recipient policies end to end over SMTP, both backends: smtplib →
our mx (filter on, DNS from a loopback server) → quarantine or the customer's server;
release delivers, learns ham and allows the sender; block lists and DMARC p=reject
handling refuse at DATA when every recipient says so."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator

import pytest
from dns_server import dns_server
from mail_helpers import (
    Sink,
    filter_mail,
    mail_roles,
    mail_settings,
    port_of,
    sink_server,
    smtp_send,
)

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor, Conflict

OP = Actor.operator()
ZONE = """
shop.example.        300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
spam.example.        300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
evil.example.        300 IN TXT "v=spf1 -all"
_dmarc.evil.example. 300 IN TXT "v=DMARC1; p=reject"
"""
ANN, BEN = "ann@acme.example", "ben@acme.example"


def mail(sender: str, subject: str, *, attachment: str | None = None) -> bytes:
    return filter_mail(sender, ANN, subject, attachment=attachment)


@pytest.fixture
async def world(settings: Settings, directory: Services) -> AsyncIterator[tuple[int, Sink]]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme")
    await directory.bulk.add_lines(OP, [ANN, BEN], AddressList.FILTER)
    # ann: quarantine from 6 points; ben: only tagged up to 40 (with the domain's subject tag)
    await directory.filter.set_policy(OP, {"subject_tag": "[SPAM]"}, domain="acme.example")
    await directory.filter.set_policy(OP, {"quarantine_score": 6, "reject_score": 50},
                                      address=ANN)
    await directory.filter.set_policy(OP, {"quarantine_score": 40, "reject_score": 50},
                                      address=BEN)
    with dns_server(ZONE) as nameserver:
        async with sink_server() as customer:
            await directory.servers.add(OP, "acme.example", customer.address, preference=10)
            configured = mail_settings(settings, spam_filter=True,
                                       dns_nameservers=[nameserver], dns_timeout_seconds=1)
            async with mail_roles(configured) as urls:
                yield port_of(urls["mx"]), customer


async def test_own_verdicts_quarantine_release_and_allow(world: tuple[int, Sink],
                                                         directory: Services) -> None:
    mx, customer = world
    # (with fields of ours the sender made up: no copy may carry them)
    spam = filter_mail("sales@shop.example", ANN, "Your documents",
                       attachment="documents.pdf.exe",
                       extra={"X-Spam-Flag": "NO", "X-Mailward-Quarantine": "released by x"})
    await asyncio.to_thread(smtp_send, mx, "sales@shop.example", [ANN, BEN], spam)
    [ben] = await customer.wait_for(1)  # ben's copy is tagged; ann's is held
    assert ben.recipients == [BEN]
    assert ben.message["X-Spam-Flag"] == "YES" and ben.message["Subject"] == "[SPAM] Your documents"
    [held] = (await directory.quarantine.list(OP, address=ANN)).items
    assert held.subject == "Your documents" and held.sender == "sales@shop.example"
    assert "quarantine threshold 6" in held.reason and held.score >= 6
    assert (await directory.quarantine.list(OP, address=BEN)).total == 0

    released = await directory.quarantine.release(OP, held.id, allow_sender=True)
    assert released.learnt and released.allowed == "sales@shop.example"
    [_ben, ann] = await customer.wait_for(2)
    assert ann.recipients == [ANN]
    assert ann.message["Subject"] == "Your documents" and ann.message["X-Spam-Flag"] is None
    [marker] = ann.message.get_all("X-Mailward-Quarantine")  # ours alone
    assert marker.startswith("released by operator on ")
    assert ann.message["Authentication-Results"].startswith("mx.mailward.test; spf=pass")
    rules = await directory.filter.list_senders(OP, address=ANN)
    assert [(r.sender, r.action) for r in rules] == [("sales@shop.example", "allow")]
    with pytest.raises(Conflict, match="already released"):
        await directory.quarantine.release(OP, held.id)

    # the sender is now on ann's allow list: the same mail reaches her, marked not spam
    # (the allow list named among the tests), subject untouched
    await asyncio.to_thread(smtp_send, mx, "sales@shop.example", [ANN], spam)
    copies = await customer.wait_for(3)
    allowed = copies[2].message
    assert copies[2].recipients == [ANN] and allowed["X-Spam-Flag"] == "NO"
    assert allowed["X-Spam-Status"].startswith("No, score=") and "allow-list=0" in allowed[
        "X-Spam-Status"] and allowed["Subject"] == "Your documents"
    assert (await directory.quarantine.list(OP, address=ANN, status=None)).total == 1


async def test_block_list_and_dmarc_reject_refuse_at_data(world: tuple[int, Sink],
                                                          directory: Services) -> None:
    mx, customer = world
    await directory.filter.add_sender(OP, "spam.example", "block", domain="acme.example")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(smtp_send, mx, "x@spam.example", [ANN, BEN],
                                mail("x@spam.example", "Hello there"))
    assert refused.value.smtp_code == 550 and b"blocked" in refused.value.smtp_error

    forged = mail("ceo@evil.example", "Payment run")
    await directory.filter.set_policy(OP, {"dmarc_reject": "reject"}, domain="acme.example")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(smtp_send, mx, "ceo@evil.example", [BEN], forged)
    assert refused.value.smtp_code == 550 and b"DMARC" in refused.value.smtp_error
    # the same domain set to quarantine such mail: accepted and held, nothing delivered
    await directory.filter.set_policy(OP, {"dmarc_reject": "quarantine"}, domain="acme.example")
    await asyncio.to_thread(smtp_send, mx, "ceo@evil.example", [BEN], forged)
    [held] = (await directory.quarantine.list(OP, address=BEN)).items
    assert held.subject == "Payment run" and held.reason.startswith("DMARC failed")
    assert customer.received == []
