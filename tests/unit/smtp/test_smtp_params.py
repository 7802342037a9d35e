"""The MAIL/RCPT argument grammar, without a socket."""

from __future__ import annotations

import pytest

from mailward.smtp.params import (
    MailParams,
    ParamError,
    RcptParams,
    parse_mail_params,
    parse_mailbox,
    parse_orcpt,
    parse_rcpt_params,
    split_path,
    xtext_decode,
)


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("<a@b.example>", ("a@b.example", "")),
        (" <a@b.example> SIZE=1", ("a@b.example", " SIZE=1")),
        ("<>", ("", "")),
        ('<"a>b c"@x.example> X', ('"a>b c"@x.example', " X")),
        ("a@b.example BODY=7BIT", ("a@b.example", "BODY=7BIT")),
    ],
)
def test_split_path(arg: str, expected: tuple[str, str]) -> None:
    assert split_path(arg) == expected


@pytest.mark.parametrize("arg", ["<a@b", "<a@b>x", "<a<b>", "", "a>b"])
def test_split_path_errors(arg: str) -> None:
    with pytest.raises(ValueError):
        split_path(arg)


@pytest.mark.parametrize(
    "good",
    [
        "user@example.com",
        "first.last+tag@sub.example.co.uk",
        '"quoted local"@example.com',
        '"a\\"b"@example.com',
        "user@[192.0.2.1]",
        "user@[IPv6:2001:db8::1]",
        "jörg@bücher.example",
    ],
)
def test_valid_mailboxes(good: str) -> None:
    assert parse_mailbox(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "user",
        "user@",
        "@example.com",
        ".user@example.com",
        "us..er@example.com",
        "user@-example.com",
        "user@example..com",
        "user@[300.1.1.1]",
        "us er@example.com",
        "a" * 250 + "@example.com",
    ],
)
def test_invalid_mailboxes(bad: str) -> None:
    assert parse_mailbox(bad) is None


def test_source_route_and_postmaster() -> None:
    assert parse_mailbox("@a.example,@b.example:user@c.example") == "user@c.example"
    assert parse_mailbox("PostMaster") is None
    assert parse_mailbox("PostMaster", allow_postmaster=True) == "PostMaster"


def test_xtext() -> None:
    assert xtext_decode("abc+2Bdef+3D") == "abc+def="
    assert xtext_decode("caf+C3+A9") == "café"
    for bad in ("a+2", "a+ZZ", "a=b", "a b", "a+0D+0Ab", "+FF"):
        with pytest.raises(ValueError):
            xtext_decode(bad)


def test_mail_params() -> None:
    text = "size=100 body=8bitmime SMTPUTF8 ret=full ENVID=id+2B1 AUTH=<>"
    assert parse_mail_params(text, size_limit=1000) == MailParams(
        100, "8BITMIME", True, "FULL", "id+1", "<>"
    )
    assert parse_mail_params("", size_limit=0) == MailParams()
    with pytest.raises(ParamError) as err:
        parse_mail_params("SIZE=1001", size_limit=1000)
    assert (err.value.reply.code, err.value.reply.status) == (552, "5.3.4")
    with pytest.raises(ParamError) as err:
        parse_mail_params("ENVID=" + "x" * 101, size_limit=0)
    assert err.value.reply.code == 501


def test_rcpt_params() -> None:
    assert parse_rcpt_params("NOTIFY=failure,delay ORCPT=rfc822;a+2Bb@x.example") == (
        RcptParams(("FAILURE", "DELAY"), "rfc822;a+b@x.example")
    )
    for bad in ("NOTIFY=", "NOTIFY", "NOTIFY=NEVER,DELAY", "NOTIFY=DELAY,DELAY", "ORCPT=x"):
        with pytest.raises(ParamError) as err:
            parse_rcpt_params(bad)
        assert (err.value.reply.code, err.value.reply.status) == (501, "5.5.4")
    with pytest.raises(ParamError) as err:
        parse_rcpt_params("NOTIFY=NEVER FOO=1")
    assert (err.value.reply.code, err.value.reply.status) == (555, "5.5.4")


def test_orcpt_utf8_address_type() -> None:
    assert parse_orcpt("utf-8;j\\x{F6}rg@example.com") == "utf-8;jörg@example.com"
    assert parse_orcpt("utf-8;jörg@example.com") == "utf-8;jörg@example.com"
    with pytest.raises(ParamError):
        parse_orcpt("utf-8;a\\x{D}b@example.com")
