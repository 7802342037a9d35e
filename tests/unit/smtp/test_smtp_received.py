"""The Received: header builder."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

from mailward.smtp.received import TlsInfo, address_literal, protocol_name, received_header

WHEN = datetime(2026, 3, 3, 12, 0, 0, tzinfo=UTC)


def test_plain_single_recipient() -> None:
    header = received_header(
        helo="mail.example.org",
        client_name="mail.example.org",
        client_ip="192.0.2.1",
        hostname="mx.example.net",
        protocol="ESMTP",
        smtp_id="ABCDEFGHIJKLMNOP",
        recipient="user@example.com",
        when=WHEN,
    )
    assert header == (
        b"Received: from mail.example.org (mail.example.org [192.0.2.1])\r\n"
        b"\tby mx.example.net with ESMTP id ABCDEFGHIJKLMNOP\r\n"
        b"\tfor <user@example.com>; Tue, 03 Mar 2026 12:00:00 +0000\r\n"
    )


def test_tls_many_recipients_ipv6_unknown_name() -> None:
    header = received_header(
        helo="bad helo (with) ;junk",
        client_name=None,
        client_ip="2001:db8::1",
        hostname="mx.example.net",
        protocol=protocol_name(esmtp=True, tls=True, smtputf8=False),
        smtp_id="ID",
        tls=TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256),
        when=WHEN,
    )
    assert header == (
        b"Received: from bad_helo__with___junk (unknown [IPv6:2001:db8::1])\r\n"
        b"\tby mx.example.net with ESMTPS id ID\r\n"
        b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits));\r\n"
        b"\tTue, 03 Mar 2026 12:00:00 +0000\r\n"
    )
    msg = message_from_bytes(header + b"\r\nbody\r\n", policy=policy.default)
    unfolded = " ".join(str(msg["Received"]).split())
    assert unfolded.startswith("from bad_helo__with___junk (unknown [IPv6:2001:db8::1]) by ")
    assert unfolded.endswith("(256/256 bits)); Tue, 03 Mar 2026 12:00:00 +0000")


def test_names() -> None:
    assert address_literal("::ffff:192.0.2.9") == "[192.0.2.9]"
    assert address_literal("192.0.2.9") == "[192.0.2.9]"
    assert protocol_name(esmtp=False, tls=False, smtputf8=False) == "SMTP"
    assert protocol_name(esmtp=True, tls=True, smtputf8=True) == "UTF8SMTPS"
    assert protocol_name(esmtp=True, tls=True, smtputf8=False, auth=True) == "ESMTPSA"
