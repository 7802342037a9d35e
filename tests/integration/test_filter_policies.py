"""Filter policies and learning in the database, both backends: what a recipient's
policy is made of (address over domain over config), allow/block lists as the MX reads
them, and per-domain learning from corrections (one domain's lesson is not another's)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, Domain
from mailward.directory import Actor, Conflict, InvalidInput, NotFound
from mailward.filter import Finding
from mailward.filter.learning import DomainLearning
from mailward.filter.policy import PolicyStore, SenderRule
from mailward.quarantine.service import Hold, Quarantine

OP = Actor.operator()
NEWSLETTER = (b"From: deals@bargains.example\r\nTo: ann@acme.example\r\n"
              b"Subject: Weekly garden furniture picks\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n"
              b"Message-ID: <w1@bargains.example>\r\n\r\n"
              b"Our teak benches and rattan chairs are back in stock this week.\r\n")


@pytest.fixture
async def world(directory: Services) -> Services:
    for account, domain in (("Acme", "acme.example"), ("Bolt", "bolt.example")):
        await directory.accounts.create(OP, account)
        await directory.domains.create(OP, domain, account=account)
    await directory.bulk.add_lines(OP, ["ann@acme.example", "ben@acme.example"],
                                   AddressList.FILTER)
    await directory.bulk.add_lines(OP, ["cy@bolt.example"], AddressList.FILTER)
    return directory


async def acme_actor(directory: Services) -> Actor:
    [acme] = [a for a in await directory.accounts.list(OP) if a.name == "Acme"]
    return Actor.for_account(acme.id, "admin@acme.example")


async def test_policies_layer_address_over_domain_over_config(world: Services,
                                                              settings: Settings) -> None:
    admin = await acme_actor(world)
    await world.filter.set_policy(admin, {"tag_score": 3, "subject_tag": "[SPAM]",
                                          "dmarc_reject": "reject"}, domain="acme.example")
    view = await world.filter.set_policy(admin, {"quarantine_score": 6},
                                         address="ann@acme.example")
    assert view.quarantine_score == 6 and view.tag_score is None
    assert view.effective == {"tag_score": 3, "quarantine_score": 6,
                              "reject_score": settings.filter_reject_score,
                              "subject_tag": "[SPAM]", "dmarc_reject": "reject",
                              "bulk_action": "deliver", "bulk_score": -100.0,
                              "virus_action": "reject"}
    store = PolicyStore(world.db, settings)
    found = await store.policies(["ann@acme.example", "ben@acme.example", "cy@bolt.example",
                                  "who@nowhere.example"])
    ann, ben, cy = found["ann@acme.example"], found["ben@acme.example"], found["cy@bolt.example"]
    assert (ann.thresholds.tag, ann.thresholds.quarantine) == (3, 6)
    assert (ben.thresholds.tag, ben.thresholds.quarantine) == (3, settings.filter_quarantine_score)
    assert ann.subject_tag == ben.subject_tag == "[SPAM]" and ann.dmarc_reject == "reject"
    assert cy.thresholds.tag == settings.filter_tag_score and cy.subject_tag is None
    assert found["who@nowhere.example"].domain_id is None
    # back to inherit
    await world.filter.set_policy(admin, {"quarantine_score": None}, address="ann@acme.example")
    again = await store.policies(["ann@acme.example"])
    assert again["ann@acme.example"].thresholds.quarantine == settings.filter_quarantine_score


async def test_policy_errors_and_tenancy(world: Services) -> None:
    admin = await acme_actor(world)
    with pytest.raises(InvalidInput, match="thresholds must rise"):
        await world.filter.set_policy(admin, {"tag_score": 12}, domain="acme.example")
    with pytest.raises(InvalidInput, match="dmarc_reject"):
        await world.filter.set_policy(admin, {"dmarc_reject": "drop"}, domain="acme.example")
    with pytest.raises(InvalidInput, match="unknown filter setting"):
        await world.filter.set_policy(admin, {"spam": 1}, domain="acme.example")
    with pytest.raises(NotFound):  # another account's domain does not exist for Acme
        await world.filter.set_policy(admin, {"tag_score": 1}, domain="bolt.example")
    with pytest.raises(NotFound):
        await world.filter.add_sender(admin, "x@y.example", "allow", address="cy@bolt.example")
    view = await world.filter.get_policy(OP, domain="acme.example")
    assert view.tag_score is None  # the refused change left nothing behind


async def test_sender_lists_as_the_mx_reads_them(world: Services, settings: Settings) -> None:
    admin = await acme_actor(world)
    await world.filter.add_sender(admin, "@Shop.Example", "allow", domain="acme.example")
    await world.filter.add_sender(admin, "boss@shop.example", "block", address="ann@acme.example")
    with pytest.raises(Conflict):
        await world.filter.add_sender(admin, "shop.example", "block", domain="acme.example")
    listed = await world.filter.list_senders(admin, domain="acme.example")
    assert [(r.address, r.sender, r.action) for r in listed] == [
        (None, "shop.example", "allow"), ("ann@acme.example", "boss@shop.example", "block")]
    found = await PolicyStore(world.db, settings).policies(["ann@acme.example",
                                                            "ben@acme.example"])
    assert found["ann@acme.example"].rules == (
        SenderRule("boss@shop.example", "block", "address"),
        SenderRule("shop.example", "allow", "domain"))
    assert found["ben@acme.example"].rules == (SenderRule("shop.example", "allow", "domain"),)
    removed = await world.filter.remove_sender(admin, "shop.example", domain="acme.example")
    assert removed.action == "allow"
    with pytest.raises(NotFound):
        await world.filter.remove_sender(admin, "shop.example", domain="acme.example")


async def test_corrections_are_learnt_per_domain(world: Services) -> None:
    admin = await acme_actor(world)
    mx_side = DomainLearning(world.db)
    ids = await _domain_ids(world)
    assert await mx_side.findings(ids_by_name(ids), NEWSLETTER) == {}
    learnt = await world.filter.train(admin, NEWSLETTER, spam=True, domain="acme.example")
    assert learnt.before < 0.9 <= learnt.after and learnt.steps >= 1
    found = await mx_side.findings(ids_by_name(ids), NEWSLETTER)
    assert list(found) == [ids["acme.example"]]  # Bolt never said anything
    assert found[ids["acme.example"]].score > 0
    assert found[ids["acme.example"]].check == "learned"
    # a fresh process reads the same model; a ham correction pulls it back
    fresh = DomainLearning(world.db)
    assert (await fresh.findings(ids_by_name(ids), NEWSLETTER)).keys() == found.keys()
    await world.filter.train(admin, NEWSLETTER, spam=False, domain="acme.example")
    after = await fresh.findings(ids_by_name(ids), NEWSLETTER)
    assert after.get(ids["acme.example"]) is None or after[ids["acme.example"]].score < 0
    # an IMAP Junk move (the mailbox user's own report) lands in the same model
    await world.filter.report("ben@acme.example", NEWSLETTER, True)
    assert (await fresh.findings(ids_by_name(ids), NEWSLETTER))[ids["acme.example"]].score > 0
    with pytest.raises(InvalidInput):
        await world.filter.train(admin, b"  ", spam=True, domain="acme.example")


def ids_by_name(ids: dict[str, int]) -> dict[int, str]:
    return {i: n for n, i in ids.items()}


async def _domain_ids(directory: Services) -> dict[str, int]:
    async with directory.db.session() as session:
        return {n: i for i, n in await session.execute(select(Domain.id, Domain.name))}


async def test_release_stands_when_the_sender_is_blocked_and_ids_are_not_reused(
        world: Services, settings: Settings) -> None:
    store = Quarantine(world.db, settings)

    async def hold() -> int:
        await store.hold(sender="deals@bargains.example", peer="192.0.2.1", data=NEWSLETTER,
                         score=11.0, findings=(Finding("content", 11.0, "x"),),
                         holds=[Hold("ann@acme.example", "score 11")])
        return (await world.quarantine.list(OP, address="ann@acme.example")).items[0].id

    first = await hold()
    await world.filter.add_sender(OP, "deals@bargains.example", "block",
                                  address="ann@acme.example")
    released = await world.quarantine.release(OP, first, allow_sender=True)
    assert released.entry.status == "released" and released.allowed is None
    rules = await world.filter.list_senders(OP, address="ann@acme.example")
    assert [(r.sender, r.action) for r in rules] == [("deals@bargains.example", "block")]
    await world.quarantine.delete(OP, first)
    assert await hold() > first  # an old release link can never name a newer message
