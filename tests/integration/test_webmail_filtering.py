"""The spam filter inside webmail (mailward.webmail.filtering), both backends: the spam /
not-spam buttons move mail and teach the domain's model at once; the mailbox's own allow
and block list; mail held by our MX (filter on, SPF from a loopback DNS server) listed,
explained (score, findings, SPF/DKIM/DMARC), released into the mailbox, deleted — and
never reachable from another mailbox, not even one of the same account."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from dns_server import dns_server
from mail_helpers import eventually, filter_mail, mail_roles, mail_settings, port_of, smtp_send

from mailward.app import Services
from mailward.config import Settings
from mailward.core.errors import InvalidInput, NotFound
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.directory.facts import address_domain_keys
from mailward.quarantine.service import QuarantineDetail
from mailward.store import INBOX, MailStore, open_store
from mailward.webmail.filtering import MailFiltering, auth_results
from mailward.webmail.mailbox import MailboxView

OP = Actor.operator()
ANN, BEN, CY = "ann@acme.example", "ben@acme.example", "cy@bolt.example"
PASSWORD = "Mailbox-pass-77"
ZONE = """
shop.example.        300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
"""


@dataclass
class World:
    services: Services
    store: MailStore
    filtering: MailFiltering
    mx: int = 0


async def _directory(directory: Services) -> None:
    for account, domain in (("Acme", "acme.example"), ("Bolt", "bolt.example")):
        await directory.accounts.create(OP, account)
        await directory.domains.create(OP, domain, account=account, hosting=True)
        await directory.servers.auto_configure_hosting(OP, domain)
    await directory.bulk.add_lines(OP, [f"{a}|{PASSWORD}" for a in (ANN, BEN, CY)],
                                   AddressList.FILTER)
    for address in (ANN, BEN, CY):
        await directory.filter.set_policy(OP, {"quarantine_score": 6, "reject_score": 50},
                                          address=address)


@pytest.fixture
async def world(settings: Settings, directory: Services) -> World:
    await _directory(directory)
    configured = mail_settings(settings)
    services = Services(directory.db, configured)
    store = open_store(configured, directory.db)
    return World(services, store, MailFiltering(services, store))


@pytest.fixture
async def mx_world(settings: Settings, directory: Services) -> AsyncIterator[World]:
    await _directory(directory)
    with dns_server(ZONE) as nameserver:
        configured = mail_settings(settings, spam_filter=True, dns_nameservers=[nameserver],
                                   dns_timeout_seconds=1)
        services = Services(directory.db, configured)
        store = open_store(configured, directory.db)
        async with mail_roles(configured) as urls:
            yield World(services, store, MailFiltering(services, store), port_of(urls["mx"]))


def spammy(subject: str, to: str = ANN) -> bytes:
    return filter_mail("sales@shop.example", to, subject, attachment="invoice.pdf.exe")


async def learnt_points(services: Services, data: bytes) -> float:
    """The points the domain's own corrections add to ``data``'s score (0: none)."""
    async with services.db.session() as session:
        keys = await address_domain_keys(session, ANN)
    assert keys is not None
    found = await services.filter.learning.findings({keys[0]: "acme.example"}, data)
    return found[keys[0]].score if keys[0] in found else 0.0


async def test_spam_buttons_move_and_teach_at_once(world: World) -> None:
    store, filtering = world.store, world.filtering
    uid = (await store.deliver(ANN, spammy("Cheap pills"))).uid
    similar = spammy("Cheap pills now")
    assert await learnt_points(world.services, similar) == 0.0  # no corrections yet

    assert await filtering.report(ANN, INBOX, [uid], spam=True) == "Junk"
    assert await store.messages(ANN, INBOX) == []
    [junk] = await store.messages(ANN, "Junk")
    as_spam = await learnt_points(world.services, similar)
    assert as_spam > 0  # learnt before report() returned

    assert await filtering.report(ANN, "Junk", [junk.uid], spam=False) == INBOX
    assert len(await store.messages(ANN, INBOX)) == 1 and await store.messages(ANN, "Junk") == []
    assert await learnt_points(world.services, similar) < as_spam

    # another mailbox's buttons touch only its own folders
    [mine] = await store.messages(ANN, INBOX)
    ben_uid = (await store.deliver(BEN, spammy("Ben's mail", BEN))).uid
    assert ben_uid != mine.uid
    await filtering.report(BEN, INBOX, [mine.uid, ben_uid], spam=True)
    assert [m.uid for m in await store.messages(ANN, INBOX)] == [mine.uid]
    assert len(await store.messages(BEN, "Junk")) == 1


async def test_moving_into_junk_teaches_as_imap_does(world: World) -> None:
    view = MailboxView(world.services, world.store)
    await view.folders(ANN)
    uid = (await world.store.deliver(ANN, spammy("Cheap pills"))).uid
    similar = spammy("Cheap pills now")
    await view.move(ANN, INBOX, [uid], "Junk")
    assert await learnt_points(world.services, similar) > 0


async def test_sender_rules_are_the_mailbox_own(world: World) -> None:
    filtering, filters = world.filtering, world.services.filter

    async def rules(address: str) -> list[tuple[str, str]]:
        return [(r.sender, r.action) for r in await filters.list_senders(OP, address=address)]

    await filtering.sender_rule(ANN, "Deals@Shop.example", "allow")
    await filtering.sender_rule(ANN, "deals@shop.example", "allow")  # again: no error
    assert await rules(ANN) == [("deals@shop.example", "allow")]
    await filtering.sender_rule(ANN, "deals@shop.example", "block")  # off the allow list
    await filtering.sender_rule(ANN, "@spam.example", "block")
    assert await rules(ANN) == [("deals@shop.example", "block"), ("spam.example", "block")]
    assert await rules(BEN) == []
    assert [r.address for r in await filters.list_senders(OP, domain="acme.example")] == [
        ANN, ANN]  # not the whole domain's list
    with pytest.raises(InvalidInput):
        await filtering.sender_rule(ANN, "x@y.example", "maybe")


def test_auth_results_are_read_from_our_own_field_only() -> None:
    headers = ("Authentication-Results: mx.test;\r\n spf=pass smtp.mailfrom=a@shop.example;"
               "\r\n dkim=fail header.d=shop.example header.s=s1;\r\n"
               " dmarc=fail (p=reject) header.from=shop.example; arc=none\r\n"
               "Authentication-Results: mx.test; spf=fail; dmarc=pass\r\n"  # forged, later
               "Subject: x\r\n")
    found = auth_results(headers, "mx.test")
    assert found is not None
    assert (found.spf, found.spf_domain, found.dkim, found.dkim_domain) == (
        "pass", "shop.example", "fail", "shop.example")
    assert (found.dmarc, found.dmarc_domain, found.arc) == ("fail", "shop.example", "none")
    assert auth_results(headers, "other.test") is None
    assert auth_results("Subject: x\r\n", "mx.test") is None


async def test_held_mail_is_explained_released_and_kept_from_others(mx_world: World) -> None:
    filtering, services, store = mx_world.filtering, mx_world.services, mx_world.store
    for rcpt, subject in ((ANN, "Your documents"), (BEN, "Ben documents"),
                          (CY, "Cy documents")):
        await asyncio.to_thread(smtp_send, mx_world.mx, "sales@shop.example", [rcpt],
                                spammy(subject, rcpt))
    [ann_held] = (await filtering.held(ANN)).items
    [ben_held] = (await filtering.held(BEN)).items
    [cy_held] = (await filtering.held(CY)).items
    assert (ann_held.subject, ben_held.subject) == ("Your documents", "Ben documents")

    detail = await filtering.held_detail(ANN, ann_held.id)
    assert isinstance(detail, QuarantineDetail) and detail.entry.score >= 6
    assert "quarantine threshold 6" in detail.entry.reason
    assert {"spf", "content"} <= {str(f["check"]) for f in detail.findings}
    assert detail.auth is not None
    assert (detail.auth.spf, detail.auth.spf_domain) == ("pass", "shop.example")
    assert detail.auth.dkim == "none" and detail.auth.dmarc == "none"
    assert b"Subject: Your documents" in await filtering.held_content(ANN, ann_held.id)

    # neither a colleague of the same account nor another account reaches ann's mail
    for other in (BEN, CY):
        with pytest.raises(NotFound):
            await filtering.held_detail(other, ann_held.id)
        with pytest.raises(NotFound):
            await filtering.held_content(other, ann_held.id)
        with pytest.raises(NotFound):
            await filtering.release(other, ann_held.id)
        with pytest.raises(NotFound):
            await filtering.delete_held(other, ann_held.id)
    with pytest.raises(NotFound):
        await filtering.held_detail(ANN, cy_held.id)
    assert (await filtering.held(ANN)).total == 1

    await filtering.release(ANN, ann_held.id, always_allow=True)
    assert (await filtering.held(ANN)).total == 0
    delivered = await eventually(lambda: store.messages(ANN, INBOX))
    assert b"Subject: Your documents" in await store.fetch(ANN, INBOX, delivered[0].uid)
    rules = await services.filter.list_senders(OP, address=ANN)
    assert [(r.sender, r.action) for r in rules] == [("sales@shop.example", "allow")]

    await filtering.delete_held(BEN, ben_held.id)
    assert (await filtering.held(BEN)).total == 0
    assert (await filtering.held(CY)).total == 1
