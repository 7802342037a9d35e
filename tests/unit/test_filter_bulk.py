"""Bulk classification: which headers make a message bulk, the 0-point ``bulk`` finding
naming why, and that the check reads the pipeline's one parse."""

from __future__ import annotations

from mailward.filter.bulk import BULK, BulkCheck, bulk_signals
from mailward.filter.parsed import PARSES, parse
from mailward.filter.pipeline import FilterInput, FilterPipeline, Finding


def message(*headers: str, body: str = "Hello,\r\n\r\nthe news of the week.\r\n") -> bytes:
    head = ["From: News <news@shop.example>", "To: ann@filtered.example",
            "Subject: This week", *headers]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def findings(data: bytes) -> list[Finding]:
    parsed = parse(data)
    return list(BulkCheck().blocking(FilterInput("news@shop.example", ("ann@filtered.example",),
                                                 data, "192.0.2.1", "mail.shop.example",
                                                 parsed=parsed)))


def test_a_newsletter_with_one_click_unsubscribe_is_bulk_for_no_points() -> None:
    [found] = findings(message(
        "List-Unsubscribe: <https://shop.example/u/1>, <mailto:u@shop.example>",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "Feedback-ID: 1:news:shop", "X-MC-User: 0123abcd"))
    assert found == Finding(BULK, 0.0, "bulk mail: List-Unsubscribe (one-click), Feedback-ID, "
                                       "sent through Mailchimp")


def test_each_strong_signal_alone_makes_a_message_bulk() -> None:
    for header, named in (("List-Unsubscribe: <mailto:leave@lists.example>",
                           "List-Unsubscribe"),
                          ("Precedence: bulk", "Precedence: bulk"),
                          ("Precedence: list", "Precedence: list"),
                          ("PRECEDENCE: Junk", "Precedence: junk"),
                          ("List-Id: Users <users.lists.example>", "List-Id"),
                          ("Feedback-ID: a:b:c", "Feedback-ID"),
                          ("X-CSA-Complaints: csa-complaints@eco.de", "X-CSA-Complaints"),
                          ("X-Mailer: MailChimp Mailer - **CID1**", "sent through Mailchimp"),
                          ("X-Campaign-Id: 42", "X-Campaign-Id"),
                          ("X-Mailjet-Campaign: spring", "sent through Mailjet")):
        [found] = findings(message(header))
        assert found.reason == f"bulk mail: {named}", header
        assert found.score == 0


def test_person_to_person_and_transactional_mail_is_not_bulk() -> None:
    assert findings(message()) == []
    assert findings(message("Precedence: first-class")) == []
    # a password reset sent through a sending service: not a newsletter
    assert findings(message("X-SES-Outgoing: 2026.01.01-54.240.0.1",
                            "X-Mailgun-Sid: WyJhIiwiYiJd")) == []
    # a sending service with a bulk signal: named in the reason too
    [found] = findings(message("X-SES-Outgoing: 2026.01.01-54.240.0.1", "Precedence: bulk"))
    assert found.reason == "bulk mail: Precedence: bulk, sent through Amazon SES"


def test_only_the_list_unsubscribe_post_with_one_click_counts_as_one_click() -> None:
    signals = bulk_signals([("List-Unsubscribe", "<https://x.example/u>"),
                            ("List-Unsubscribe-Post", "something-else")])
    assert signals.strong == ("List-Unsubscribe",)
    assert not bulk_signals([("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]).bulk


def test_signals_are_named_once_and_the_header_block_is_read_within_a_cap() -> None:
    signals = bulk_signals([("List-Id", "a"), ("list-id", "b"), ("Precedence", "bulk"),
                            ("Precedence", "bulk")])
    assert signals.strong == ("List-Id", "Precedence: bulk")
    many = [("X-Filler", "x")] * 500 + [("List-Id", "late")]
    assert not bulk_signals(many).bulk  # past MAX_FIELDS: not read


async def test_in_the_pipeline_the_check_reads_the_one_parse() -> None:
    data = message("List-Id: Users <users.lists.example>")
    before = PARSES.copy()
    verdict = await FilterPipeline([BulkCheck()]).run(FilterInput(
        "news@shop.example", ("ann@filtered.example",), data, "192.0.2.1", "mail.example"))
    made = PARSES - before
    assert made == {"message": 1}  # the pipeline's parse only: no index, no header parse
    assert [(f.check, f.score) for f in verdict.findings] == [("bulk", 0.0)]
    assert verdict.score == 0 and verdict.action == "accept"
