"""The panel's Quarantine page over a real socket (both backends): an account admin lists
the held mail of their account only, reads a message's findings, releases it allowing the
sender, deletes another; another account's message is 404."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_server import running_server
from panel_client import Panel, messages, rows

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.filter import Finding
from mailward.quarantine.service import Hold, Quarantine

OP = Actor.operator()
ADMIN_PASSWORD = "Boss-pass-4471"


def raw(subject: str, sender: str) -> bytes:
    return (f"From: {sender}\r\nTo: ann@acme.example\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '')}@x.example>\r\n\r\nbody\r\n").encode()


@pytest.fixture
async def admin(settings: Settings, directory: Services) -> AsyncIterator[Panel]:
    for account, domain in (("Acme", "acme.example"), ("Bolt", "bolt.example")):
        await directory.accounts.create(OP, account)
        await directory.domains.create(OP, domain, account=account)
    await directory.bulk.add_lines(OP, ["ann@acme.example|Blue-sky-7788",
                                        "dan@acme.example|Red-sun-9911"], AddressList.FILTER)
    await directory.bulk.add_lines(OP, ["cy@bolt.example"], AddressList.FILTER)
    await directory.accounts.create_user(OP, "admin@acme.example", ADMIN_PASSWORD,
                                         account="Acme")
    store = Quarantine(directory.db, settings)
    why = (Finding("content", 11.0, "content model: 1.00 spam"),)
    for subject, sender, rcpt in (("Cheap watches", "deals@shop.example", "ann@acme.example"),
                                  ("Lottery win", "win@lotto.example", "ann@acme.example"),
                                  ("Bolt secret", "x@y.example", "cy@bolt.example")):
        await store.hold(sender=sender, peer="192.0.2.7", data=raw(subject, sender),
                         score=11.0, findings=why,
                         holds=[Hold(rcpt, "score 11 ≥ quarantine threshold 10")])
    async with running_server(settings) as url, httpx.AsyncClient(base_url=url,
                                                                  timeout=30) as http:
        panel = Panel(http)
        await panel.login("admin@acme.example", ADMIN_PASSWORD)
        yield panel


async def test_admin_reviews_releases_and_deletes(admin: Panel, directory: Services) -> None:
    listing = await admin.get("/panel/accounts/Acme/quarantine")
    held = rows(listing, "quarantined mail")
    assert sorted(r[3] for r in held) == ["Cheap watches", "Lottery win"]  # not Bolt's
    ids = {e.subject: e.id for e in (await directory.quarantine.list(OP)).items}
    page = await admin.get(f"/panel/accounts/Acme/quarantine/{ids['Cheap watches']}")
    assert rows(page, "findings") == [["content", "11.0", "content model: 1.00 spam"]]
    assert "Subject: Cheap watches" in page

    released = await admin.post(f"/panel/accounts/Acme/quarantine/{ids['Cheap watches']}/release",
                                {"allow_sender": "yes"})
    assert messages(released) == ["Released to ann@acme.example and deals@shop.example is on "
                                  "the allow list."]
    queued = await directory.queue.list(OP)
    assert [(q.recipient, q.origin) for q in queued.items] == [("ann@acme.example", "release")]
    again = await admin.post(f"/panel/accounts/Acme/quarantine/{ids['Cheap watches']}/release",
                             {})
    assert "was already released" in messages(again)[0]

    deleted = await admin.post(f"/panel/accounts/Acme/quarantine/{ids['Lottery win']}/delete")
    assert messages(deleted) == ["Deleted the message to ann@acme.example."]
    assert rows(deleted, "quarantined mail") == [["No held mail."]]
    everything = (await admin.http.get("/panel/accounts/Acme/quarantine",
                                       params={"status": "all"})).text
    assert [r[6] for r in rows(everything, "quarantined mail")] == ["released"]

    # Bolt's message and Bolt's account do not exist for Acme's admin
    await admin.get(f"/panel/accounts/Acme/quarantine/{ids['Bolt secret']}", status=404)
    await admin.post(f"/panel/accounts/Acme/quarantine/{ids['Bolt secret']}/delete",
                     status=404)
    await admin.get("/panel/accounts/Bolt/quarantine", status=404)
    assert (await directory.quarantine.list(OP, address="cy@bolt.example")).total == 1


async def test_mailbox_user_releases_their_own_held_mail(admin: Panel, settings: Settings,
                                                        directory: Services) -> None:
    ids = {e.subject: e.id for e in (await directory.quarantine.list(OP)).items}
    async with httpx.AsyncClient(base_url=str(admin.http.base_url), timeout=30) as http:
        ann = Panel(http)
        mine = await ann.login("ann@acme.example", "Blue-sky-7788")
        assert sorted(r[2] for r in rows(mine, "held mail")) == ["Cheap watches", "Lottery win"]
        done = await ann.post(f"/panel/me/quarantine/{ids['Lottery win']}/release")
        assert messages(done) == ["Released: 'Lottery win' is on its way to your mailbox."]
        assert [r[2] for r in rows(done, "held mail")] == ["Cheap watches"]
        await ann.post(f"/panel/me/quarantine/{ids['Bolt secret']}/delete", status=404)
    async with httpx.AsyncClient(base_url=str(admin.http.base_url), timeout=30) as http:
        dan = Panel(http)
        theirs = await dan.login("dan@acme.example", "Red-sun-9911")
        assert rows(theirs, "held mail") == [["Nothing held."]]  # ann's mail is not dan's
        await dan.post(f"/panel/me/quarantine/{ids['Cheap watches']}/release", status=404)
    assert [(q.recipient, q.origin) for q in (await directory.queue.list(OP)).items] == [
        ("ann@acme.example", "release")]
    [entry] = (await directory.audit.search(OP, action="quarantine.")).items
    assert entry.source.endswith("(mailbox user)") and entry.actor == "ann@acme.example"
