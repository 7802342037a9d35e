"""The pure POP3 grammar: command parsing, dot-stuffing, TOP, SASL PLAIN, CAPA."""

from __future__ import annotations

import base64

import pytest

from mailward.net.sasl import decode_sasl_plain
from mailward.pop3.commands import (
    CommandError,
    capabilities,
    message_body,
    parse_command,
    parse_number,
)


def test_parse_command() -> None:
    cmd = parse_command(b"retr 12\r\n")
    assert (cmd.verb, cmd.args, cmd.rest) == ("RETR", ("12",), "12")
    assert parse_command(b"PASS two words\n").rest == "two words"
    assert parse_command(b"STAT").args == ()
    assert parse_command(b"PASS p\xc3\xa4ss\r\n").rest == "päss"


@pytest.mark.parametrize(
    "line",
    [b"", b"\r\n", b"ST\r\n", b"TOOLONG\r\n", b"R3TR 1\r\n", b"LIST  1\r\n", b"LIST 1 \r\n",
     b"NOOP\0\r\n", b"USER a\rb\r\n", b"USER \xff\r\n", b"USER " + b"a" * 251 + b"\r\n"],
)  # fmt: skip
def test_parse_command_rejects(line: bytes) -> None:
    with pytest.raises(CommandError):
        parse_command(line)


def test_line_limit_is_255_with_crlf() -> None:
    assert parse_command(b"USER " + b"a" * 248 + b"\r\n").rest == "a" * 248
    with pytest.raises(CommandError, match="too long"):
        parse_command(b"USER " + b"a" * 249 + b"\r\n")


def test_parse_number() -> None:
    assert parse_number("7") == 7
    assert parse_number("0") == 0
    for bad in ["", "-1", "+1", "1.0", "٣", "12345678901"]:
        assert parse_number(bad) is None


def test_message_body_stuffs_and_normalises() -> None:
    data = b"A: b\r\n\r\n.x\n.\r\nlast"
    assert message_body(data) == b"A: b\r\n\r\n..x\r\n..\r\nlast\r\n.\r\n"
    assert message_body(b"") == b".\r\n"


def test_top() -> None:
    data = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"
    assert message_body(data, 0) == b"A: 1\r\nB: 2\r\n\r\n.\r\n"
    assert message_body(data, 2) == b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n.\r\n"
    assert message_body(data, 99) == message_body(data)
    assert message_body(b"A: 1\r\n", 5) == b"A: 1\r\n.\r\n"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_decode_sasl_plain() -> None:
    assert decode_sasl_plain(_b64(b"\0ann\0pw")) == ("ann", "pw")
    assert decode_sasl_plain(_b64(b"ann\0ann\0pw")) == ("ann", "pw")
    for bad in ["=", "*", "not base64!", _b64(b"ann\0pw"), _b64(b"bob\0ann\0pw"),
                _b64(b"\0\0pw"), _b64(b"\0ann\0"), _b64(b"\0\xff\0pw")]:  # fmt: skip
        assert decode_sasl_plain(bad) is None, bad


def test_capabilities() -> None:
    assert capabilities(auth_allowed=False, stls=True, authorization=True)[-1] == "STLS"
    caps = capabilities(auth_allowed=True, stls=False, authorization=False)
    assert "USER" not in caps and "STLS" not in caps and "IMPLEMENTATION" not in caps
