"""Per-recipient decisions: thresholds, allow/block list precedence, DMARC p=reject
handling, and the header/subject changes of tagged copies."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mailward.filter.judge import spam_headers, with_subject_tag
from mailward.filter.learning import without_our_headers
from mailward.filter.pipeline import Action, Finding, Thresholds
from mailward.filter.policy import (
    Decision,
    RecipientPolicy,
    SenderRule,
    decide,
    message_senders,
    sender_matches,
)


@dataclass
class Auth:
    spf: str = "pass"
    dmarc: str = "pass"
    dmarc_policy: str = ""


def policy(*rules: SenderRule, tag: float = 5, quarantine: float = 10, reject: float = 15,
           dmarc_reject: str = "quarantine", subject_tag: str | None = None) -> RecipientPolicy:
    return RecipientPolicy("ann@acme.example", "acme.example", 1, 1,
                           Thresholds(tag, quarantine, reject), subject_tag, dmarc_reject, rules)


def judge(pol: RecipientPolicy, score: float, *, sender: str = "x@shop.example",
          from_: tuple[str, ...] = ("x@shop.example",), auth: Auth | None = None) -> Decision:
    return decide(pol, score, [Finding("content", score, "test")], envelope_sender=sender,
                  from_addresses=from_, auth=auth or Auth())


@pytest.mark.parametrize(("score", "action"), [
    (-1, Action.ACCEPT), (4.99, Action.ACCEPT), (5, Action.TAG), (9.9, Action.TAG),
    (10, Action.QUARANTINE), (15, Action.REJECT), (99, Action.REJECT)])
def test_default_thresholds(score: float, action: Action) -> None:
    assert judge(policy(), score).action is action


def test_own_thresholds_and_learnt_points() -> None:
    strict = policy(tag=2, quarantine=4, reject=6)
    assert judge(strict, 4.5).action is Action.QUARANTINE
    assert judge(policy(), 4.5).action is Action.ACCEPT
    learnt = decide(policy(), 4.0, [Finding("content", 4.0, "x")], envelope_sender="",
                    from_addresses=(), extra=[Finding("learned", 7.0, "acme's corrections")])
    assert learnt.action is Action.QUARANTINE and learnt.score == 11.0
    assert [f.check for f in learnt.findings] == ["content", "learned"]


def test_sender_matching() -> None:
    assert sender_matches("shop.example", "x@shop.example")
    assert sender_matches("shop.example", "x@mail.shop.example")
    assert not sender_matches("shop.example", "x@evilshop.example")
    assert sender_matches("x@shop.example", "x@shop.example")
    assert not sender_matches("x@shop.example", "y@shop.example")
    assert not sender_matches("shop.example", "")


def test_allow_and_block_lists() -> None:
    allowed = policy(SenderRule("shop.example", "allow", "domain"))
    assert judge(allowed, 40).action is Action.ACCEPT
    assert "allow list" in judge(allowed, 40).reason
    blocked = policy(SenderRule("shop.example", "block", "domain"))
    decision = judge(blocked, -5)
    assert decision.action is Action.REJECT and "block list" in decision.reason
    # the address's own list comes before the domain's
    mine_first = policy(SenderRule("shop.example", "allow", "address"),
                        SenderRule("shop.example", "block", "domain"))
    assert judge(mine_first, 40).action is Action.ACCEPT
    # an exact address beats a domain entry; block beats allow when equally specific
    exact = policy(SenderRule("shop.example", "block", "address"),
                   SenderRule("x@shop.example", "allow", "address"))
    assert judge(exact, 0).action is Action.ACCEPT
    tie = policy(SenderRule("x@shop.example", "allow", "address"),
                 SenderRule("x@shop.example", "block", "address"))
    assert judge(tie, 0).action is Action.REJECT


def test_allow_is_not_honoured_for_forged_senders() -> None:
    allowed = policy(SenderRule("bank.example", "allow", "address"))
    forged = judge(allowed, 12, sender="x@bank.example", from_=("x@bank.example",),
                   auth=Auth(spf="fail", dmarc="fail", dmarc_policy="none"))
    assert forged.action is Action.QUARANTINE and "ignored" in forged.reason
    # envelope-only match whose SPF failed
    spoofed = judge(allowed, 12, sender="x@bank.example", from_=("y@other.example",),
                    auth=Auth(spf="fail", dmarc="none"))
    assert spoofed.action is Action.QUARANTINE
    genuine = judge(allowed, 12, sender="x@bank.example", from_=("x@bank.example",))
    assert genuine.action is Action.ACCEPT


@pytest.mark.parametrize(("mode", "action"), [
    ("reject", Action.REJECT), ("quarantine", Action.QUARANTINE), ("score", Action.ACCEPT)])
def test_dmarc_reject_handling(mode: str, action: Action) -> None:
    failing = Auth(spf="fail", dmarc="fail", dmarc_policy="reject")
    decision = judge(policy(dmarc_reject=mode), 3, auth=failing)
    assert decision.action is action
    if mode != "score":
        assert decision.reason.startswith("DMARC failed")
    # a policy of quarantine from the sender's domain is only points
    assert judge(policy(dmarc_reject="reject"), 3,
                 auth=Auth(dmarc="fail", dmarc_policy="quarantine")).action is Action.ACCEPT


def test_subject_tag_and_headers() -> None:
    data = b"From: x@shop.example\r\nSubject: Offer\r\n\r\nbody\r\n"
    tagged = with_subject_tag(data, "[SPAM]")
    assert b"Subject: [SPAM] Offer\r\n" in tagged and tagged.endswith(b"\r\n\r\nbody\r\n")
    assert with_subject_tag(tagged, "[SPAM]") == tagged  # not twice
    no_subject = with_subject_tag(b"From: x@y.example\r\n\r\nhi\r\n", "[SPAM]")
    assert b"Subject: [SPAM]\r\n\r\nhi" in no_subject
    decision = judge(policy(), 7.5)
    headers = spam_headers(decision).decode()
    assert headers.startswith("X-Spam-Flag: YES\r\nX-Spam-Score: 7.5\r\n")
    assert "X-Spam-Status: Yes, score=7.5 tests=content=7.5\r\n" in headers
    assert without_our_headers(spam_headers(decision) + data) == data


def test_message_senders() -> None:
    data = b"From: \"Shop\" <Sales@Shop.Example>\r\nTo: a@b.example\r\n\r\nx\r\n"
    assert message_senders(data) == ("sales@shop.example",)
    assert message_senders(b"To: a@b.example\r\n\r\nx\r\n") == ()
