"""Delivery status notifications: built with the stdlib, parsed back with the stdlib."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage, Message

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailward.queue.dsn import (
    SUBJECT_DELAYED,
    SUBJECT_FAILED,
    SUBJECT_SUCCESS,
    DsnRecipient,
    build_dsn,
    should_notify,
)

ARRIVED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
NOW = datetime(2024, 3, 2, 8, 30, tzinfo=UTC)
ORIGINAL = (
    b"Received: from client.example by mx.example; Fri, 1 Mar 2024 12:00:00 +0000\r\n"
    b"From: Alice <alice@sender.example>\r\n"
    b"To: bob@dest.example\r\n"
    b"Subject: Quarterly numbers\r\n"
    b"Message-ID: <orig-1@sender.example>\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b"the numbers are attached.\r\n"
)
OUTER_FIELDS = {
    "from", "to", "subject", "date", "message-id", "auto-submitted", "mime-version",
    "content-type",
}

FAILED = DsnRecipient(
    final_recipient="bob@dest.example",
    action="failed",
    status="5.1.1",
    original_recipient="rfc822;Bob@Dest.example",
    remote_mta="mx1.dest.example",
    diagnostic="550 5.1.1 <bob@dest.example>: no such user",
    last_attempt=datetime(2024, 3, 2, 8, 0, tzinfo=UTC),
)
DELAYED = DsnRecipient(
    final_recipient="carol@slow.example",
    action="delayed",
    status="4.4.1",
    diagnostic="connection timed out",
    last_attempt=datetime(2024, 3, 2, 8, 0, tzinfo=UTC),
    will_retry_until=datetime(2024, 3, 6, 12, 0, tzinfo=UTC),
)


def build(recipients: list[DsnRecipient], **kwargs: object) -> bytes:
    args: dict[str, object] = {
        "reporting_mta": "mx.example",
        "sender": "alice@sender.example",
        "recipients": recipients,
        "original": ORIGINAL,
        "arrival_date": ARRIVED,
        "now": NOW,
    }
    args.update(kwargs)
    return build_dsn(**args)  # type: ignore[arg-type]


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(msg: EmailMessage) -> list[EmailMessage]:
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    found = list(msg.iter_parts())
    assert [p.get_content_type() for p in found][:2] == ["text/plain", "message/delivery-status"]
    assert len(found) == 3
    return found  # type: ignore[return-value]


def human_text(msg: EmailMessage) -> str:
    """The notification text with its line wrapping undone."""
    return " ".join(parts(msg)[0].get_content().split())


def status_blocks(msg: EmailMessage) -> list[Message]:
    blocks = parts(msg)[1].get_payload()
    assert isinstance(blocks, list)
    return blocks


def assert_wire_format(data: bytes) -> None:
    """CRLF everywhere, no bare CR or LF, no line over the SMTP limit."""
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998


# --- failure ----------------------------------------------------------------------------


def test_failure_dsn_round_trips_through_the_stdlib_parser() -> None:
    data = build([FAILED], envid="ENV-42")
    assert_wire_format(data)
    msg = parse(data)
    assert not msg.defects
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mx.example>"
    assert msg["To"].addresses[0].addr_spec == "alice@sender.example"
    assert msg["Subject"] == SUBJECT_FAILED
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Message-ID"].endswith("@mx.example>")
    assert msg["Date"].datetime == NOW

    text, _, returned = parts(msg)
    human = text.get_content()
    assert "could not be delivered" in human
    assert "<bob@dest.example>" in human
    assert "550 5.1.1 <bob@dest.example>: no such user" in human
    assert "mx1.dest.example" in human
    assert "postmaster@mx.example" in human

    per_message, per_rcpt = status_blocks(msg)
    assert per_message["Reporting-MTA"] == "dns; mx.example"
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    assert per_message["Arrival-Date"] == "Fri, 01 Mar 2024 12:00:00 +0000"
    assert per_rcpt["Original-Recipient"] == "rfc822;Bob@Dest.example"
    assert per_rcpt["Final-Recipient"] == "rfc822; bob@dest.example"
    assert per_rcpt["Action"] == "failed"
    assert per_rcpt["Status"] == "5.1.1"
    assert per_rcpt["Remote-MTA"] == "dns; mx1.dest.example"
    assert per_rcpt["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@dest.example>: no such user"
    assert per_rcpt["Last-Attempt-Date"] == "Sat, 02 Mar 2024 08:00:00 +0000"
    assert per_rcpt["Will-Retry-Until"] is None

    assert returned.get_content_type() == "message/rfc822"
    inner = returned.get_payload(0)
    assert inner["Subject"] == "Quarterly numbers"
    assert inner["Message-ID"] == "<orig-1@sender.example>"
    assert ORIGINAL in data  # attached byte for byte


def test_optional_fields_are_left_out() -> None:
    bare = DsnRecipient(final_recipient="bob@dest.example", action="failed", status="5.0.0")
    msg = parse(build([bare]))
    per_message, per_rcpt = status_blocks(msg)
    assert "Original-Envelope-Id" not in per_message
    for name in ("Original-Recipient", "Remote-MTA", "Diagnostic-Code", "Will-Retry-Until"):
        assert name not in per_rcpt
    assert per_rcpt["Last-Attempt-Date"] == "Sat, 02 Mar 2024 08:30:00 +0000"  # now


def test_orcpt_without_type_gets_rfc822() -> None:
    rcpt = DsnRecipient("bob@dest.example", "failed", "5.1.1", original_recipient="Bob@x.example")
    assert status_blocks(parse(build([rcpt])))[1]["Original-Recipient"] == "rfc822; Bob@x.example"


# --- delay and mixed --------------------------------------------------------------------


def test_delay_dsn_says_it_will_retry_and_until_when() -> None:
    msg = parse(build([DELAYED]))
    assert msg["Subject"] == SUBJECT_DELAYED
    human = parts(msg)[0].get_content()
    assert "keep" in human and "trying" in human
    assert "not need to send the message again" in human
    assert "Wed, 06 Mar 2024 12:00:00 +0000" in human
    per_rcpt = status_blocks(msg)[1]
    assert per_rcpt["Action"] == "delayed"
    assert per_rcpt["Status"] == "4.4.1"
    assert per_rcpt["Will-Retry-Until"] == "Wed, 06 Mar 2024 12:00:00 +0000"


def test_will_retry_until_only_for_delays() -> None:
    failed = DsnRecipient("bob@dest.example", "failed", "5.4.7", will_retry_until=NOW)
    assert "Will-Retry-Until" not in status_blocks(parse(build([failed])))[1]


def test_mixed_dsn_uses_the_failure_subject_and_lists_everyone() -> None:
    done = DsnRecipient("dave@ok.example", "delivered", "2.0.0", remote_mta="mx.ok.example")
    msg = parse(build([DELAYED, FAILED, done]))
    assert msg["Subject"] == SUBJECT_FAILED
    blocks = status_blocks(msg)
    assert len(blocks) == 4
    assert [b["Final-Recipient"] for b in blocks[1:]] == [
        "rfc822; carol@slow.example", "rfc822; bob@dest.example", "rfc822; dave@ok.example",
    ]
    assert [b["Action"] for b in blocks[1:]] == ["delayed", "failed", "delivered"]
    human = parts(msg)[0].get_content()
    for address in ("carol@slow.example", "bob@dest.example", "dave@ok.example"):
        assert f"<{address}>" in human


def test_success_only_dsn_has_success_subject() -> None:
    relayed = DsnRecipient("dave@ok.example", "relayed", "2.0.0")
    msg = parse(build([relayed]))
    assert msg["Subject"] == SUBJECT_SUCCESS
    assert "does not send delivery notifications" in human_text(msg)


def test_naive_datetimes_are_utc_and_other_zones_kept() -> None:
    tz = timezone(timedelta(hours=2))
    msg = parse(build([FAILED], arrival_date=datetime(2024, 3, 1, 12, 0),
                      now=datetime(2024, 3, 2, 10, 0, tzinfo=tz)))
    assert status_blocks(msg)[0]["Arrival-Date"] == "Fri, 01 Mar 2024 12:00:00 +0000"
    assert msg["Date"] == "Sat, 02 Mar 2024 10:00:00 +0200"


# --- the returned message ---------------------------------------------------------------


def headers_part(msg: EmailMessage) -> bytes:
    returned = parts(msg)[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    payload = returned.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def test_ret_hdrs_returns_only_the_header_block() -> None:
    msg = parse(build([FAILED], ret="hdrs"))
    headers = headers_part(msg)
    assert b"Subject: Quarterly numbers\r\n" in headers
    assert b"Hello Bob" not in headers


def test_ret_full_returns_the_whole_message() -> None:
    assert parts(parse(build([FAILED], ret="FULL")))[2].get_content_type() == "message/rfc822"


def test_big_original_returns_only_headers() -> None:
    big = ORIGINAL + (b"x" * 998 + b"\r\n") * 100
    data = build([FAILED], original=big, max_full_size=len(big) - 1)
    assert len(data) < 10_000
    headers = headers_part(parse(data))
    assert headers.startswith(b"Received: from client.example")
    assert headers.endswith(b"Message-ID: <orig-1@sender.example>\r\n")
    assert b"xxxx" not in headers
    assert parts(parse(build([FAILED], original=big, max_full_size=len(big))))[
        2].get_content_type() == "message/rfc822"


def test_lf_original_is_attached_with_crlf() -> None:
    data = build([FAILED], original=ORIGINAL.replace(b"\r\n", b"\n"))
    assert_wire_format(data)
    assert ORIGINAL in data


def test_eight_bit_original_is_attached_unchanged() -> None:
    original = (
        "From: Jörg <jörg@sender.example>\r\nSubject: Grüße\r\n\r\n".encode()
        + b"Latin-1 body: caf\xe9 \xff\xfe\r\n"
    )
    data = build([FAILED], original=original)
    assert original in data
    msg = parse(data)
    returned = parts(msg)[2]
    assert returned.get_content_type() == "message/rfc822"
    assert returned["Content-Transfer-Encoding"] == "8bit"
    assert returned.get_payload(0)["Subject"] == "Grüße"


def test_non_utf8_header_bytes_fall_back_to_headers_only() -> None:
    original = b"From: a@b.example\r\nSubject: caf\xe9\r\n\r\nbody\r\n"
    data = build([FAILED], original=original)
    assert b"Subject: caf\xe9\r\n" in data  # raw bytes kept
    headers = headers_part(parse(data))
    assert headers.startswith(b"From: a@b.example\r\nSubject: caf")
    assert b"body" not in headers


@pytest.mark.parametrize(
    "original",
    [
        b"",
        b"\r\njust a body\r\n",
        b"this is not a header\r\n\r\nbody\r\n",
        b" continuation first: x\r\n\r\n",
        b"From: a@b.example\r\nSubject: no body and no final newline",
        b"From a@b Thu Jan  1 00:00:00 2024\nSubject: mbox\n\nbody\n",
        b"Subject: bare CR\rX-Other: y\r\n\r\n\x00\x01 body",
    ],
)
def test_malformed_originals_do_not_crash(original: bytes) -> None:
    data = build([FAILED], original=original)
    assert_wire_format(data)
    msg = parse(data)
    assert parts(msg)[2].get_content_type() in ("message/rfc822", "text/rfc822-headers")
    assert len(status_blocks(msg)) == 2


def test_boundary_lookalikes_in_the_original_do_not_break_the_structure() -> None:
    original = ORIGINAL + b"--=_0000\r\n--=_\r\n\r\n--" + b"=" * 15 + b"\r\n"
    msg = parse(build([FAILED], original=original))
    assert len(parts(msg)) == 3


# --- header injection and odd values ----------------------------------------------------


def test_crlf_in_diagnostic_cannot_inject_headers() -> None:
    evil = DsnRecipient(
        "bob@dest.example", "failed", "5.7.1",
        remote_mta="mx.dest.example\r\nX-Injected: 1",
        diagnostic="550 go away\r\nX-Injected: yes\r\n\r\nBody-Injected: yes\nAction: delivered",
        original_recipient="rfc822;bob@dest.example\r\nX-Injected: 2",
    )
    data = build([evil], envid="E\r\nX-Injected: 3", postmaster="pm@x.example\r\nX-Injected: 4")
    assert b"\r\nX-Injected" not in data
    msg = parse(data)
    assert {k.lower() for k in msg} == OUTER_FIELDS
    blocks = status_blocks(msg)
    assert len(blocks) == 2
    assert set(blocks[1].keys()) == {
        "Original-Recipient", "Final-Recipient", "Action", "Status", "Remote-MTA",
        "Diagnostic-Code", "Last-Attempt-Date",
    }
    assert blocks[1]["Action"] == "failed"
    assert blocks[1].get_all("Action") == ["failed"]
    assert blocks[1]["Diagnostic-Code"] == (
        "smtp; 550 go away X-Injected: yes Body-Injected: yes Action: delivered"
    )
    assert blocks[1]["Remote-MTA"] == "dns; mx.dest.example"


def test_non_ascii_values_are_escaped_in_the_report() -> None:
    rcpt = DsnRecipient("jörg@bücher.example", "failed", "5.1.1",
                        remote_mta="mx.bücher.example", diagnostic="550 Benutzer unbekannt: jörg")
    data = build([rcpt])
    per_rcpt = status_blocks(parse(data))[1]
    assert per_rcpt["Final-Recipient"] == "utf-8; j\\x{00F6}rg@b\\x{00FC}cher.example"
    assert per_rcpt["Remote-MTA"] == "dns; mx.xn--bcher-kva.example"
    assert per_rcpt["Diagnostic-Code"] == "smtp; 550 Benutzer unbekannt: j\\x{00F6}rg"
    report = data.split(b"message/delivery-status", 1)[1].split(b"message/rfc822", 1)[0]
    assert report.isascii()


def test_smtputf8_sender_does_not_crash() -> None:
    data = build([FAILED], sender="jörg@bücher.example")
    assert_wire_format(data)
    msg = parse(data)
    assert str(msg["To"]) == "jörg@bücher.example"
    assert "To: <jörg@bücher.example>".encode() in data


def test_long_diagnostic_is_folded_and_unfolds_back() -> None:
    words = " ".join(f"word{i}" for i in range(60))
    rcpt = DsnRecipient("bob@dest.example", "failed", "5.0.0", diagnostic=f"550 {words}")
    data = build([rcpt])
    assert_wire_format(data)
    assert max(len(line) for line in data.split(b"\r\n")) <= 78
    assert status_blocks(parse(data))[1]["Diagnostic-Code"] == f"smtp; 550 {words}"


def test_huge_unbreakable_diagnostic_is_truncated_below_the_line_limit() -> None:
    rcpt = DsnRecipient("bob@dest.example", "failed", "5.0.0", diagnostic="x" * 5000)
    data = build([rcpt])
    assert_wire_format(data)
    assert status_blocks(parse(data))[1]["Diagnostic-Code"].startswith("smtp; xxxx")


# --- argument checks --------------------------------------------------------------------


def test_null_sender_is_refused() -> None:
    with pytest.raises(ValueError, match="null sender"):
        build([FAILED], sender="")


@pytest.mark.parametrize("status", ["", "550", "5.1", "3.1.1", "5.1.1 extra", "5.1.1\r\n"])
def test_malformed_status_is_refused(status: str) -> None:
    with pytest.raises(ValueError, match="status"):
        build([DsnRecipient("bob@dest.example", "failed", status)])


def test_unknown_action_and_no_recipients_are_refused() -> None:
    with pytest.raises(ValueError, match="action"):
        build([DsnRecipient("bob@dest.example", "bounced", "5.0.0")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recipient"):
        build([])


# --- NOTIFY -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ((), {"failed": True, "delayed": True, "delivered": False, "relayed": False,
              "expanded": False}),
        (("NEVER",), {"failed": False, "delayed": False, "delivered": False,
                      "relayed": False, "expanded": False}),
        (("SUCCESS",), {"failed": False, "delayed": False, "delivered": True,
                        "relayed": True, "expanded": True}),
        (("FAILURE",), {"failed": True, "delayed": False, "delivered": False,
                        "relayed": False, "expanded": False}),
        (("DELAY",), {"failed": False, "delayed": True, "delivered": False,
                      "relayed": False, "expanded": False}),
        (("SUCCESS", "FAILURE"), {"failed": True, "delayed": False, "delivered": True,
                                  "relayed": True, "expanded": True}),
        (("failure", " delay "), {"failed": True, "delayed": True, "delivered": False,
                                  "relayed": False, "expanded": False}),
        (("SUCCESS", "FAILURE", "DELAY"), {"failed": True, "delayed": True, "delivered": True,
                                           "relayed": True, "expanded": True}),
    ],
)
def test_should_notify_truth_table(notify: tuple[str, ...], expected: dict[str, bool]) -> None:
    assert {action: should_notify(notify, action) for action in expected} == expected


def test_should_notify_rejects_unknown_actions() -> None:
    with pytest.raises(ValueError):
        should_notify((), "bounced")


# --- properties -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    diagnostic=st.text(),
    remote=st.text(max_size=80),
    orcpt=st.one_of(st.none(), st.text(max_size=80)),
    original=st.binary(max_size=400),
)
def test_arbitrary_values_never_add_headers_and_always_parse(
    diagnostic: str, remote: str, orcpt: str | None, original: bytes
) -> None:
    rcpt = DsnRecipient("bob@dest.example", "failed", "5.0.0", original_recipient=orcpt,
                        remote_mta=remote, diagnostic=diagnostic)
    data = build([rcpt, DELAYED], original=original)
    assert_wire_format(data)
    msg = parse(data)
    assert {k.lower() for k in msg} == OUTER_FIELDS
    blocks = status_blocks(msg)
    assert len(blocks) == 3
    allowed = {
        "Original-Recipient", "Final-Recipient", "Action", "Status", "Remote-MTA",
        "Diagnostic-Code", "Last-Attempt-Date",
    }
    assert set(blocks[1].keys()) <= allowed
    assert [b["Action"] for b in blocks[1:]] == ["failed", "delayed"]
    assert blocks[1]["Final-Recipient"] == "rfc822; bob@dest.example"
    code = blocks[1]["Diagnostic-Code"]
    if code is not None:
        assert code.startswith("smtp; ") and "\n" not in code and "\r" not in code
