"""ENVELOPE / BODYSTRUCTURE / BODY[section] computed from raw bytes (RFC 3501)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailward.imap.mime import bodystructure, envelope, section
from mailward.imap.respond import human_string, imap_string, nstring


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


# ----------------------------------------------------------------- serializer


def test_imap_string_quotes_and_literals() -> None:
    assert nstring(None) == b"NIL"
    assert imap_string('a "b" \\c') == b'"a \\"b\\" \\\\c"'
    assert imap_string("Grüße") == b"{7}\r\nGr\xc3\xbc\xc3\x9fe"
    assert imap_string("a\r\nb") == b"{4}\r\na\r\nb"
    assert imap_string("x" * 1001).startswith(b"{1001}\r\n")
    assert imap_string("x" * 1000) == b'"' + b"x" * 1000 + b'"'


# ----------------------------------------------------------------- simple text

SIMPLE = crlf(
    "From: Alice Example <alice@example.com>\n"
    "To: bob@example.org\n"
    'Subject: Hello "world"\n'
    "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
    "Message-ID: <1@example.com>\n"
    "\n"
    "Line one\n"
    "Line two\n"
)
SIMPLE_HDR, SIMPLE_TEXT = SIMPLE.split(b"\r\n\r\n", 1)


def test_simple_envelope() -> None:
    alice = b'(("Alice Example" NIL "alice" "example.com"))'
    assert envelope(SIMPLE) == (
        b'("Mon, 7 Feb 1994 21:52:25 -0800" {13}\r\nHello "world" '
        + alice
        + b" "
        + alice
        + b" "
        + alice
        + b' ((NIL NIL "bob" "example.org")) NIL NIL NIL "<1@example.com>")'
    )


def test_simple_bodystructure() -> None:
    assert bodystructure(SIMPLE) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2 NIL NIL NIL NIL)'
    )
    assert bodystructure(SIMPLE, extensible=False) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 20 2)'
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", SIMPLE),
        ("HEADER", SIMPLE_HDR + b"\r\n\r\n"),
        ("header", SIMPLE_HDR + b"\r\n\r\n"),
        ("TEXT", SIMPLE_TEXT),
        ("1", SIMPLE_TEXT),  # non-multipart message: part 1 is its body
        ("2", b""),
        ("1.2", b""),
        ("HEADER.FIELDS (SUBJECT to)", b'To: bob@example.org\r\nSubject: Hello "world"\r\n\r\n'),
        ("HEADER.FIELDS (X-NONE)", b"\r\n"),
        (
            "HEADER.FIELDS.NOT (FROM TO DATE)",
            b'Subject: Hello "world"\r\nMessage-ID: <1@example.com>\r\n\r\n',
        ),
        ("BOGUS", b""),
    ],
)
def test_simple_sections(spec: str, expected: bytes) -> None:
    assert section(SIMPLE, spec) == expected


# ------------------------------------------ Dovecot's own test message (CRLF)
# From dovecot/core src/lib-imap/test-imap-bodystructure.c, converted to CRLF so
# that Dovecot's (CRLF-based) sizes equal stored sizes.

DOVECOT = crlf(
    "From: user@domain.org\n"
    "Date: Sat, 24 Mar 2007 23:00:00 +0200\n"
    "Mime-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="foo\n'
    ' bar"\n'
    "\n"
    "Root MIME prologue\n"
    "\n"
    "--foo bar\n"
    'Content-Type: text/x-myown; charset=us-ascii; foo="quoted\\"string"\n'
    "Content-ID: <foo@example.com>\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-Disposition: inline; foo=bar\n"
    "Content-Description: hellodescription\n"
    "Content-Language: en, fi, se\n"
    "Content-Location: http://example.com/test.txt\n"
    "\n"
    "hello\n"
    "\n"
    "--foo bar\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: sub@domain.org\n"
    "To: sub-to1@domain.org, sub-to2@domain.org\n"
    "Date: Sun, 12 Aug 2012 12:34:56 +0300\n"
    "Subject: submsg\n"
    'Content-Type: multipart/alternative; boundary="sub1"\n'
    "\n"
    "Sub MIME prologue\n"
    "--sub1\n"
    "Content-Type: text/html\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "<p>Hello world</p>\n"
    "\n"
    "--sub1\n"
    "Content-Type: text/plain\n"
    "Content-Transfer-Encoding: ?invalid\n"
    "\n"
    "Hello another world\n"
    "\n"
    "--sub1--\n"
    "Sub MIME epilogue\n"
    "\n"
    "--foo bar--\n"
    "Root MIME epilogue\n"
)
_SUB_ENV = (
    b'("Sun, 12 Aug 2012 12:34:56 +0300" "submsg" ((NIL NIL "sub" "domain.org")) '
    b'((NIL NIL "sub" "domain.org")) ((NIL NIL "sub" "domain.org")) '
    b'((NIL NIL "sub-to1" "domain.org")(NIL NIL "sub-to2" "domain.org")) NIL NIL NIL NIL)'
)
DOVECOT_BODYSTRUCTURE = (
    b'(("text" "x-myown" ("charset" "us-ascii" "foo" "quoted\\"string") "<foo@example.com>" '
    b'"hellodescription" "7bit" 7 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" ("inline" ("foo" "bar")) '
    b'("en" "fi" "se") "http://example.com/test.txt")("message" "rfc822" NIL NIL NIL "7bit" 412 '
    + _SUB_ENV
    + b' (("text" "html" ("charset" "us-ascii") NIL NIL "8bit" 20 1 NIL NIL NIL NIL)'
    b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 1 NIL NIL NIL NIL) '
    b'"alternative" ("boundary" "sub1") NIL NIL NIL) 21 NIL NIL NIL NIL) '
    b'"mixed" ("boundary" "foo bar") NIL NIL NIL)'
)
DOVECOT_BODY = (
    b'(("text" "x-myown" ("charset" "us-ascii" "foo" "quoted\\"string") "<foo@example.com>" '
    b'"hellodescription" "7bit" 7 1)("message" "rfc822" NIL NIL NIL "7bit" 412 '
    + _SUB_ENV
    + b' (("text" "html" ("charset" "us-ascii") NIL NIL "8bit" 20 1)'
    b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 21 1) "alternative") 21) "mixed")'
)


def test_dovecot_fixture_bodystructure() -> None:
    # Dovecot's test writes without the outer parens of the root; IMAP adds them.
    assert bodystructure(DOVECOT) == DOVECOT_BODYSTRUCTURE
    assert bodystructure(DOVECOT, extensible=False) == DOVECOT_BODY


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1", b"hello\r\n"),
        ("2.1", b"<p>Hello world</p>\r\n"),
        ("2.2", b"Hello another world\r\n"),
        ("2.2.MIME", b"Content-Type: text/plain\r\nContent-Transfer-Encoding: ?invalid\r\n\r\n"),
        ("2.MIME", b"Content-Type: message/rfc822\r\n\r\n"),
        ("2.HEADER.FIELDS (subject)", b"Subject: submsg\r\n\r\n"),
        ("2.3", b""),
        ("3", b""),
        ("1.HEADER", b""),  # HEADER only applies to message/rfc822 parts
    ],
)
def test_dovecot_fixture_sections(spec: str, expected: bytes) -> None:
    assert section(DOVECOT, spec) == expected


def test_rfc822_part_body_is_whole_embedded_message() -> None:
    sub = section(DOVECOT, "2")
    assert sub.startswith(b"From: sub@domain.org\r\n")
    assert sub.endswith(b"Sub MIME epilogue\r\n")
    assert len(sub) == 412
    assert section(DOVECOT, "2.HEADER") + section(DOVECOT, "2.TEXT") == sub
    assert section(DOVECOT, "2.TEXT").startswith(b"Sub MIME prologue\r\n--sub1\r\n")


# ------------------------------------------- nested mixed / related / alternative

NESTED = crlf(
    "From: a@example.com\n"
    "MIME-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=outer\n"
    "\n"
    "--outer\n"
    'Content-Type: multipart/related; boundary="rel"; type="multipart/alternative"\n'
    "\n"
    "--rel\n"
    "Content-Type: multipart/alternative; boundary=alt\n"
    "\n"
    "--alt\n"
    "Content-Type: text/plain; charset=UTF-8; format=flowed\n"
    "\n"
    "plain\n"
    "--alt\n"
    "Content-Type: TEXT/HTML; CHARSET=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "<b>html</b>\n"
    '<img src=3D"cid:img1">\n'
    "--alt--\n"
    "\n"
    "--rel\n"
    "Content-Type: image/png\n"
    "Content-Transfer-Encoding: base64\n"
    "Content-ID: <img1>\n"
    "Content-Disposition: inline\n"
    "\n"
    "iVBORw0KGgo=\n"
    "--rel--\n"
    "--outer\n"
    'Content-Type: application/pdf; name="r.pdf"\n'
    "Content-Transfer-Encoding: base64\n"
    "Content-Disposition: attachment;\n"
    '\tfilename*0="report ";\n'
    '\tfilename*1="2024.pdf"\n'
    "Content-Language: de-DE\n"
    "\n"
    "JVBERi0=\n"
    "--outer--\n"
)
_PLAIN = (
    b'("text" "plain" ("charset" "UTF-8" "format" "flowed") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)'
)
_HTML = b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "quoted-printable" 35 1 NIL NIL NIL NIL)'
_PNG = b'("image" "png" NIL "<img1>" NIL "base64" 12 NIL ("inline" NIL) NIL NIL)'
_PDF = (
    b'("application" "pdf" ("name" "r.pdf") NIL NIL "base64" 8 NIL '
    b'("attachment" ("filename" "report 2024.pdf")) ("de-DE") NIL)'
)


def test_nested_bodystructure() -> None:
    # Type names and parameter names keep the case they were written in, as
    # Dovecot does; a text part without charset gets ("charset" "us-ascii").
    assert bodystructure(NESTED) == (
        b"((("
        + _PLAIN
        + _HTML
        + b' "alternative" ("boundary" "alt") NIL NIL NIL)'
        + _PNG
        + b' "related" ("boundary" "rel" "type" "multipart/alternative") NIL NIL NIL)'
        + _PDF
        + b' "mixed" ("boundary" "outer") NIL NIL NIL)'
    )
    assert bodystructure(NESTED, extensible=False) == (
        b'(((("text" "plain" ("charset" "UTF-8" "format" "flowed") NIL NIL "7bit" 5 0)'
        b'("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "quoted-printable" 35 1) "alternative")'
        b'("image" "png" NIL "<img1>" NIL "base64" 12) "related")'
        b'("application" "pdf" ("name" "r.pdf") NIL NIL "base64" 8) "mixed")'
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("1.1.1", b"plain"),
        ("1.1.2", b'<b>html</b>\r\n<img src=3D"cid:img1">'),
        ("1.2", b"iVBORw0KGgo="),
        (
            "1.2.MIME",
            b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-ID: <img1>\r\nContent-Disposition: inline\r\n\r\n",
        ),
        ("2", b"JVBERi0="),
        ("1.1.MIME", b"Content-Type: multipart/alternative; boundary=alt\r\n\r\n"),
        ("1.1.3", b""),
        ("1.3", b""),
        ("3", b""),
        ("0", b""),
        ("2.1", b"JVBERi0="),  # a leaf's only sub-part is itself
    ],
)
def test_nested_sections(spec: str, expected: bytes) -> None:
    assert section(NESTED, spec) == expected


def test_multipart_part_body_is_its_content() -> None:
    body = section(NESTED, "1.1")
    assert body.startswith(b"--alt\r\n")
    assert body.endswith(b"--alt--\r\n")


# ----------------------------------------------------------------- envelopes


def test_rfc2047_words_are_returned_raw() -> None:
    msg = crlf(
        "Subject: =?UTF-8?B?SGVsbG8gV8O2cmxk?=\n"
        "From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\n"
        'To: "=?utf-8?q?J=C3=B6rg?=" <j@x.de>, k@x.de (Keith =?us-ascii?q?M?=)\n'
        "\n"
    )
    assert envelope(msg) == (
        b'(NIL "=?UTF-8?B?SGVsbG8gV8O2cmxk?=" '
        + b'(("=?ISO-8859-1?Q?Andr=E9?= Pirard" NIL "PIRARD" "vm1.ulg.ac.be")) ' * 3
        + b'(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x.de")("Keith =?us-ascii?q?M?=" NIL "k" "x.de")) '
        b"NIL NIL NIL NIL)"
    )


def test_groups_routes_and_quoting() -> None:
    msg = crlf(
        "From: Pete <pete@silly.example>\n"
        'Sender: "Jones, Ed" <ed@a.test>\n'
        "To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;,\n"
        " Undisclosed recipients:;\n"
        'Cc: <@route.a,@route.b:user@host.test>, "a\\"b" <x@[10.0.0.1]>\n'
        "Bcc: \n"
        "In-Reply-To: <p@x>\n"
        "\n"
    )
    assert envelope(msg) == (
        b'(NIL NIL (("Pete" NIL "pete" "silly.example")) (("Jones, Ed" NIL "ed" "a.test")) '
        b'(("Pete" NIL "pete" "silly.example")) '
        b'((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")'
        b'("John" NIL "jdoe" "one.test")(NIL NIL NIL NIL)'
        b'(NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) '
        b'((NIL "@route.a,@route.b" "user" "host.test")({3}\r\na"b NIL "x" "[10.0.0.1]")) '
        b'NIL "<p@x>" NIL)'
    )


def test_missing_headers_are_nil() -> None:
    msg = b"Subject: only\r\n\r\nbody\r\n"
    assert envelope(msg) == b'(NIL "only" NIL NIL NIL NIL NIL NIL NIL NIL)'
    assert envelope(b"") == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert envelope(b"Subject:\r\n\r\n") == b'(NIL "" NIL NIL NIL NIL NIL NIL NIL NIL)'


def test_eight_bit_header_and_body() -> None:
    msg = (
        "Subject: Grüße\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Grüße aus Köln\r\n"
    ).encode()
    assert envelope(msg) == (b"(NIL {7}\r\nGr\xc3\xbc\xc3\x9fe NIL NIL NIL NIL NIL NIL NIL NIL)")
    assert bodystructure(msg) == (
        b'("text" "plain" ("charset" "utf-8") NIL NIL "8bit" 19 1 NIL NIL NIL NIL)'
    )
    assert section(msg, "1") == "Grüße aus Köln\r\n".encode()


# ----------------------------------------------------------------- odd input


def test_lf_only_message_uses_stored_sizes() -> None:
    msg = (
        b"Subject: lf\nContent-Type: multipart/alternative; boundary=b\n\n"
        b"--b\n\none\ntwo\n--b\nContent-Type: text/html\n\n<p>x</p>\n--b--\n"
    )
    assert bodystructure(msg, extensible=False) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 7 1)'
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 8 0) "alternative")'
    )
    assert section(msg, "HEADER") == (
        b"Subject: lf\nContent-Type: multipart/alternative; boundary=b\n\n"
    )
    assert section(msg, "1") == b"one\ntwo"
    assert section(msg, "2.MIME") == b"Content-Type: text/html\n\n"
    assert section(msg, "HEADER.FIELDS (SUBJECT)") == b"Subject: lf\n\r\n"


def test_multipart_without_boundary_parameter_is_a_leaf() -> None:
    msg = b"Content-Type: multipart/mixed\r\n\r\n--x\r\nhi\r\n"
    assert bodystructure(msg) == (b'("multipart" "mixed" NIL NIL NIL "7bit" 9 NIL NIL NIL NIL)')
    assert section(msg, "1") == b"--x\r\nhi\r\n"


def test_boundary_never_seen_gives_empty_text_part() -> None:
    msg = b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\njust text\r\n'
    assert bodystructure(msg) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) '
        b'"mixed" ("boundary" "zz") NIL NIL NIL)'
    )
    assert section(msg, "1") == b""


def test_missing_final_boundary_and_preamble_epilogue() -> None:
    msg = crlf(
        'Content-Type: multipart/mixed; boundary="=_Part:1 (x)?\'+"\n'
        "\n"
        "This is a preamble.\n"
        "--=_Part:1 (x)?'+\n"
        "\n"
        "first\n"
        "--=_Part:1 (x)?'+\n"
        "Content-Type: text/plain; charset=iso-8859-1\n"
        "\n"
        "second, unterminated\n"
    )
    assert bodystructure(msg, extensible=False) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0)'
        b'("text" "plain" ("charset" "iso-8859-1") NIL NIL "7bit" 22 1) "mixed")'
    )
    assert section(msg, "2") == b"second, unterminated\r\n"


def test_content_type_without_subtype_and_garbage() -> None:
    msg = b"Content-Type: text\r\nContent-Transfer-Encoding: (comment) BASE64\r\n\r\nx"
    assert bodystructure(msg, extensible=False) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "BASE64" 1 0)'
    )
    msg = b"Content-Type: application\r\n\r\nx"
    assert bodystructure(msg, extensible=False) == (
        b'("application" "unknown" NIL NIL NIL "7bit" 1)'
    )
    msg = b"Content-Type: ;;;\r\n\r\nx"
    assert bodystructure(msg, extensible=False) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0)'
    )


def test_digest_defaults_to_message_rfc822() -> None:
    msg = crlf(
        "Content-Type: multipart/digest; boundary=d\n"
        "\n"
        "--d\n"
        "\n"
        "Subject: one\n"
        "\n"
        "1\n"
        "--d\n"
        "Content-Type: text/plain\n"
        "\n"
        "not a message\n"
        "--d--\n"
    )
    assert bodystructure(msg, extensible=False) == (
        b'(("message" "rfc822" NIL NIL NIL "7bit" 17 '
        b'(NIL "one" NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0) 2)'
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 13 0) "digest")'
    )
    assert section(msg, "1.HEADER") == b"Subject: one\r\n\r\n"
    assert section(msg, "1.TEXT") == b"1"
    assert section(msg, "1.1") == b"1"


def test_rfc2231_extended_parameter_kept_encoded() -> None:
    msg = crlf(
        "Content-Type: application/x-stuff;\n"
        " title*0*=us-ascii'en'This%20is%20even%20more%20;\n"
        " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\n"
        ' title*2="isn\'t it!"\n'
        "\n"
        "x"
    )
    assert bodystructure(msg, extensible=False) == (
        b'("application" "x-stuff" ("title*" '
        b"\"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't it!\") "
        b'NIL NIL "7bit" 1)'
    )


# ----------------------------------------------------------------- properties


def _balanced(out: bytes) -> bool:
    """Parenthesis balance outside quoted strings and literals."""
    depth, i = 0, 0
    while i < len(out):
        c = out[i : i + 1]
        if c == b'"':
            i += 1
            while out[i : i + 1] != b'"':
                if i >= len(out):
                    return False
                i += 2 if out[i : i + 1] == b"\\" else 1
        elif c == b"{":
            end = out.index(b"}\r\n", i)
            i = end + 3 + int(out[i + 1 : end])
            continue
        elif c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return depth == 0


_PIECES = (
    '\r\n|\n|\r| |\t|:|;|=|"|(|)|<|>|@|,|\\|--|--b|--b--|boundary=b|boundary="b"|'
    "Content-Type: |multipart/mixed|message/rfc822|multipart/digest|text/plain|From: |To: |"
    "Subject: |Content-Disposition: |Content-Language: |x*0*=|g:|\xff|\x00|=?utf-8?q?x?="
)
_pieces = st.sampled_from([p.encode("latin-1") for p in _PIECES.split("|")])
_messages = st.one_of(
    st.binary(max_size=400),
    st.lists(st.one_of(_pieces, st.binary(max_size=5)), max_size=80).map(b"".join),
)
_SPECS = "|HEADER|TEXT|1|1.1|2|1.MIME|2.HEADER|1.2.TEXT|HEADER.FIELDS (FROM)|MIME|x|1.|(|99999"
_specs = st.one_of(st.sampled_from(_SPECS.split("|")), st.text(max_size=12))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=_messages, spec=_specs)
def test_never_raises_and_balanced(data: bytes, spec: str) -> None:
    env = envelope(data)
    assert env.startswith(b"(") and _balanced(env)
    for ext in (True, False):
        bs = bodystructure(data, extensible=ext)
        assert bs.startswith(b"(") and _balanced(bs)
    out = section(data, spec)
    assert isinstance(out, bytes)
    assert len(out) <= len(data) + 2


def test_deep_nesting_does_not_recurse_forever() -> None:
    msg = b"Content-Type: message/rfc822\r\n\r\n" * 2000 + b"x"
    assert _balanced(bodystructure(msg))
    assert section(msg, ".".join(["1"] * 30)) is not None


def test_human_strings_are_cleaned_like_dovecot() -> None:
    assert human_string(None) == b"NIL"
    assert human_string("plain words") == b'"plain words"'
    assert human_string("") == b'""'
    assert human_string(" \t\r\n ") == b'""'
    assert human_string("a\r\n  b\tc  ") == b"{5}\r\na b c"
    assert human_string('say "hi"') == b'{8}\r\nsay "hi"'
    assert human_string("Grüße".encode()) == b"{7}\r\nGr\xc3\xbc\xc3\x9fe"


ATTACHED = crlf(
    "Content-Type: multipart/mixed; boundary=out\n\n"
    "--out\nContent-Type: text/plain\n\nleaf\n"
    "--out\nContent-Type: message/rfc822\n\n"
    "Subject: in\nContent-Type: multipart/alternative; boundary=in\n\n"
    "--in\nContent-Type: text/plain\n\ninner\n--in--\n"
    "--out--\n"
)


def test_section_numbers_walk_like_dovecot() -> None:
    assert section(ATTACHED, "1") == b"leaf"
    assert section(ATTACHED, "1.1") == b"leaf"  # a leaf is its own part 1 ...
    assert section(ATTACHED, "1.2") == b""
    assert section(ATTACHED, "1.1.1") == b""  # ... but has no subparts
    assert section(ATTACHED, "2.1") == b"inner"  # into the attached message
    assert section(ATTACHED, "2.1.1") == b"inner"
    assert section(crlf("Subject: x\n\nbody\n"), "1.1") == b""


def test_nested_close_delimiter_keeps_its_line_end() -> None:
    # The attached message ends with "--in--\r\n": Dovecot keeps that CRLF in part 2.
    assert section(ATTACHED, "2").endswith(b"--in--\r\n")
    structure = bodystructure(ATTACHED)
    assert b'"7bit" 114 (' in structure and b'"in") NIL NIL NIL) 8 NIL' in structure
