"""DKIM signing and verifying (dkimpy), with an in-memory key lookup."""

from __future__ import annotations

import re

import pytest

from mailward.dkim import generate_keypair, sign, txt_value, verify

MESSAGE = (
    b"From: Alice <alice@acme.example>\r\n"
    b"To: bob@elsewhere.example\r\n"
    b"Subject: Quarterly numbers\r\n"
    b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <1@acme.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"X-Mailer: test\r\n"
    b"\r\n"
    b"Hello Bob,\r\nthe numbers are fine.\r\n"
)


@pytest.fixture(scope="module")
def keypair():  # type: ignore[no-untyped-def]
    return generate_keypair()


def lookup_for(records: dict[str, str]):  # type: ignore[no-untyped-def]
    asked: list[str] = []

    async def lookup(name: str) -> bytes | None:
        asked.append(name)
        value = records.get(name)
        return value.encode() if value is not None else None

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def signature_header(signed: bytes) -> str:
    head = signed.split(b"\r\n\r\n", 1)[0].decode()
    match = re.match(r"DKIM-Signature:(.*?)\r\n(?=\S)", head, re.S)
    assert match, head
    return re.sub(r"\s+", "", match.group(1))


async def test_round_trip(keypair) -> None:  # type: ignore[no-untyped-def]
    signed = await sign(MESSAGE, domain="acme.example", selector="mw202611",
                        private_key=keypair.private_pem.encode())
    assert signed.startswith(b"DKIM-Signature: ")
    assert signed.endswith(MESSAGE)
    tags = dict(t.split("=", 1) for t in signature_header(signed).split(";") if t)
    assert tags["a"] == "rsa-sha256"
    assert tags["c"] == "relaxed/relaxed"
    assert tags["d"] == "acme.example"
    assert tags["s"] == "mw202611"
    signed_headers = tags["h"].split(":")
    assert signed_headers.count("from") == 2  # over-signed
    assert {"to", "subject", "date", "message-id", "mime-version", "content-type"} <= set(
        signed_headers
    )
    assert "cc" not in signed_headers  # absent headers are not listed
    assert "x-mailer" not in signed_headers

    lookup = lookup_for({"mw202611._domainkey.acme.example": txt_value(keypair.public_b64)})
    assert await verify(signed, lookup=lookup)
    assert lookup.asked == ["mw202611._domainkey.acme.example"]


async def test_tampering_breaks_the_signature(keypair) -> None:  # type: ignore[no-untyped-def]
    signed = await sign(MESSAGE, domain="acme.example", selector="mw202611",
                        private_key=keypair.private_pem.encode())
    lookup = lookup_for({"mw202611._domainkey.acme.example": txt_value(keypair.public_b64)})
    assert not await verify(signed.replace(b"are fine", b"are bad"), lookup=lookup)
    assert not await verify(signed.replace(b"Quarterly", b"Monthly"), lookup=lookup)
    added_from = signed.replace(b"\r\n\r\n", b"\r\nFrom: mallory@evil.example\r\n\r\n", 1)
    assert not await verify(added_from, lookup=lookup)
    # relaxed canonicalisation tolerates whitespace changes in headers
    assert await verify(signed.replace(b"Subject: Quarterly", b"Subject:   Quarterly"),
                        lookup=lookup)


async def test_wrong_or_missing_key_fails(keypair) -> None:  # type: ignore[no-untyped-def]
    signed = await sign(MESSAGE, domain="acme.example", selector="mw202611",
                        private_key=keypair.private_pem.encode())
    other = generate_keypair()
    assert not await verify(
        signed, lookup=lookup_for({"mw202611._domainkey.acme.example": txt_value(other.public_b64)})
    )
    assert not await verify(signed, lookup=lookup_for({}))
    assert not await verify(MESSAGE, lookup=lookup_for({}))  # unsigned


async def test_lf_messages_are_signed_with_lf(keypair) -> None:  # type: ignore[no-untyped-def]
    message = MESSAGE.replace(b"\r\n", b"\n")
    signed = await sign(message, domain="acme.example", selector="s1",
                        private_key=keypair.private_pem.encode())
    assert b"\r" not in signed
    lookup = lookup_for({"s1._domainkey.acme.example": txt_value(keypair.public_b64)})
    assert await verify(signed, lookup=lookup)


async def test_a_message_without_from_is_refused(keypair) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="From"):
        await sign(b"Subject: x\r\n\r\nbody\r\n", domain="acme.example", selector="s1",
                   private_key=keypair.private_pem.encode())
