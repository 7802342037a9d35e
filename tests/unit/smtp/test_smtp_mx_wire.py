"""The MX listener at byte level: pipelining, smuggling, limits, garbage, ordering."""

from __future__ import annotations

import asyncio
import re
import ssl
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from smtp_testkit import RELAY_DENIED, FakeSink, Listener, RawClient, raw_client, running_mx

from mailward.smtp.mx import MxSMTP
from mailward.smtp.received import system_reverse_dns
from mailward.smtp.types import Reply

ENVELOPE = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<user@local.example>\r\nDATA\r\n"


async def start_data(c: RawClient) -> None:
    await c.send(ENVELOPE)
    assert await c.replies(3) == [
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "354 End data with <CR><LF>.<CR><LF>",
    ]


async def test_banner_names_host_not_library(mx: Listener) -> None:
    client = await RawClient.connect(mx.port)
    try:
        assert client.greeting == "mx.test mailward ESMTP"
    finally:
        await client.close()


async def test_pipelined_transaction(mx: Listener) -> None:
    mx.sink.rcpt_replies = {"out@elsewhere.example": RELAY_DENIED}
    async with raw_client(mx.port) as c:
        await c.send(
            b"MAIL FROM:<a@example.org> BODY=8BITMIME\r\n"
            b"RCPT TO:<one@local.example>\r\n"
            b"RCPT TO:<out@elsewhere.example>\r\n"
            b"RCPT TO:<two@local.example> NOTIFY=FAILURE\r\n"
            b"DATA\r\n"
        )
        assert await c.replies(5) == [
            "250 2.1.0 OK",
            "250 2.1.5 OK",
            "550 5.7.1 Relay access denied",
            "250 2.1.5 OK",
            "354 End data with <CR><LF>.<CR><LF>",
        ]
        await c.send(b"Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@example.org>\r\nRSET\r\n")
        assert await c.replies(3) == ["250 2.0.0 Ok: queued", "250 2.1.0 OK", "250 2.0.0 OK"]
    [env] = mx.sink.envelopes
    assert [r.address for r in env.recipients] == ["one@local.example", "two@local.example"]
    assert env.recipients[1].notify == ("FAILURE",)
    assert env.data.endswith(b"\r\nSubject: x\r\n\r\nbody\r\n")


@pytest.mark.parametrize(
    "payload",
    [
        b"Subject: a\r\n\r\nhello\n.\nMAIL FROM:<evil@example.org>\r\nmore\r\n",
        b"Subject: a\r\n\r\nhello\r\n.\nMAIL FROM:<evil@example.org>\r\nmore\r\n",
        b"Subject: a\r\n\r\nhello\n.\r\nMAIL FROM:<evil@example.org>\r\nmore\r\n",
        b"Subject: a\r\n\r\nhello\r.\r\nMAIL FROM:<evil@example.org>\r\nmore\r\n",
        b"Subject: a\r\n\r\nbare\rCR\r\n",
        b"Subject: a\nX: b\r\n\r\nbare LF in header\r\n",
    ],
    ids=["lf.lf", "crlf.lf", "lf.crlf", "cr.crlf", "bare-cr", "bare-lf-header"],
)
async def test_bare_newlines_refused_and_only_crlf_dot_crlf_ends(
    mx: Listener, payload: bytes
) -> None:
    async with raw_client(mx.port) as c:
        await start_data(c)
        await c.send(payload + b".\r\nNOOP\r\n")
        # Exactly one reply for the message: the smuggled MAIL was data, not a command.
        assert await c.replies(2) == [
            "550 5.6.0 Message refused: bare CR or LF in message (RFC 5321 2.3.8)",
            "250 2.0.0 OK",
        ]
        # The transaction is over; a fresh one works.
        await start_data(c)
        assert await c.cmd(b"Subject: ok\r\n\r\nfine\r\n.") == "250 2.0.0 Ok: queued"
    [env] = mx.sink.envelopes
    assert env.sender == "a@example.org"
    assert b"evil" not in env.data


async def test_body_bytes_and_dot_unstuffing(mx: Listener) -> None:
    body = b"Subject: \xc3\xa9t\xc3\xa9\r\n\r\n..one dot\r\n...\r\n\tx \r\n\r\n"
    async with raw_client(mx.port) as c:
        await start_data(c)
        assert await c.cmd(body + b".") == "250 2.0.0 Ok: queued"
    [env] = mx.sink.envelopes
    assert env.data.split(b"\r\n", 3)[-1].endswith(
        b"Subject: \xc3\xa9t\xc3\xa9\r\n\r\n.one dot\r\n..\r\n\tx \r\n\r\n"
    )


@pytest.mark.parametrize("length", [999, 5000, 100_000])
async def test_overlong_data_line(length: int) -> None:
    sink = FakeSink()
    async with running_mx(sink, data_size_limit=1_000_000) as mx, raw_client(mx.port) as c:
        await start_data(c)
        await c.send(b"Subject: x\r\n\r\n" + b"a" * length + b"\r\n.\r\nNOOP\r\n")
        assert await c.replies(2) == ["500 5.5.2 Line too long", "250 2.0.0 OK"]
        # 998 octets + CRLF is the longest line; a stuffed dot may come on top.
        await start_data(c)
        line = b"b" * 998 + b"\r\n" + b"." + b"c" * 998 + b"\r\n"
        assert await c.cmd(line + b".") == "250 2.0.0 Ok: queued"
    [env] = sink.envelopes
    assert env.data.endswith(b"\r\n" + b"b" * 998 + b"\r\n" + b"c" * 998 + b"\r\n")


async def test_data_too_large_keeps_session(mx: Listener) -> None:
    async with raw_client(mx.port) as c:
        await start_data(c)
        await c.send((b"z" * 98 + b"\r\n") * 101 + b".\r\n")
        assert await c.reply() == (552, ["5.3.4 Message size exceeds fixed maximum message size"])
        await start_data(c)
        assert await c.cmd(b"small\r\n.") == "250 2.0.0 Ok: queued"
    assert len(mx.sink.envelopes) == 1


async def test_overlong_command_lines(mx: Listener) -> None:
    async with raw_client(mx.port) as c:
        assert await c.cmd("NOOP " + "x" * 600) == "500 5.5.2 Line too long"
        assert await c.cmd(b"X" * 50_000) == "500 5.5.2 Line too long"
        assert await c.cmd("NOOP") == "250 2.0.0 OK"


async def test_garbage_then_421(mx: Listener) -> None:
    async with raw_client(mx.port) as c:
        assert await c.cmd("FOO bar") == "500 5.5.2 Error: command not recognized"
        assert await c.cmd(b"\x00\x01\xff") == "500 5.5.2 Error: bad syntax"
        assert await c.cmd("") == "500 5.5.2 Error: bad syntax"
        assert await c.cmd("AUTH PLAIN AGFAYg==") == "500 5.5.2 Error: command not recognized"
        # Still a working session.
        await start_data(c)
        assert await c.cmd(b"hi\r\n.") == "250 2.0.0 Ok: queued"
        assert await c.cmd("BDAT 10 LAST") == "421 4.7.0 mx.test Error: too many errors"
        assert await c.at_eof()


async def test_commands_out_of_order(mx: Listener) -> None:
    async with raw_client(mx.port, ehlo=None) as c:
        assert await c.cmd("MAIL FROM:<a@example.org>") == "503 5.5.1 Error: send HELO/EHLO first"
        assert await c.cmd("RCPT TO:<b@example.org>") == "503 5.5.1 Error: send HELO/EHLO first"
        assert await c.cmd("DATA") == "503 5.5.1 Error: send HELO/EHLO first"
        assert await c.cmd("EHLO") == "501 5.5.4 Syntax: EHLO hostname"
        assert await c.cmd("HELO client.example") == "250 mx.test"
        assert await c.cmd("RCPT TO:<b@example.org>") == "503 5.5.1 Error: need MAIL command"
        assert await c.cmd("DATA") == "503 5.5.1 Error: need MAIL command"
        assert (
            await c.cmd("MAIL FROM:<a@example.org> SIZE=10")
            == "501 5.5.4 Syntax: MAIL FROM:<address> [SP <parameters>]"
        )
        assert await c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0 OK"
        assert await c.cmd("MAIL FROM:<a@example.org>") == "503 5.5.1 Error: nested MAIL command"
        assert await c.cmd("DATA") == "503 5.5.1 Error: need RCPT command"
        assert await c.cmd("RCPT TO:<nobody@local.example>") == "250 2.1.5 OK"
        assert await c.cmd("DATA") == "354 End data with <CR><LF>.<CR><LF>"
        assert await c.cmd(b".") == "250 2.0.0 Ok: queued"
    [env] = mx.sink.envelopes
    assert env.data.startswith(b"Received: from client.example (client.example [127.0.0.1])")
    assert b" with SMTP id " in env.data


async def test_no_valid_recipients(mx: Listener) -> None:
    mx.sink.rcpt_replies = {"out@elsewhere.example": RELAY_DENIED}
    async with raw_client(mx.port) as c:
        await c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<out@elsewhere.example>\r\nDATA\r\n")
        assert await c.replies(3) == [
            "250 2.1.0 OK",
            "550 5.7.1 Relay access denied",
            "554 5.5.1 Error: no valid recipients",
        ]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("MAIL FROM:<not an address>", "501 5.1.7 Bad sender address syntax"),
        ("MAIL FROM:<a@b", "501 5.1.7 Bad sender address syntax"),
        ("MAIL FROM:<a@[999.1.1.1]>", "501 5.1.7 Bad sender address syntax"),
        ("MAIL FROM:", "501 5.5.4 Syntax: MAIL FROM:<address> [SP <parameters>]"),
        ("MAIL TO:<a@example.org>", "501 5.5.4 Syntax: MAIL FROM:<address> [SP <parameters>]"),
        ("MAIL FROM:<j\u00f6rg@example.org>", "553 5.6.7 Non-ASCII address requires SMTPUTF8"),
        ("MAIL FROM:<j\u00f6rg@example.org> SMTPUTF8", "250 2.1.0 OK"),
        ("MAIL FROM:<a@example.org> SMTPUTF8=yes", "501 5.5.4 SMTPUTF8 takes no value"),
        ("MAIL FROM:<a@example.org> SIZE=1x", "501 5.5.4 SIZE requires a number"),
        ("MAIL FROM:<a@example.org> SIZE=1 SIZE=2", "501 5.5.4 Duplicate parameter SIZE"),
        ("MAIL FROM:<@relay.example:a@example.org> size=10000", "250 2.1.0 OK"),
        ('MAIL FROM:<"john doe"@example.org> AUTH=a+2Bb@example.org', "250 2.1.0 OK"),
    ],
)
async def test_mail_from_arguments(mx: Listener, command: str, expected: str) -> None:
    async with raw_client(mx.port) as c:
        assert await c.cmd(command) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("<user@@local.example>", "501 5.1.3 Bad recipient address syntax"),
        ("<>", "501 5.1.3 Bad recipient address syntax"),
        ("<user@local.example", "501 5.1.3 Bad recipient address syntax"),
        ("<.user@local.example>", "501 5.1.3 Bad recipient address syntax"),
        ("<" + "a" * 250 + "@local.example>", "501 5.1.3 Bad recipient address syntax"),
        ("<m\u00fcller@local.example>", "553 5.6.7 Non-ASCII address requires SMTPUTF8"),
        ("<user@[127.0.0.1]>", "250 2.1.5 OK"),
        ("<user@[IPv6:2001:db8::1]>", "250 2.1.5 OK"),
        ("user@local.example", "250 2.1.5 OK"),
    ],
)
async def test_rcpt_to_arguments(mx: Listener, address: str, expected: str) -> None:
    async with raw_client(mx.port) as c:
        assert await c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0 OK"
        assert await c.cmd(f"RCPT TO:{address}") == expected
        assert await c.cmd("NOOP") == "250 2.0.0 OK"


async def test_smtputf8_transaction(mx: Listener) -> None:
    async with raw_client(mx.port) as c:
        envelope = "MAIL FROM:<jörg@bücher.example> SMTPUTF8\r\nRCPT TO:<müller@local.example>\r\n"
        await c.send(envelope.encode() + b"DATA\r\n")
        assert (await c.replies(3))[2].startswith("354")
        assert await c.cmd("Subject: grüße\r\n\r\nhi\r\n.".encode()) == "250 2.0.0 Ok: queued"
    [env] = mx.sink.envelopes
    assert (env.sender, env.smtputf8) == ("jörg@bücher.example", True)
    assert env.recipients[0].address == "müller@local.example"
    assert " with UTF8SMTP id " in env.data.decode()
    assert "for <müller@local.example>;" in env.data.decode()


async def test_rcpt_error_budget(mx: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MxSMTP, "max_rcpt_errors", 3)
    mx.sink.rcpt_replies = {"no@local.example": RELAY_DENIED}
    async with raw_client(mx.port) as c:
        assert await c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0 OK"
        await c.send(b"RCPT TO:<no@local.example>\r\n" * 2 + b"RCPT TO:<bad address>\r\n")
        assert [r[:3] for r in await c.replies(3)] == ["550", "550", "501"]
        assert await c.cmd("RCPT TO:<ok@local.example>") == (
            "421 4.7.0 mx.test Error: too many errors"
        )
        assert await c.at_eof()


async def test_received_header_format(mx: Listener) -> None:
    async with raw_client(mx.port, ehlo="[192.0.2.7]") as c:
        await start_data(c)
        assert await c.cmd(b"Subject: x\r\n\r\nhi\r\n.") == "250 2.0.0 Ok: queued"
    [env] = mx.sink.envelopes
    header, rest = env.data.split(b"\r\n", 3)[:3], env.data.split(b"\r\n", 3)[3]
    assert rest == b"Subject: x\r\n\r\nhi\r\n"
    assert header[0] == b"Received: from [192.0.2.7] (client.example [127.0.0.1])"
    m = re.fullmatch(rb"\tby mx\.test with ESMTP id ([0-9A-F]{21})", header[1])
    assert m and m.group(1).decode() == env.extra["smtp_id"]
    m = re.fullmatch(rb"\tfor <user@local\.example>; (.+)", header[2])
    assert m
    stamp = parsedate_to_datetime(m.group(1).decode())
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)
    assert env.extra["client_name"] == "client.example"


async def test_received_without_reverse_dns() -> None:
    sink = FakeSink()
    async with running_mx(sink, reverse_dns=None) as mx, raw_client(mx.port, "x(y)") as c:
        await start_data(c)
        assert await c.cmd(b"hi\r\n.") == "250 2.0.0 Ok: queued"
    [env] = sink.envelopes
    assert env.data.startswith(b"Received: from x_y_ (unknown [127.0.0.1])\r\n")
    assert env.helo == "x(y)"


async def test_starttls_discards_plaintext_and_resets(
    mx_tls: Listener, client_tls: ssl.SSLContext
) -> None:
    async with raw_client(mx_tls.port) as c:
        assert await c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0 OK"
        # A command injected after STARTTLS in the same packet must not be executed.
        await c.send(b"STARTTLS\r\nRCPT TO:<user@local.example>\r\n")
        assert await c.reply() == (220, ["2.0.0 Ready to start TLS"])
        await c.writer.start_tls(client_tls, server_hostname="mx.test")
        assert await c.cmd("MAIL FROM:<a@example.org>") == "503 5.5.1 Error: send HELO/EHLO first"
        assert await c.cmd("EHLO client.example") == "250 DSN"
        assert await c.cmd("STARTTLS") == "503 5.5.1 Error: TLS already active"
        assert await c.cmd("RCPT TO:<user@local.example>") == "503 5.5.1 Error: need MAIL command"
    assert mx_tls.sink.checked == []


async def test_starttls_unavailable_and_misc(mx: Listener) -> None:
    async with raw_client(mx.port) as c:
        assert await c.cmd("STARTTLS") == "454 4.7.0 TLS not available"
        assert (await c.cmd("VRFY postmaster")).startswith("252 2.0.0 ")
        assert await c.cmd("EXPN staff") == "502 5.5.1 EXPN not available"
        assert await c.cmd("RSET x") == "501 5.5.4 Syntax: RSET"
        assert await c.cmd("noop whatever") == "250 2.0.0 OK"
        assert await c.cmd("QUIT") == "221 2.0.0 mx.test closing connection"
        assert await c.at_eof()


async def test_idle_session_times_out() -> None:
    async with running_mx(FakeSink(), session_timeout=0.2) as mx:
        client = await RawClient.connect(mx.port)
        try:
            assert await client.at_eof()
        finally:
            await client.close()


async def test_reverse_dns_failure_or_hang_gives_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailward.smtp.mx.RDNS_WAIT", 0.05)

    async def broken(ip: str) -> str | None:
        raise OSError("resolver down")

    async def hanging(ip: str) -> str | None:
        await asyncio.Event().wait()
        return "never.example"

    for resolver in (broken, hanging):
        sink = FakeSink()
        async with running_mx(sink, reverse_dns=resolver) as mx, raw_client(mx.port) as c:
            for _ in range(2):
                await start_data(c)
                assert await c.cmd(b"hi\r\n.") == "250 2.0.0 Ok: queued"
        assert [e.extra["client_name"] for e in sink.envelopes] == ["unknown", "unknown"]
        assert sink.envelopes[0].data.startswith(
            b"Received: from client.example (unknown [127.0.0.1])"
        )


async def test_system_reverse_dns_does_not_raise() -> None:
    name = await system_reverse_dns("127.0.0.1")  # "localhost" on most hosts
    assert name is None or (isinstance(name, str) and not name.endswith("."))


async def test_multiline_sink_reply(mx: Listener) -> None:
    mx.sink.rcpt_replies = {"x@local.example": Reply(550, "5.7.1", "Rejected\nsee https://x")}
    async with raw_client(mx.port) as c:
        assert await c.cmd("MAIL FROM:<a@example.org>") == "250 2.1.0 OK"
        await c.send(b"RCPT TO:<x@local.example>\r\n")
        assert await c.reply() == (550, ["5.7.1 Rejected", "5.7.1 see https://x"])


async def test_failed_tls_handshake_closes(mx_tls: Listener) -> None:
    async with raw_client(mx_tls.port) as c:
        assert await c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
        await c.send(b"this is not a TLS ClientHello\r\n" * 20)
        assert await c.at_eof()
