"""The header index (``parsed.HeaderIndex``) reads a message's header block as dkimpy and
the email package read it, so what it replaces (their own parses) gives the same answers;
``PARSES`` counts each parse."""

from __future__ import annotations

from email import policy
from email.parser import BytesHeaderParser, BytesParser

import dkim
import pytest

from mailward.dkim.keys import generate_keypair
from mailward.filter.auth import _verifier
from mailward.filter.parsed import PARSES, HeaderIndex, parse, parse_headers
from mailward.inbound.mx import _authenticated

MESSAGES = [
    b"From: Anna <anna@author.example>\r\nTo: bob@acme.example\r\nSubject: =?utf-8?q?"
    b"Caf=C3=A9?= menu\r\n\tfor Friday\r\n\r\nBody line\r\n\r\n",
    b"From: a@b.example\nSubject: LF only\n folded\n\nbody\nmore\n",  # bare LF line ends
    b"From: a@b.example\r\nSubject: no body\r\n",  # no blank line
    b"From mbox@line Sun Dec  6 10:00:00 2026\r\nFrom: a@b.example\r\n\r\nx\r\n",
    b"Subject: one\r\nSubject: two\r\nX-Empty:\r\n continued\r\n\r\n\r\n",
    b"\r\nno header at all\r\n",
]


@pytest.mark.parametrize("data", MESSAGES)
def test_fields_and_body_are_dkimpys(data: bytes) -> None:
    headers = HeaderIndex.of(data)
    assert (headers.fields, headers.body()) == dkim.rfc822_parse(data)
    assert not headers.malformed


@pytest.mark.parametrize("data", MESSAGES[:3] + MESSAGES[4:])
def test_values_are_the_email_packages(data: bytes) -> None:
    headers = HeaderIndex.of(data)
    compat = BytesParser(policy=policy.compat32).parsebytes(data)
    modern = BytesHeaderParser(policy=policy.default).parsebytes(data)
    for name in ("From", "Subject", "X-Empty", "To"):
        # (the index's folded values end their lines with CRLF, as dkimpy's do)
        assert [v.replace("\r\n", "\n") for v in headers.get_all(name)] == [
            v.replace("\r\n", "\n") for v in compat.get_all(name, [])]
        assert [str(v) for v in headers.get_all(name, policy.default)] == [
            str(v) for v in modern.get_all(name, [])]
        value = modern.get(name)
        assert headers.text(name) == ("" if value is None else " ".join(str(value).split()))


def test_a_line_that_is_no_field_ends_the_block_and_marks_it_malformed() -> None:
    data = b"From: a@b.example\r\nthis is no header\r\nSubject: late\r\n\r\nbody\r\n"
    headers = HeaderIndex.of(data)
    assert headers.malformed and [n for n, _ in headers.fields] == [b"From"]
    assert data[headers.body_start:].startswith(b"this is no header")
    with pytest.raises(dkim.MessageFormatError):  # what dkimpy refuses
        dkim.rfc822_parse(data)


def test_without_drops_exactly_the_chosen_fields() -> None:
    data = (b"Authentication-Results: mx.example; spf=pass\r\n\tdkim=pass\r\n"
            b"From: a@b.example\r\nAuthentication-Results: other.example; none\r\n\r\nbody\r\n")
    headers = HeaderIndex.of(data)
    kept = headers.without(lambda name, value: value.startswith(b" mx.example;"))
    assert kept == (b"From: a@b.example\r\nAuthentication-Results: other.example; none\r\n"
                    b"\r\nbody\r\n")
    assert headers.without(lambda name, value: False) == data


def test_dkim_verifies_from_the_index_as_from_the_message() -> None:
    key = generate_keypair(1024)
    record = f"v=DKIM1; k=rsa; p={key.public_b64}".encode()
    message = b"From: a@author.example\r\nSubject: hi\r\n\r\nHello\r\n"
    signed = dkim.sign(message, b"s1", b"author.example", key.private_pem.encode()) + message

    def txt(name: bytes | str, timeout: int = 5) -> bytes | None:
        return record

    assert _verifier(dkim.DKIM, HeaderIndex.of(signed), 1).verify(dnsfunc=txt)
    tampered = signed.replace(b"Hello", b"Hallo")
    assert not dkim.verify(tampered, dnsfunc=txt)
    with pytest.raises(dkim.ValidationError, match="body hash mismatch"):
        _verifier(dkim.DKIM, HeaderIndex.of(tampered), 1).verify(dnsfunc=txt)


def test_every_parse_is_counted() -> None:
    before = PARSES.copy()
    data = MESSAGES[0]
    parse(data)
    parse_headers(data)
    HeaderIndex.of(data)
    HeaderIndex.of(data).body()
    assert PARSES - before == {"message": 1, "headers": 1, "index": 2}


def test_the_mx_drops_forged_results_of_ours_and_keeps_the_rest() -> None:
    data = (b"Authentication-Results: MX.example ; spf=pass\r\n\tdkim=pass\r\n"
            b"Authentication-Results: other.example; none\r\nFrom: a@b.example\r\n"
            b"Authentication-Results: mx.example.evil; none\r\n\r\nbody\r\n")
    assert _authenticated(HeaderIndex.of(data), "mx.example; spf=none", "mx.example") == (
        b"Authentication-Results: mx.example; spf=none\r\n"
        + data.split(b"\tdkim=pass\r\n", 1)[1])
    # past a line that is no field a lenient reader may still see fields: dropped there too
    hidden = (b"From: a@b.example\r\nno field here\r\n"
              b"Authentication-Results: mx.example; dmarc=pass\r\n\r\nbody\r\n")
    assert _authenticated(HeaderIndex.of(hidden), "mx.example; none", "mx.example") == (
        b"Authentication-Results: mx.example; none\r\nFrom: a@b.example\r\nno field here"
        b"\r\n\r\nbody\r\n")
