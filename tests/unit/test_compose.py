"""Webmail's message building: replies, forwards, quoting, drafts and what is sent."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from mailward.core.errors import InvalidInput
from mailward.webmail.compose import (
    DRAFT_HEADER,
    ComposeForm,
    build,
    draft_form,
    forward_form,
    forward_subject,
    html_to_text,
    reply_form,
    reply_subject,
)

ORIGINAL = (
    b"From: Carol Remote <carol@remote.example>\r\n"
    b"To: ann@acme.example, Dave <dave@remote.example>\r\n"
    b"Cc: sales@acme.example, erin@remote.example\r\n"
    b"Subject: Re: Fwd: Quarterly numbers\r\n"
    b"Date: Sun, 06 Dec 2026 10:15:00 +0000\r\n"
    b"Message-ID: <orig-2@remote.example>\r\n"
    b"References: <orig-0@remote.example> <orig-1@remote.example>\r\n"
    b"\r\n"
    b"Here they are.\r\n> earlier line\r\n"
)


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def test_subject_prefixes_never_stack() -> None:
    assert reply_subject("Re: RE: Fwd: hello") == "Re: hello"
    assert reply_subject("AW: Re[2]: hello") == "Re: hello"
    assert forward_subject("Re: Fwd: hello") == "Fwd: hello"
    assert reply_subject("Regarding the plan") == "Re: Regarding the plan"


def test_html_to_text_keeps_words_and_drops_markup_and_scripts() -> None:
    text = html_to_text(
        "<html><head><style>p{color:red}</style><title>t</title></head><body>"
        "<p>Hello <b>there</b> &amp; welcome</p><script>alert(1)</script>"
        "<div>See <a href='https://example.org/x'>the page</a></div><ul><li>one</li></ul>"
        "</body></html>")
    assert text.splitlines() == ["Hello there & welcome", "", "See the page <https://example.org/x>",
                                 "", "* one"]
    assert "<" not in text.replace("<https://example.org/x>", "")
    assert "alert" not in text and "color" not in text


def test_a_reply_goes_to_the_author_with_threading_headers_and_a_quote() -> None:
    form = reply_form(ORIGINAL, {"ann@acme.example"}, all_=False, sender="ann@acme.example",
                      signature="Ann", identity_id=3)
    assert form.to == "Carol Remote <carol@remote.example>"
    assert form.cc == ""
    assert form.subject == "Re: Quarterly numbers"
    assert form.in_reply_to == "<orig-2@remote.example>"
    assert form.references == ["<orig-0@remote.example>", "<orig-1@remote.example>",
                               "<orig-2@remote.example>"]
    assert "\n-- \nAnn\n" in form.text
    assert "On Sun, 06 Dec 2026 at 10:15, Carol Remote wrote:\n> Here they are.\n>> earlier line" \
        in form.text
    assert form.mode == "reply" and form.identity_id == 3


def test_reply_to_wins_over_from() -> None:
    data = ORIGINAL.replace(b"Subject:", b"Reply-To: list@lists.example\r\nSubject:")
    form = reply_form(data, {"ann@acme.example"}, all_=False, sender="ann@acme.example",
                      signature=None, identity_id=None)
    assert form.to == "list@lists.example"


def test_reply_all_leaves_out_the_users_own_addresses() -> None:
    form = reply_form(ORIGINAL, {"ann@acme.example", "sales@acme.example"}, all_=True,
                      sender="ann@acme.example", signature=None, identity_id=None)
    assert form.to == "Carol Remote <carol@remote.example>, Dave <dave@remote.example>"
    assert form.cc == "erin@remote.example"
    assert form.mode == "replyall"


def test_replying_to_own_sent_mail_goes_to_its_recipients() -> None:
    data = ORIGINAL.replace(b"From: Carol Remote <carol@remote.example>",
                            b"From: ann@acme.example")
    form = reply_form(data, {"ann@acme.example"}, all_=False, sender="ann@acme.example",
                      signature=None, identity_id=None)
    assert "dave@remote.example" in form.to


def test_an_html_original_is_quoted_as_text() -> None:
    data = (b"From: x@remote.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/html; charset=utf-8\r\n\r\n"
            b"<p>Hi <img src='https://track.example/p.gif'><b>Ann</b></p><p>Bye</p>\r\n")
    form = reply_form(data, set(), all_=False, sender="ann@acme.example", signature=None,
                      identity_id=None)
    assert "> Hi Ann\n>\n> Bye" in form.text
    assert "<" not in form.text.split("wrote:", 1)[1]


def test_forward_inline_carries_the_header_block_and_text() -> None:
    form = forward_form(ORIGINAL, attach=False, sender="ann@acme.example", signature=None,
                        identity_id=None, source=("INBOX", 7))
    assert form.subject == "Fwd: Quarterly numbers"
    assert "---------- Forwarded message ----------\nFrom: Carol Remote <carol@remote.example>" \
        in form.text
    assert "Subject: Re: Fwd: Quarterly numbers" in form.text
    assert "Here they are." in form.text
    assert form.forward is None and form.source == ("INBOX", 7) and form.mode == "forward"


def test_what_is_sent_has_no_bcc_but_the_copy_keeps_it() -> None:
    form = ComposeForm(to="Dave <dave@remote.example>", cc="erin@remote.example",
                       bcc="boss@acme.example", subject="Plan", text="Hello\nthere",
                       html="<p>Hello <b>there</b></p>", in_reply_to="<orig-2@remote.example>",
                       references=["<orig-1@remote.example>", "<orig-2@remote.example>"])
    built = build(form, from_header="Ann <ann@acme.example>", reply_to="help@acme.example",
                  host="mail.hosting.example",
                  attachments=[("report.pdf", "application/pdf", b"%PDF-1.4 data")])
    assert built.recipients == ["dave@remote.example", "erin@remote.example",
                                "boss@acme.example"]
    assert built.message_id.endswith("@mail.hosting.example>")
    kept, sent = parsed(built.with_bcc()), parsed(built.to_send())
    assert kept["Bcc"] == "boss@acme.example"
    assert "Bcc" not in sent and b"boss@acme.example" not in built.to_send()
    assert b"\r\n" in built.to_send() and b"\n" not in built.to_send().replace(b"\r\n", b"")
    for msg in (kept, sent):
        assert msg["From"] == "Ann <ann@acme.example>"
        assert msg["Reply-To"] == "help@acme.example"
        assert msg["In-Reply-To"] == "<orig-2@remote.example>"
        assert msg["References"] == "<orig-1@remote.example> <orig-2@remote.example>"
        assert msg["Message-ID"] == built.message_id and msg["Date"]
        assert DRAFT_HEADER not in msg
        body = msg.get_body(preferencelist=("plain",))
        assert body is not None and body.get_content().replace("\r\n", "\n") == "Hello\nthere\n"
        rich = msg.get_body(preferencelist=("html",))
        assert rich is not None and "<b>there</b>" in rich.get_content()
        [attachment] = msg.iter_attachments()
        assert attachment.get_filename() == "report.pdf"
        assert attachment.get_content() == b"%PDF-1.4 data"


def test_forward_as_attachment_carries_the_original_as_message_rfc822() -> None:
    form = forward_form(ORIGINAL, attach=True, sender="ann@acme.example", signature=None,
                        identity_id=None, source=("INBOX", 7))
    assert form.forward == ("INBOX", 7) and form.mode == "forward-attach"
    form.to = "dave@remote.example"
    built = build(form, from_header="ann@acme.example", reply_to=None, host="h.example",
                  forwarded=ORIGINAL)
    [part] = parsed(built.to_send()).iter_attachments()
    assert part.get_content_type() == "message/rfc822"
    inner = part.get_content()
    assert inner["Message-ID"] == "<orig-2@remote.example>"
    assert "Here they are." in inner.get_content()


def test_a_draft_reopens_with_its_fields_state_and_attachments() -> None:
    form = ComposeForm(to="dave@remote.example", bcc="boss@acme.example", subject="Wip",
                       text="Draft text", identity_id=4, in_reply_to="<orig-2@remote.example>",
                       references=["<orig-2@remote.example>"], mode="reply",
                       source=("Archive/2024 ü", 12))
    built = build(form, from_header="ann@acme.example", reply_to=None, host="h.example",
                  attachments=[("a.txt", "text/plain", b"first"), ("b.bin", "bad type", b"2")],
                  draft=True)
    again = draft_form(built.with_bcc(), 55)
    assert (again.to, again.bcc, again.subject) == ("dave@remote.example", "boss@acme.example",
                                                    "Wip")
    assert again.text == "Draft text\n" and again.html is None
    assert (again.mode, again.source, again.identity_id, again.draft_uid) == (
        "reply", ("Archive/2024 ü", 12), 4, 55)
    assert again.in_reply_to == "<orig-2@remote.example>"
    assert [(a.part, a.filename, a.content_type, a.size) for a in again.attachments] == [
        ("2", "a.txt", "text/plain", 5), ("3", "b.bin", "application/octet-stream", 1)]


def test_a_draft_may_lack_recipients_but_mail_to_send_may_not() -> None:
    build(ComposeForm(subject="x"), from_header="ann@acme.example", reply_to=None,
          host="h.example", draft=True)
    with pytest.raises(InvalidInput, match="recipient"):
        build(ComposeForm(subject="x"), from_header="ann@acme.example", reply_to=None,
              host="h.example")


@pytest.mark.parametrize("field, value", [("to", "not an address"),
                                          ("cc", "ok@x.example, bad@@x"),
                                          ("subject", "two\r\nBcc: evil@x.example")])
def test_bad_fields_are_refused(field: str, value: str) -> None:
    form = ComposeForm(to="dave@remote.example", subject="s")
    setattr(form, field, value)
    with pytest.raises(InvalidInput):
        build(form, from_header="ann@acme.example", reply_to=None, host="h.example")


def test_non_ascii_text_and_names_survive_7bit_transport() -> None:
    form = ComposeForm(to="Zoë Ünal <zoe@remote.example>", subject="Grüße", text="Schöne Grüße")
    built = build(form, from_header="Änn <ann@acme.example>", reply_to=None, host="h.example")
    data = built.to_send()
    assert data.isascii()
    msg = parsed(data)
    assert msg["Subject"] == "Grüße" and msg["To"] == "Zoë Ünal <zoe@remote.example>"
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip() == "Schöne Grüße"


def test_names_with_commas_and_quotes_round_trip_and_line_breaks_never_reach_a_header() -> None:
    form = ComposeForm(to='"Doe, \\"JD\\" John" <jd@remote.example>, '
                          'Evil\r\nBcc <ok@remote.example>', subject="s")
    built = build(form, from_header='"Ünal, Zoë" <zoe@acme.example>', reply_to=None,
                  host="h.example")
    msg = parsed(built.to_send())
    assert [a.addr_spec for a in msg["To"].addresses] == ["jd@remote.example",
                                                          "ok@remote.example"]
    assert msg["To"].addresses[0].display_name == 'Doe, "JD" John'
    assert msg["From"].addresses[0].display_name == "Ünal, Zoë"
    assert msg["To"].addresses[1].display_name == "Evil Bcc"
    assert "Bcc" not in msg and built.recipients == ["jd@remote.example", "ok@remote.example"]


def test_a_draft_keeps_half_typed_addresses_as_typed() -> None:
    """Autosave runs while an address is being typed: the draft keeps the text, a send
    still refuses it."""
    form = ComposeForm(sender="ann@acme.example", to="bob@acme.example, carol@",
                       subject="Plans\nfor Monday", text="hi")
    built = build(form, from_header="ann@acme.example", reply_to=None, host="mail.example.net",
                  draft=True)
    reopened = draft_form(built.with_bcc(), 7)
    assert reopened.to == "bob@acme.example, carol@"
    assert reopened.subject == "Plans for Monday"
    with pytest.raises(InvalidInput):
        build(form, from_header="ann@acme.example", reply_to=None, host="mail.example.net")
