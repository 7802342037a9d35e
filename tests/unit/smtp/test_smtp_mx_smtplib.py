"""The MX listener driven by stdlib ``smtplib`` over a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from smtp_testkit import (
    OVER_QUOTA,
    RELAY_DENIED,
    UNKNOWN_USER,
    FakeSink,
    Listener,
    running_mx,
)

from mailward.smtp.tls import ensure_certificate, server_context
from mailward.smtp.types import RecipientParams, Reply

T = TypeVar("T")
NOTIFY_ERROR = (501, b"5.5.4 NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY")
MESSAGE = b"From: a@example.org\r\nTo: user@local.example\r\nSubject: hi\r\n\r\nHello\r\n"


async def session(port: int, fn: Callable[[smtplib.SMTP], T]) -> T:
    """Run ``fn`` with a connected ``smtplib.SMTP`` in a worker thread."""

    def run() -> T:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=10) as s:
            return fn(s)

    return await asyncio.to_thread(run)


async def test_ehlo_keywords(mx_tls: Listener) -> None:
    def run(s: smtplib.SMTP) -> tuple[int, bytes, dict[str, str]]:
        code, msg = s.ehlo()
        return code, msg, dict(s.esmtp_features)

    code, msg, features = await session(mx_tls.port, run)
    assert code == 250
    assert msg.split(b"\n")[0] == b"mx.test"
    assert features == {
        "pipelining": "",
        "size": "10000",
        "8bitmime": "",
        "smtputf8": "",
        "enhancedstatuscodes": "",
        "dsn": "",
        "starttls": "",
    }


async def test_no_starttls_without_context(mx: Listener) -> None:
    def run(s: smtplib.SMTP) -> dict[str, str]:
        s.ehlo()
        return dict(s.esmtp_features)

    features = await session(mx.port, run)
    assert "starttls" not in features
    assert "auth" not in features


async def test_rcpt_replies_are_passed_through(mx: Listener) -> None:
    mx.sink.rcpt_replies = {
        "someone@elsewhere.example": RELAY_DENIED,
        "nobody@local.example": UNKNOWN_USER,
        "full@local.example": OVER_QUOTA,
    }
    addresses = [
        "someone@elsewhere.example",
        "nobody@local.example",
        "full@local.example",
        "user@local.example",
    ]

    def run(s: smtplib.SMTP) -> list[tuple[int, bytes]]:
        s.ehlo()
        assert s.mail("sender@example.org") == (250, b"2.1.0 OK")
        return [s.rcpt(a) for a in addresses]

    assert await session(mx.port, run) == [
        (550, b"5.7.1 Relay access denied"),
        (550, b"5.1.1 User unknown"),
        (452, b"4.2.2 Mailbox full"),
        (250, b"2.1.5 OK"),
    ]
    assert mx.sink.checked == addresses


async def test_message_with_dsn_parameters(mx: Listener) -> None:
    mx.sink.accept_reply = Reply(250, "2.0.0", "Ok: queued as ABC")
    body = MESSAGE + b".leading dot\r\n"

    def run(s: smtplib.SMTP) -> dict[str, tuple[int, bytes]]:
        return s.sendmail(
            "bounces@example.org",
            ["user@local.example"],
            body,
            mail_options=["RET=HDRS", "ENVID=QQ+2B314", "BODY=8BITMIME", "AUTH=<>"],
            rcpt_options=["NOTIFY=success,DELAY", "ORCPT=rfc822;User+2Bx@Example.COM"],
        )

    assert await session(mx.port, run) == {}
    [env] = mx.sink.envelopes
    assert env.sender == "bounces@example.org"
    assert env.recipients == (
        RecipientParams("user@local.example", ("SUCCESS", "DELAY"), "rfc822;User+x@Example.COM"),
    )
    assert (env.envid, env.ret, env.body, env.smtputf8) == ("QQ+314", "HDRS", "8BITMIME", False)
    assert (env.peer, env.helo, env.tls, env.authenticated_as) == (
        "127.0.0.1",
        "client.example",
        False,
        None,
    )
    assert env.data.startswith(b"Received: from client.example ")
    # The body is kept byte for byte (CRLF), only the dot-stuffing is undone.
    assert env.data.endswith(b"\r\n" + body)


async def test_notify_never_and_null_sender(mx: Listener) -> None:
    def run(s: smtplib.SMTP) -> dict[str, tuple[int, bytes]]:
        return s.sendmail("<>", ["Postmaster"], MESSAGE, rcpt_options=["NOTIFY=NEVER"])

    assert await session(mx.port, run) == {}
    [env] = mx.sink.envelopes
    assert env.sender == ""
    assert env.recipients == (RecipientParams("Postmaster", ("NEVER",)),)


@pytest.mark.parametrize(
    ("command", "options", "expected"),
    [
        ("mail", ["FOO=BAR"], (555, b"5.5.4 MAIL FROM parameter FOO not recognized")),
        ("mail", ["SIZE=20000"], (552, b"5.3.4 Message size exceeds fixed maximum message size")),
        ("mail", ["RET=NONE"], (501, b"5.5.4 RET must be FULL or HDRS")),
        ("mail", ["BODY=BINARYMIME"], (501, b"5.5.4 BODY must be 7BIT or 8BITMIME")),
        ("mail", ["ENVID=a+0Db"], (501, b"5.5.4 ENVID must be xtext")),
        ("rcpt", ["XFOO"], (555, b"5.5.4 RCPT TO parameter XFOO not recognized")),
        ("rcpt", ["NOTIFY=NEVER,SUCCESS"], NOTIFY_ERROR),
        ("rcpt", ["NOTIFY=SOMETIMES"], NOTIFY_ERROR),
        ("rcpt", ["ORCPT=user@example.com"], (501, b"5.5.4 ORCPT must be addr-type;xtext")),
    ],
)  # fmt: skip
async def test_parameter_errors(
    mx: Listener, command: str, options: list[str], expected: tuple[int, bytes]
) -> None:
    def run(s: smtplib.SMTP) -> tuple[int, bytes]:
        s.ehlo()
        if command == "mail":
            return s.mail("a@example.org", options)
        s.mail("a@example.org")
        return s.rcpt("user@local.example", options)

    assert await session(mx.port, run) == expected
    assert mx.sink.checked == []


async def test_data_too_large_then_next_transaction(mx: Listener) -> None:
    big = b"\r\n".join([MESSAGE] + [b"y" * 900] * 12)  # > 10 000 bytes, sent without SIZE=

    def run(s: smtplib.SMTP) -> tuple[tuple[int, bytes], dict[str, tuple[int, bytes]]]:
        s.ehlo()
        s.mail("a@example.org")
        s.rcpt("user@local.example")
        too_big = s.data(big)
        return too_big, s.sendmail("a@example.org", ["user@local.example"], MESSAGE)

    too_big, refused = await session(mx.port, run)
    assert too_big == (552, b"5.3.4 Message size exceeds fixed maximum message size")
    assert refused == {}
    [env] = mx.sink.envelopes
    assert env.data.endswith(b"\r\n" + MESSAGE)


async def test_too_many_recipients() -> None:
    sink = FakeSink()

    def run(s: smtplib.SMTP) -> tuple[list[tuple[int, bytes]], tuple[int, bytes]]:
        s.ehlo()
        s.mail("a@example.org")
        replies = [s.rcpt(f"u{i}@local.example") for i in range(5)]
        return replies, s.data(MESSAGE)

    async with running_mx(sink, max_recipients=3) as mx:
        replies, data = await session(mx.port, run)
    assert [r[0] for r in replies] == [250, 250, 250, 452, 452]
    assert replies[3] == (452, b"4.5.3 Error: too many recipients")
    assert data == (250, b"2.0.0 Ok: queued")
    [env] = sink.envelopes
    assert [r.address for r in env.recipients] == [f"u{i}@local.example" for i in range(3)]
    assert b"\tfor <" not in env.data.split(b"\r\n\r\n")[0]  # no "for" with several rcpts


async def test_sink_failure_is_451_and_session_survives(
    mx: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    mx.sink.accept_error = RuntimeError("disk on fire")

    def run(s: smtplib.SMTP) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        s.ehlo()
        s.mail("a@example.org")
        s.rcpt("user@local.example")
        failed = s.data(MESSAGE)
        mx.sink.accept_error = None
        s.mail("a@example.org")
        s.rcpt("user@local.example")
        return failed, s.data(MESSAGE)

    with caplog.at_level(logging.ERROR, logger="mailward.smtp.mx"):
        failed, ok = await session(mx.port, run)
    assert failed == (451, b"4.3.0 Error: temporary failure, try again later")
    assert ok == (250, b"2.0.0 Ok: queued")
    assert len(mx.sink.envelopes) == 1
    assert "disk on fire" in caplog.text


async def test_check_recipient_failure_is_451(mx: Listener) -> None:
    mx.sink.rcpt_error = ConnectionError("database gone")

    def run(s: smtplib.SMTP) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        s.ehlo()
        s.mail("a@example.org")
        return s.rcpt("user@local.example"), s.noop()

    rcpt, noop = await session(mx.port, run)
    assert rcpt == (451, b"4.3.0 Error: temporary failure, try again later")
    assert noop == (250, b"2.0.0 OK")


def _starttls_and_send(client_tls: ssl.SSLContext) -> Callable[[smtplib.SMTP], dict[str, str]]:
    def run(s: smtplib.SMTP) -> dict[str, str]:
        s.ehlo()
        assert s.has_extn("starttls")
        assert s.starttls(context=client_tls) == (220, b"2.0.0 Ready to start TLS")
        s.ehlo()
        features = dict(s.esmtp_features)
        assert s.sendmail("a@example.org", ["user@local.example"], MESSAGE) == {}
        return features

    return run


async def test_starttls_then_message(mx_tls: Listener, client_tls: ssl.SSLContext) -> None:
    features = await session(mx_tls.port, _starttls_and_send(client_tls))
    assert "starttls" not in features
    assert "size" in features
    [env] = mx_tls.sink.envelopes
    assert env.tls
    assert env.extra["tls_version"] in ("TLSv1.3", "TLSv1.2")
    header = env.data.split(b"\r\n\r\n")[0].decode()
    assert "\tby mx.test with ESMTPS id " in header
    assert f"(using {env.extra['tls_version']} with cipher {env.extra['tls_cipher']} (" in header
    assert " bits))\r\n\tfor <user@local.example>; " in header


async def test_starttls_with_generated_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    ensure_certificate(cert, key, "127.0.0.1")
    client = ssl.create_default_context(cafile=str(cert))
    sink = FakeSink()
    async with running_mx(sink, tls_context=server_context(cert, key)) as mx:
        await session(mx.port, _starttls_and_send(client))
    [env] = sink.envelopes
    assert env.tls


async def test_quit(mx: Listener) -> None:
    def run(s: smtplib.SMTP) -> tuple[int, bytes]:
        s.ehlo()
        return s.docmd("QUIT")

    assert await session(mx.port, run) == (221, b"2.0.0 mx.test closing connection")


async def test_sink_reply_is_answered_as_is(mx: Listener) -> None:
    mx.sink.accept_reply = Reply(554, "5.7.1", "Spam detected")

    def run(s: smtplib.SMTP) -> tuple[int, bytes]:
        s.ehlo()
        s.mail("a@example.org")
        s.rcpt("user@local.example")
        return s.data(MESSAGE)

    assert await session(mx.port, run) == (554, b"5.7.1 Spam detected")
