"""The search index's pure parts: the words of a message, the query grammar, and the
FTS5/tsquery texts made from any user input (run against a real SQLite FTS5 table)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailward.store.search_index import (
    MAX_BODY,
    MAX_TERMS,
    Term,
    box_token,
    extract,
    fts_match,
    parse_query,
    tsquery_literal,
    tsvector_literal,
    words,
)

FTS = ("CREATE VIRTUAL TABLE mail_search_fts USING fts5(box, sender, recipients, subject, "
       "body, tokenize='unicode61 remove_diacritics 2', prefix='2 3')")  # as migration 0018


def test_words_fold_case_and_accents_and_split_at_punctuation() -> None:
    assert words("Überweisung für Café-Owner_2024, ann@example.com!") == [
        "uberweisung", "fur", "cafe", "owner", "2024", "ann", "example", "com"]
    assert words("x" * 65 + " ok") == ["ok"]  # base64 runs are no words
    assert words("日本語 テスト") == ["日本語", "テスト"]


def test_box_token_is_one_word_of_letters() -> None:
    token = box_token("ann@example.com")
    assert token.isalpha() and token.islower() and words(token) == [token]
    assert token != box_token("bob@example.com")


def test_query_fields_and_plain_words() -> None:
    assert parse_query("invoice FROM:Ann subject: Q3 report to:bob@x.org body:x cc:carol") == [
        Term("invoice"), Term("ann", "sender"), Term("q3", "subject"), Term("report"),
        Term("bob", "recipients"), Term("x", "recipients"), Term("org", "recipients"),
        Term("x", "body"), Term("carol", "recipients")]
    assert parse_query("foo:bar") == [Term("foo"), Term("bar")]  # not a field: words
    assert parse_query('"" * : OR') == [Term("or")]  # operators are words or nothing
    assert parse_query("a a A") == [Term("a")]
    assert len(parse_query(" ".join(f"w{n}" for n in range(100)))) == MAX_TERMS
    assert parse_query("from:") == []


def test_match_and_tsquery_texts() -> None:
    terms = [Term("invo"), Term("ann", "sender")]
    assert fts_match("mbxab", terms) == (
        'box : "mbxab" AND {sender recipients subject body} : "invo" * '
        'AND sender : "ann" *')
    assert tsquery_literal("mbxab", terms) == "'mbxab' & 'invo':* & 'ann':*A"


def test_tsvector_weights_each_field() -> None:
    doc = extract(b"From: Ann <ann@x.org>\r\nTo: bob@y.org\r\nSubject: Hi ann\r\n\r\nhi\r\n")
    assert tsvector_literal("mbx", doc) == (
        "'mbx':1 'ann':2A 'x':3A 'org':4A 'bob':5B 'y':6B 'org':7B 'hi':8C 'ann':9C 'hi':10D")


@pytest.fixture
def fts() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    conn.execute(FTS)
    conn.execute("INSERT INTO mail_search_fts VALUES (?, 'zoe', 'ann', 'invoice', 'pay')",
                 (box_token("ann@x.org"),))
    yield conn
    conn.close()


@settings(max_examples=300, deadline=None)
@given(query=st.text(max_size=60) | st.lists(st.sampled_from(
    ['"', "'", "*", "OR", "AND", "NOT", "NEAR(", ")", "(", ":", "^", "-", "+", "{", "}",
     "from:", "subject:", "\\", "\x00", "box", "invoice", "zoe"]), max_size=8).map(" ".join))
def test_any_query_is_a_valid_fts5_match(query: str) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute(FTS)
        terms = parse_query(query)
        assert all(t.word.isalnum() for t in terms)
        conn.execute("SELECT rowid FROM mail_search_fts WHERE mail_search_fts MATCH ?",
                     (fts_match(box_token("ann@x.org"), terms),)).fetchall()
        for term in terms:  # a lexeme of letters and digits only: nothing to escape
            assert tsquery_literal("mbx", [term]).startswith(f"'mbx' & '{term.word}':*")
    finally:
        conn.close()


def test_match_finds_prefixes_in_the_right_field(fts: sqlite3.Connection) -> None:
    box = box_token("ann@x.org")

    def hits(query: str, mailbox_box: str = box) -> int:
        return len(fts.execute("SELECT rowid FROM mail_search_fts WHERE mail_search_fts "
                               "MATCH ?", (fts_match(mailbox_box, parse_query(query)),))
                   .fetchall())

    assert hits("invo") == hits("from:zo") == hits("to:ann pay") == 1
    assert hits("from:ann") == hits("subject:pay") == 0
    assert hits(box) == 0  # the mailbox's token is not a searchable word
    assert hits("invoice", box_token("bob@x.org")) == 0


def _mime(headers: str, body: str) -> bytes:
    return (headers.replace("\n", "\r\n") + "\r\n\r\n" + body).encode("latin-1")


def test_extract_prefers_plain_text_and_skips_attachments() -> None:
    data = _mime(
        "From: =?utf-8?b?WsO2ZQ==?= <zoe@x.org>\nTo: ann@x.org\nCc: Carl <carl@x.org>\n"
        "Subject: =?iso-8859-1?q?R=E9sum=E9?=\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="m"',
        "--m\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n"
        "--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain words\r\n"
        "--a\r\nContent-Type: text/html\r\n\r\n<p>htmlonly words</p>\r\n--a--\r\n"
        "--m\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt"
        "\r\n\r\nattachedsecret\r\n--m--\r\n")
    doc = extract(data)
    assert doc.sender == "zoe zoe x org"
    assert doc.recipients == "ann x org carl carl x org"
    assert doc.subject == "resume"
    assert doc.body == "plain words"


def test_extract_turns_html_into_text() -> None:
    data = _mime("Subject: h\nContent-Type: text/html; charset=utf-8",
                 "<html><head><title>ttl</title><style>.css{}</style></head><body>"
                 "Caf&eacute; <b>menu</b><script>js()</script> &amp; more</body></html>")
    assert extract(data).body == "cafe menu more"


@pytest.mark.parametrize("data", [
    b"",
    b"\xff\xfe\x00garbage\r\n\r\n\xff",
    b"Subject: =?bogus?q?x?=\r\nFrom: <<<@@@>>>, \"unterminated\r\n\r\nbody text\r\n",
    b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nweird charset\r\n",
    b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!notbase64\r\n",
    b"Content-Type: multipart/mixed; boundary=\"never\"\r\n\r\nno parts at all\r\n",
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + b"\xc3" * 100 + b" tail\r\n",
])
def test_extract_never_raises_on_malformed_mail(data: bytes) -> None:
    doc = extract(data)
    for value in (doc.sender, doc.recipients, doc.subject, doc.body):
        assert all(word.isalnum() for word in value.split())


def test_extract_keeps_the_words_of_a_weird_charset() -> None:
    doc = extract(b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\nweird cs\r\n")
    assert doc.body == "weird cs"


def test_extract_is_bounded() -> None:
    data = b"Subject: big\r\n\r\n" + b"lorem ipsum " * 200_000
    assert len(extract(data).body) <= MAX_BODY
