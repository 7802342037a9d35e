"""Per-user learning (issue 21): a user's corrections reach that user's next message from
the same kind of sender, and nobody else's.

Over SMTP (smtplib → our mx with the filter on, DNS from a loopback server → quarantine or
the customer's server), both backends: a released newsletter's next issue is delivered
below the tag threshold; a reported spam's next variant is held; a forged From: line
earns no credit; colleagues and other domains are untouched. Then the memory itself:
per address, capped, expiring, and gone with its address.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage

import pytest
from dns_server import dns_server
from mail_helpers import Sink, mail_roles, mail_settings, port_of, sink_server, smtp_send

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.db.models import utcnow
from mailward.directory import Actor
from mailward.filter.auth import AuthOutcome, DkimOutcome
from mailward.filter.combine import POINTS_PER_LOGIT
from mailward.filter.learning import MAX_DOMAIN_LOGITS
from mailward.filter.parsed import parse_headers
from mailward.filter.personal import (
    HAM,
    MARGIN_LOGITS,
    SPAM,
    Memory,
    PersonalMemory,
    SenderKinds,
    SenderWeight,
    authenticated_domains,
    moved,
    needed_points,
    our_score,
    personal_finding,
    sender_keys,
)
from mailward.filter.pipeline import Thresholds

OP = Actor.operator()
ANN, BEN, CAT = "ann@acme.example", "ben@acme.example", "cat@other.example"
ZONE = """
letters.example.        300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc.letters.example. 300 IN TXT "v=DMARC1; p=none"
bounces.example.        300 IN TXT "v=spf1 -all"
promo.example.          300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
"""
NEWS = "news@letters.example"
DEALS = "deals@promo.example"


def newsletter(to: str, issue: int, topic: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Letters Weekly <{NEWS}>"
    msg["To"] = to
    msg["Subject"] = f"Letters Weekly #{issue}: {topic}"
    msg["Date"] = "Mon, 07 Dec 2026 08:00:00 +0000"
    msg["Message-ID"] = f"<issue-{issue}@letters.example>"
    msg["List-Id"] = "Letters Weekly <weekly.letters.example>"
    msg["List-Unsubscribe"] = f"<https://letters.example/unsubscribe?issue={issue}>"
    msg["Precedence"] = "bulk"
    msg.set_content(
        f"Letters Weekly, issue {issue}\n\nThis week: {topic}.\n\n"
        "Special offer for subscribers: click here to claim your free gift and save 50% on "
        "your next order. Limited time only, act now!\n\n"
        f"Read online: https://letters.example/issues/{issue}\n"
        "Unsubscribe: https://letters.example/unsubscribe\n")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def offer(to: str, n: int, subject: str, product: str, *, sender: str = DEALS) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Mon, 07 Dec 2026 09:00:00 +0000"
    msg["Message-ID"] = f"<offer-{n}@promo.example>"
    msg.set_content(f"Hello,\n\nwe thought you might like our {product} this week.\n"
                    f"See https://promo.example/p/{n}\n\nKind regards\n")
    return msg.as_bytes().replace(b"\n", b"\r\n")


@dataclass
class World:
    mx: int
    acme: Sink
    other: Sink

    async def send(self, sender: str, recipient: str, data: bytes) -> None:
        await asyncio.to_thread(smtp_send, self.mx, sender, [recipient], data)


@pytest.fixture
async def world(settings: Settings, directory: Services) -> AsyncIterator[World]:
    await directory.accounts.create(OP, "Acme")
    await directory.accounts.create(OP, "Other")
    await directory.domains.create(OP, "acme.example", account="Acme")
    await directory.domains.create(OP, "other.example", account="Other")
    await directory.bulk.add_lines(OP, [ANN, BEN], AddressList.FILTER)
    await directory.bulk.add_lines(OP, [CAT], AddressList.FILTER)
    with dns_server(ZONE) as nameserver:
        async with sink_server() as acme, sink_server() as other:
            await directory.servers.add(OP, "acme.example", acme.address, preference=10)
            await directory.servers.add(OP, "other.example", other.address, preference=10)
            configured = mail_settings(settings, spam_filter=True,
                                       dns_nameservers=[nameserver], dns_timeout_seconds=1)
            async with mail_roles(configured) as urls:
                yield World(port_of(urls["mx"]), acme, other)


def status_tests(message: EmailMessage) -> dict[str, float]:
    """The findings named in our X-Spam-Status of a delivered copy, with their points."""
    tests = str(message["X-Spam-Status"]).partition("tests=")[2]
    return {name: float(points) for name, _eq, points in
            (t.strip().rpartition("=") for t in tests.split(",") if "=" in t)}


async def delivered(sink: Sink, count: int) -> EmailMessage:
    """The ``count``-th message the customer's server got (waiting for it)."""
    return (await sink.wait_for(count))[count - 1].message


async def test_a_released_newsletters_next_issue_lands_in_the_inbox(
        world: World, directory: Services) -> None:
    # what the first issue scores here, read from a copy for cat; then ann, ben and cat
    # file such newsletters as spam: their quarantine threshold sits further below it than
    # the domain's model may move a message (ben shares ann's domain, cat does not)
    await world.send("bounce-0@letters.example", CAT, newsletter(CAT, 1, "Autumn reading"))
    first = float(str((await delivered(world.other, 1))["X-Spam-Score"]))
    quarantine = first - (MAX_DOMAIN_LOGITS + 1.5) * POINTS_PER_LOGIT
    for who in (ANN, BEN, CAT):
        await directory.filter.set_policy(OP, {"tag_score": quarantine - 1,
                                               "quarantine_score": quarantine,
                                               "reject_score": first + 40}, address=who)
    await world.send("bounce-1@letters.example", ANN, newsletter(ANN, 1, "Autumn reading"))
    [held] = (await directory.quarantine.list(OP, address=ANN)).items
    assert held.subject.startswith("Letters Weekly #1") and "quarantine threshold" in held.reason

    released = await directory.quarantine.release(OP, held.id)  # as the panel does
    assert released.learnt and released.allowed is None  # no allow-list entry: learning
    copy = await delivered(world.acme, 1)
    assert copy["Subject"].startswith("Letters Weekly #1")
    memory = await directory.filter.personal.memory(ANN)
    assert {k for k, w in memory.weights.items() if w.weight < 0} == {
        f"from:{NEWS}", "list:weekly.letters.example", "domain:letters.example"}

    # the next issue (another subject, body and bounce address): ann's inbox, below tag
    await world.send("bounce-2@letters.example", ANN, newsletter(ANN, 2, "Winter poems"))
    assert (await directory.quarantine.list(OP, address=ANN)).total == 0  # (held: at 250)
    issue2 = await delivered(world.acme, 2)
    assert issue2["Subject"] == "Letters Weekly #2: Winter poems"
    assert issue2["X-Spam-Flag"] == "NO", issue2["X-Spam-Status"]
    assert status_tests(issue2)[HAM] < 0

    # ann's corrections are hers: ben (same domain, whose model learnt the release too)
    # and cat (another domain) still have the next issue held
    for n, who in enumerate((BEN, CAT)):
        await world.send(f"bounce-{3 + n}@letters.example", who,
                         newsletter(who, 2, "Winter poems"))
        [theirs] = (await directory.quarantine.list(OP, address=who)).items
        assert theirs.subject == "Letters Weekly #2: Winter poems"
    # a forged From: line (SPF and DMARC fail) earns no credit from ann's memory: held
    await world.send("x@bounces.example", ANN, newsletter(ANN, 3, "Spring"))
    [forged] = (await directory.quarantine.list(OP, address=ANN)).items
    assert forged.subject == "Letters Weekly #3: Spring" and forged.sender == "x@bounces.example"
    assert len(world.acme.received) == 2 and len(world.other.received) == 1


async def test_a_reported_spams_next_variant_is_held(world: World,
                                                     directory: Services) -> None:
    # what the offer scores here (cat's copy); ann and ben tag just above it, and hold
    # further above than the domain's model may move a message
    await world.send("b0@promo.example", CAT, offer(CAT, 1, "Garden furniture", "garden chairs"))
    score = float(str((await delivered(world.other, 1))["X-Spam-Score"]))
    quarantine = score + 1 + (MAX_DOMAIN_LOGITS + 1.5) * POINTS_PER_LOGIT
    for who in (ANN, BEN):
        await directory.filter.set_policy(OP, {"tag_score": score + 1,
                                               "quarantine_score": quarantine,
                                               "reject_score": quarantine + 40}, address=who)
    await world.send("b1@promo.example", ANN, offer(ANN, 1, "Garden furniture", "garden chairs"))
    first = await delivered(world.acme, 1)  # not spam as far as ann's filter can tell
    assert first["X-Spam-Flag"] == "NO" and (await directory.quarantine.list(
        OP, address=ANN)).total == 0
    # ann reports it: what IMAP's SpamReporter (a move into Junk) and webmail's "this is
    # spam" button call, with the message as her mailbox has it
    await directory.filter.report(ANN, (await world.acme.wait_for(1))[0].data, spam=True)
    memory = await directory.filter.personal.memory(ANN)
    assert memory.weights[f"from:{DEALS}"].weight > 0 and memory.weights[
        f"from:{DEALS}"].spam == 1

    # a variant: another subject, body and envelope sender, same From: held for ann,
    # though the checks alone (the held score) stay below her quarantine threshold
    await world.send("b2@promo.example", ANN, offer(ANN, 2, "Patio umbrellas", "sun shades"))
    [held] = (await directory.quarantine.list(OP, address=ANN)).items
    assert held.subject == "Patio umbrellas" and "quarantine threshold" in held.reason
    assert held.score < quarantine
    # ben, in the same domain (whose model learnt the report too), gets the same variant
    # delivered, without ann's memory
    await world.send("b3@promo.example", BEN, offer(BEN, 2, "Patio umbrellas", "sun shades"))
    ben = await delivered(world.acme, 2)
    assert ben["Subject"] == "Patio umbrellas" and (await directory.quarantine.list(
        OP, address=BEN)).total == 0
    assert SPAM not in status_tests(ben) and HAM not in status_tests(ben)


# -- the memory, without SMTP -------------------------------------------------------------


def _policy_thresholds() -> Thresholds:
    return Thresholds(5.0, 10.0, 15.0)


def test_weights_move_towards_what_the_correction_needed() -> None:
    limits = _policy_thresholds()
    ham = needed_points(False, 12.0, limits)  # held at 12: needs to go below tag (5)
    assert 12.0 + ham < 5.0 and ham < 0
    spam = needed_points(True, 1.0, limits)  # delivered at 1: needs the quarantine (10)
    assert 1.0 + spam > 10.0
    assert needed_points(True, 30.0, limits) > 0 > needed_points(False, -30.0, limits)
    assert moved(0.0, -8.0) == -8.0 and moved(-10.0, -8.0) == -10.0  # never weaker
    assert moved(-10.0, 9.0) == 9.0  # the other direction replaces
    assert moved(0.0, 9.0, 0.5) == 4.5 and moved(4.5, 9.0, 0.5) == 9.0  # domains: by halves
    assert moved(9.0, 9.0, 0.5) == 9.0


def test_the_finding_prefers_the_most_specific_key_and_credits_only_authenticated_mail(
        ) -> None:
    msg = parse_headers(b"From: Shop <Sales@Mail.Shop.example>\r\nList-Id: <deals.shop.example>"
                        b"\r\nSubject: x\r\n\r\nbody\r\n")
    keys = sender_keys(msg, "bounce@elsewhere.example")
    assert [k.name for k in keys] == ["from:sales@mail.shop.example", "list:deals.shop.example",
                                      "domain:shop.example"]
    now = utcnow()
    memory = Memory({"domain:shop.example": SenderWeight("domain:shop.example", 4.0, 1, 0, now),
                     "list:deals.shop.example": SenderWeight("list:deals.shop.example", -6.0,
                                                             0, 1, now)})
    unsigned = SenderKinds(keys)
    signed = SenderKinds(keys, frozenset({"shop.example"}))
    found = personal_finding(memory, signed, ANN)
    assert found is not None and (found.check, found.score) == (HAM, -6.0)
    assert ANN in found.reason and "list:deals.shop.example" in found.reason
    # forged (nothing authenticated): the list's credit is passed over, the domain's
    # spam weight counts
    found = personal_finding(memory, unsigned, ANN)
    assert found is not None and (found.check, found.score) == (SPAM, 4.0)
    assert personal_finding(Memory(), signed) is None and personal_finding(memory, None) is None
    # what the MX's authentication vouches for: DMARC's From domain, SPF's, DKIM d=
    outcome = AuthOutcome("pass", "bounces.esp.example", "mail.shop.example",
                          (DkimOutcome("pass", "d.shop.example", "s"),
                           DkimOutcome("fail", "forged.example", "s")), dmarc="fail")
    assert authenticated_domains(outcome) == {"esp.example", "shop.example"}
    assert authenticated_domains(None) == frozenset()


def test_our_score_leaves_out_what_personal_findings_added() -> None:
    msg = parse_headers(b"X-Spam-Flag: NO\r\nX-Spam-Score: -3.5\r\nX-Spam-Status: No, "
                        b"score=-3.5 tests=content=2.5,personal-ham=-6\r\n"
                        b"From: a@b.example\r\n\r\nx\r\n")
    assert our_score(msg) == 2.5
    assert our_score(parse_headers(b"From: a@b.example\r\n\r\nx\r\n")) is None


async def test_memory_is_per_address_capped_expiring_and_goes_with_the_address(
        settings: Settings, directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme")
    await directory.bulk.add_lines(OP, [ANN, BEN], AddressList.FILTER)
    memory = PersonalMemory(directory.db, settings.model_copy(
        update={"filter_personal_entries": 3, "filter_personal_days": 10}))
    limits = _policy_thresholds()
    first = await memory.learn(ANN, offer(ANN, 1, "a", "b", sender="x@one.example"),
                               spam=True, thresholds=limits, score=0.0)
    assert first is not None and first.weights == {
        "from:x@one.example": pytest.approx(10 + MARGIN_LOGITS * POINTS_PER_LOGIT),
        "domain:one.example": pytest.approx((10 + MARGIN_LOGITS * POINTS_PER_LOGIT) / 2,
                                            abs=0.01)}
    assert await memory.learn("nobody@acme.example", offer(ANN, 1, "a", "b"), spam=True,
                              thresholds=limits) is None  # not a listed address
    await memory.learn(ANN, offer(ANN, 2, "a", "b", sender="y@two.example"), spam=False,
                       thresholds=limits, score=12.0)
    mine = await memory.memory(ANN)
    assert len(mine.weights) == 3 and "from:y@two.example" in mine.weights  # capped at 3
    assert mine.weights["from:y@two.example"].weight < 0
    assert not await memory.memory(BEN)  # another address remembers nothing of it
    # the policy store (what the MX reads) carries the memory to ann's policy alone
    policies = await directory.filter.policies.policies([ANN, BEN])
    assert "from:y@two.example" in policies[ANN].personal.weights
    assert not policies[BEN].personal
    # expired: not read, purged; a new correction starts afresh
    assert await memory.purge(utcnow() + timedelta(days=11)) == 3
    assert not await memory.memory(ANN)
    # gone with the address
    await memory.learn(ANN, offer(ANN, 3, "a", "b"), spam=True, thresholds=limits)
    assert await memory.memory(ANN)
    await directory.addresses.delete(OP, [ANN])
    await directory.bulk.add_lines(OP, [ANN], AddressList.FILTER)
    assert not await memory.memory(ANN)


def test_a_message_without_from_falls_back_to_the_envelope() -> None:
    msg = email.message_from_bytes(b"Subject: x\r\n\r\nx\r\n", policy=email.policy.compat32)
    assert [k.name for k in sender_keys(msg, "Ops@Host.example")] == [
        "from:ops@host.example", "domain:host.example"]
    assert sender_keys(msg, "") == ()
