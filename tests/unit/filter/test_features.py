"""Content-model features: stable hashing, HTML read as text, no message makes them raise."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mailward.filter.features import BIAS, N_BUCKETS, WORD_NORM, bucket, extract

PLAIN = (
    b"From bob@example.org Mon Jan  6 10:00:00 2025\n"
    b"From: Bob <bob@example.org>\nTo: alice@example.com\nSubject: Lunch on Friday\n"
    b"Date: Mon, 6 Jan 2025 10:00:00 +0000\nMessage-ID: <1@example.org>\n\n"
    b"Shall we meet at noon? The usual place.\n"
)

HTML_ONLY = (
    b"From: Shop <deals@shop.example>\nTo: a@b.example\nSubject: FREE OFFER!!!\n"
    b"MIME-Version: 1.0\nContent-Type: text/html; charset=utf-8\n\n"
    b"<html><style>.x{color:red}</style><body><p>Cl<b>ai</b>m your <i>prize</i></p>"
    b'<a href="http://198.51.100.7/win">http://www.paypal.com/login</a></body></html>\n'
)


def has(features: dict[int, float], name: str) -> bool:
    return bucket(name) in features


def test_features_are_sparse_hashed_and_carry_a_bias() -> None:
    features = extract(PLAIN)
    assert features[BIAS] == 1.0
    assert all(0 <= i < N_BUCKETS and v == 1.0 for i, v in features.items())  # a short text
    assert has(features, "s:lunch") and has(features, "s:lunch on")
    assert has(features, "b:noon") and has(features, "b:the usual")
    assert not has(features, "h:no-date") and not has(features, "h:no-message-id")


def test_hashing_is_stable_across_processes() -> None:
    # A salted hash() would differ between interpreters with different PYTHONHASHSEEDs.
    code = (
        "import sys; from mailward.filter.features import extract;"
        "print(sorted(extract(sys.stdin.buffer.read()).items()))"
    )
    runs = {
        subprocess.run([sys.executable, "-c", code], input=HTML_ONLY, capture_output=True,
                       check=True, env={"PYTHONHASHSEED": seed}).stdout
        for seed in ("1", "2")
    }
    assert runs == {str(sorted(extract(HTML_ONLY).items())).encode() + b"\n"}
    assert bucket("b:free") != bucket("s:free")


def test_html_is_read_as_text_with_its_links() -> None:
    features = extract(HTML_ONLY)
    assert has(features, "b:claim")  # inline tags do not split words
    assert has(features, "b:claim your") and has(features, "b:your prize")
    assert not has(features, "b:color") and not has(features, "b:red")  # style dropped
    assert not has(features, "b:html") and not has(features, "b:href")  # tags dropped
    assert has(features, "m:html-only")
    assert has(features, "l:ip-literal")
    assert has(features, "l:text-href-mismatch")  # shows paypal.com, links elsewhere
    assert has(features, "ld:paypal.com")
    assert has(features, "s:bang:3") and has(features, "s:caps:3")


def test_header_shape_features() -> None:
    message = (
        b'From: "support@bank.example" <x9@mailer.example>\n'
        b"To: " + b", ".join(b"u%d@example.com" % i for i in range(40)) + b"\n"
        b"Subject: invoice\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain; charset=koi8-r\n\nsee attached\n"
        b"--B\nContent-Type: application/octet-stream\n"
        b'Content-Disposition: attachment; filename="invoice.pdf.exe"\n\nMZ\n--B--\n'
    )
    features = extract(message)
    for name in ("h:no-date", "h:no-message-id", "h:from-name-other-address", "h:rcpts:5",
                 "m:exe-attachment", "m:charset:koi8-r", "b:attached"):
        assert has(features, name), name
    assert not has(features, "m:html-only")
    assert not has(extract(PLAIN), "m:exe-attachment")


@pytest.mark.parametrize("data", [
    b"",
    b"\x00\xff\xfe garbage \x80\x81",
    b"Subject: =?utf-8?b?not base64!?=\nFrom: <<<\n\n\xe9t\xe9 caf\xe9 \xff\n",
    b"Subject: x\nContent-Type: text/plain; charset=no-such-charset\n\n\xe9\xe8 text\n",
    b"Subject: x\nContent-Type: text/html; charset=utf-8\n"
    b"Content-Transfer-Encoding: base64\n\n!!!not*base64\n",
    b"Content-Type: multipart/mixed; boundary=Z\n\n--Z\nContent-Type: text/html\n\n<a href=",
    b"Subject: \xf0\x9f\x92\xb0 \xc3\xa9t\xc3\xa9\nContent-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n\nd\xc3\xa9j\xc3\xa0 vu \xed\xa0\x80 lone surrogate\n",
    b"From: x\n" * 500 + b"\n" + b"<" * 10_000,
])
def test_malformed_messages_never_raise(data: bytes) -> None:
    features = extract(data)
    assert features[BIAS] == 1.0 and features == extract(data)


def test_eight_bit_text_is_tokenised() -> None:
    data = (b"Subject: caf\xc3\xa9\nContent-Type: text/plain; charset=utf-8\n"
            b"Content-Transfer-Encoding: 8bit\n\nd\xc3\xa9j\xc3\xa0 vu\n")
    features = extract(data)
    assert has(features, "s:café") and has(features, "b:déjà vu")


@pytest.mark.parametrize("markup", [b"<b", b"<a href=x", b"</", b"<?", b"<!", b"<a x='"])
def test_hostile_html_stays_linear(markup: bytes) -> None:
    # html.parser alone takes tens of seconds on 200 kB of unclosed tags.
    data = b"Subject: x\nContent-Type: text/html\n\n" + markup * (200_000 // len(markup))
    start = time.process_time()
    extract(data)
    assert time.process_time() - start < 1.0


def test_long_bodies_are_length_normalised() -> None:
    words = " ".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}" for i in range(600))
    features = extract(PLAIN.replace(b"Shall we meet", words.encode() + b" shall we meet"))
    value = features[bucket("b:noon")]
    assert 0 < value < 1 and features[BIAS] == 1.0 and features[bucket("s:lunch")] == 1.0
    body = [v for v in features.values() if v == value]
    assert sum(v * v for v in body) == pytest.approx(WORD_NORM)  # unit-ish L2 weight in all


def test_wording_html_link_and_header_shape_features() -> None:
    message = (
        b"From: Deals <deals@shop.example>\nTo: a@b.example\nReply-To: x@other.example\n"
        b"Subject: V.I.A.G.R.A and v1agra   now\nX-Mailer: Foo Mail 5.0\n"
        b"Message-ID: <123.abc@shop.example>\nContent-Type: text/html\n\n"
        b'<p style="display:none">hidden</p><font size="1">tiny</font>'
        b'<font color="#ffffff">white</font> GR<!-- x -->EAT <form action="x">'
        b"SAVE 50% NOW for $10!!! BUY NOW<a href=\"http://user@203.0.113.9:8080/r?u=http://x\">"
        b"here</a>\n"
    )
    features = extract(message)
    for name in ("s:spaced:0", "s:mixed:0", "s:space-run", "h:replyto-differ", "xm:foo mail",
                 "hn:x-mailer", "hn:reply-to", "h:msgid-shape:9.a", "h:received:0",
                 "m:html-hidden", "m:html-tiny", "m:html-white", "m:html-split", "m:html-form",
                 "b:money:0", "b:pct:0", "b:bangs:0", "l:userinfo", "l:port", "l:redirect",
                 "l:ip-literal"):
        assert has(features, name), name
    plain = extract(PLAIN)
    for name in ("m:html-hidden", "l:port", "s:spaced:0", "h:replyto-differ"):
        assert not has(plain, name), name
    assert has(plain, "hn:in-reply-to") is False and has(plain, "h:received:0")


def test_structure_charset_and_shape_features() -> None:
    message = (
        b"From: Deals <promo4711@shop.example>\nTo: a@b.example\n"
        b"Subject: =?iso-8859-1?q?caf=E9?=\nDate: 6 Jan 2025 10:00 GMT\n"
        b'MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\ncaf\xe9 au lait\n"
        b"--B\nContent-Type: text/html; charset=iso-8859-1\n\n<p>caf\xe9</p>\n--B--\n"
    )
    features = extract(message)
    for name in ("ms:multipart/alternative,text/plain,text/html", "m:8bit-undeclared",
                 "m:nonascii:3", "s:encoded", "h:date-shape:9 a 9 9:9 a",
                 "h:from-shape:a9"):
        assert has(features, name), name
    plain = extract(PLAIN)
    for name in ("ms:text/plain", "m:nonascii:0", "h:date-shape:a, 9 a 9 9:9:9 +9",
                 "h:from-shape:a"):
        assert has(plain, name), name
    assert not has(plain, "m:8bit-undeclared") and not has(plain, "s:encoded")


@pytest.mark.parametrize("data", [
    PLAIN,
    PLAIN.replace(b"\n", b"\r\n"),
    PLAIN.replace(b"\n\n", b"\n\r\n"),  # a separator the fast path does not look for
    b"Subject: x\nnot a header\n\nbody\n",  # the header block ends before the blank line
    b"Subject: x\nContent-Type: message/rfc822\n\nSubject: inner\n\nbody\n",
    b"\n\nbody only\n",
    b"Subject: no body",
])
def test_single_part_fast_path_parses_as_the_parser_does(data: bytes) -> None:
    from email import policy
    from email.parser import BytesParser

    from mailward.filter.features import parse_message

    fast = parse_message(data)
    full = BytesParser(policy=policy.compat32).parsebytes(data.split(b"\n", 1)[1]
                                                          if data.startswith(b"From ") else data)
    assert fast is not None
    assert fast.as_string() == full.as_string()
    assert fast._headers == full._headers
    assert fast.is_multipart() or fast.get_payload() == full.get_payload()
    assert [type(d) for d in fast.defects] == [type(d) for d in full.defects]


def test_ngram_buckets_are_those_of_their_names() -> None:
    from mailward.filter.features import _Builder

    builder = _Builder()
    builder.words("b:", ["déjà", "vu", "#", "vu", "déjà"])
    names = ["b:déjà", "b:vu", "b:#", "b:déjà vu", "b:vu #", "b:# vu", "b:vu déjà"]
    assert list(builder.features) == [BIAS] + [bucket(name) for name in names]
    empty = _Builder()
    empty.words("b:", [])
    assert list(empty.features) == [BIAS, 0]  # as ever: the CRC of no name


def test_attachment_named_only_in_content_type() -> None:
    message = (
        b'Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\nsee attached\n"
        b'--B\nContent-Type: application/octet-stream;\n\tNAME="setup.exe"\n\nMZ\n--B--\n'
    )
    features = extract(message)
    assert has(features, "m:exe-attachment") and has(features, "m:attachments:1")
    assert has(features, "ms:multipart/mixed,text/plain,application/octet-stream")
