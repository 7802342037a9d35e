"""SEARCH evaluation (RFC 3501 §6.4.4) over in-memory candidates and messages."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import time

import pytest

from mailward.imap.grammar.core import SequenceSet
from mailward.imap.parse import Search, SearchKey, parse_command
from mailward.imap.search_eval import BadCharset, Candidate, SearchError, search
from mailward.store.interface import MessageInfo

UTC = dt.UTC
EST = dt.timezone(dt.timedelta(hours=-5))
NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def lit(text: str) -> bytes:
    data = text.encode()
    return b"{%d}\r\n" % len(data) + data


def cand(
    seq: int,
    uid: int,
    *flags: str,
    size: int = 100,
    date: dt.datetime = NOW,
    recent: bool = False,
) -> Candidate:
    return Candidate(seq, MessageInfo(uid, size, frozenset(flags), date), recent)


class Loader:
    """An async ``load`` over a dict that records every call."""

    def __init__(self, messages: dict[int, bytes]) -> None:
        self.messages = messages
        self.calls: list[int] = []

    async def __call__(self, uid: int) -> bytes:
        self.calls.append(uid)
        return self.messages[uid]


def parse(criteria: bytes) -> Search:
    cmd = parse_command(b"a SEARCH " + criteria)
    assert isinstance(cmd, Search)
    return cmd


async def run(
    criteria: bytes | str, cands: list[Candidate], loader: Loader | None = None
) -> list[int]:
    cmd = parse(criteria.encode() if isinstance(criteria, str) else criteria)
    found = await search(cmd.criteria, cands, charset=cmd.charset, load=loader or Loader(MESSAGES))
    return [c.info.uid for c in found]


# ----------------------------------------------------------------------- messages

PLAIN = crlf(
    'From: "Alice Example" <alice@example.com>\n'
    "To: bob@example.org\n"
    "Subject: Hello\n"
    " folded world\n"
    "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
    "X-Spam: no\n"
    "\n"
    "The quick brown fox\n"
)

ENCODED = crlf(
    "From: =?UTF-8?B?SsO8cmdlbg==?= <juergen@example.de>\n"
    "To: =?ISO-8859-1?Q?Andr=E9?= <andre@example.fr>, carol@example.net\n"
    "Cc: Dave <dave@example.com>\n"
    "Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?= =?UTF-8?B?IOKCrDM=?=\n"
    "Date: Tue, 1 Mar 2022 23:30:00 -0500\n"
    "\n"
    "plain body\n"
)

_B64_TEXT = base64.encodebytes("Grüße aus Köln\n".encode()).decode()
_B64_BLOB = base64.encodebytes(b"secretword in an attachment").decode()
MULTIPART = crlf(
    "From: multi@example.com\n"
    "Subject: parts\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="XYZ"\n'
    "\n"
    "preamble is not searched\n"
    "--XYZ\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    f"{_B64_TEXT}"
    "--XYZ\n"
    'Content-Type: multipart/alternative; boundary="inner"\n'
    "\n"
    "--inner\n"
    "Content-Type: text/html; charset=iso-8859-1\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "<p>soft line=\n"
    "break and d=E9j=E0 vu</p>\n"
    "--inner--\n"
    "--XYZ\n"
    "Content-Type: application/octet-stream\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    f"{_B64_BLOB}"
    "--XYZ\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "Subject: inner message\n"
    "\n"
    "nested needle\n"
    "--XYZ--\n"
)

BROKEN = (
    b"this line has no colon\r\n"
    b"Subject: =?bogus-charset?Q?odd=ZZ?= and =?UTF-8?B?!!!?=\r\n"
    b"Content-Type: text/plain; charset=no-such-charset\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"X-Raw: caf\xe9\r\n"
    b"\r\n"
    b"bm90IHBhZGRlZA\r\n"
)

MESSAGES = {1: PLAIN, 2: ENCODED, 3: MULTIPART, 4: BROKEN}


def folder() -> list[Candidate]:
    return [
        cand(
            1, 1, "\\Seen", "\\Answered", size=len(PLAIN), date=dt.datetime(2024, 1, 1, tzinfo=UTC)
        ),
        cand(2, 2, "\\Flagged", "$Junk", size=len(ENCODED), recent=True),
        cand(3, 3, "\\Seen", "\\Deleted", size=len(MULTIPART), recent=True),
        cand(4, 4, "\\Draft", size=len(BROKEN), date=dt.datetime(2023, 5, 5, 23, 30, tzinfo=EST)),
    ]


# ----------------------------------------------------------------------- flags


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("ALL", [1, 2, 3, 4]),
        ("ANSWERED", [1]),
        ("UNANSWERED", [2, 3, 4]),
        ("DELETED", [3]),
        ("UNDELETED", [1, 2, 4]),
        ("DRAFT", [4]),
        ("UNDRAFT", [1, 2, 3]),
        ("FLAGGED", [2]),
        ("UNFLAGGED", [1, 3, 4]),
        ("SEEN", [1, 3]),
        ("UNSEEN", [2, 4]),
        ("RECENT", [2, 3]),
        ("OLD", [1, 4]),
        ("NEW", [2]),
        ("KEYWORD $junk", [2]),
        ("KEYWORD $JUNK", [2]),
        ("UNKEYWORD $Junk", [1, 3, 4]),
        ("KEYWORD NonJunk", []),
        ("SEEN UNDELETED", [1]),
        ("OR DRAFT FLAGGED", [2, 4]),
        ("NOT SEEN", [2, 4]),
        ("NOT NOT SEEN", [1, 3]),
        ("OR (SEEN DELETED) NOT OR RECENT DRAFT", [1, 3]),
        ("(OR SEEN FLAGGED) (NOT DELETED)", [1, 2]),
    ],
)
async def test_flag_keys(criteria: str, expected: list[int]) -> None:
    loader = Loader(MESSAGES)
    assert await run(criteria, folder(), loader) == expected
    assert loader.calls == []


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("1", [1]),
        ("*", [4]),
        ("2:*", [2, 3, 4]),
        ("*:3", [3, 4]),
        ("1,3", [1, 3]),
        ("5:9", []),
        ("UID 2", [2]),
        ("UID 3:*", [3, 4]),
        ("UID *", [4]),
        ("UID 900:*", [4]),
        ("UID 900", []),
        ("UID 1,4", [1, 4]),
        ("NOT UID 1:2", [3, 4]),
        ("OR 1 UID 3", [1, 3]),
    ],
)
async def test_sequence_and_uid_sets(criteria: str, expected: list[int]) -> None:
    assert await run(criteria, folder()) == expected


async def test_uid_sets_use_uids_not_positions() -> None:
    cands = [cand(1, 10), cand(2, 20), cand(3, 500)]
    assert await run("UID 900:*", cands) == [500]
    assert await run("UID 15:25", cands) == [20]
    assert await run("*", cands) == [500]
    assert await run("UID 1:9", cands) == []


async def test_empty_folder() -> None:
    assert await run("UID 1:*", []) == []
    assert await run("BODY x", []) == []


async def test_size_boundaries() -> None:
    cands = [cand(1, 1, size=99), cand(2, 2, size=100), cand(3, 3, size=101)]
    assert await run("LARGER 100", cands) == [3]
    assert await run("LARGER 99", cands) == [2, 3]
    assert await run("SMALLER 100", cands) == [1]
    assert await run("SMALLER 101", cands) == [1, 2]
    assert await run("LARGER 99 SMALLER 101", cands) == [2]
    assert await run("LARGER 0", cands) == [1, 2, 3]
    assert await run("SMALLER 0", cands) == []


# ----------------------------------------------------------------------- dates


async def test_internal_date_keys_use_utc_day() -> None:
    # 2023-05-05 23:30 -05:00 is 2023-05-06 04:30 UTC.
    cands = folder()
    assert await run("ON 6-May-2023", cands) == [4]
    assert await run("ON 5-May-2023", cands) == []
    assert await run("BEFORE 6-May-2023", cands) == []
    assert await run("BEFORE 7-May-2023", cands) == [4]
    assert await run("SINCE 6-May-2023", cands) == [1, 2, 3, 4]
    assert await run("SINCE 7-May-2023", cands) == [1, 2, 3]
    assert await run("BEFORE 1-Jan-2024", cands) == [4]
    assert await run("ON 1-Jan-2024", cands) == [1]
    assert await run("SINCE 2-Jan-2024", cands) == [2, 3]


async def test_naive_internal_date_taken_as_utc() -> None:
    cands = [cand(1, 1, date=dt.datetime(2020, 2, 29, 23, 59))]
    assert await run("ON 29-Feb-2020", cands) == [1]


async def test_sent_dates_use_header_date_in_its_own_zone() -> None:
    # ENCODED: Tue, 1 Mar 2022 23:30:00 -0500 (already 2 Mar in UTC).
    cands = folder()[1:2]
    assert await run("SENTON 1-Mar-2022", cands) == [2]
    assert await run("SENTON 2-Mar-2022", cands) == []
    assert await run("SENTBEFORE 2-Mar-2022", cands) == [2]
    assert await run("SENTBEFORE 1-Mar-2022", cands) == []
    assert await run("SENTSINCE 1-Mar-2022", cands) == [2]
    assert await run("SENTSINCE 2-Mar-2022", cands) == []
    assert await run("SENTON 7-Feb-1994", folder()[:1]) == [1]


async def test_missing_or_bad_sent_date_counts_as_1970() -> None:
    # As Dovecot: mail without a usable Date: header was "sent" before any date.
    # BROKEN has no Date: header; its internal date is 2023-05-06 in UTC.
    cands = folder()[3:]
    assert await run("SENTON 6-May-2023", cands) == []
    assert await run("SENTON 1-Jan-1970", cands) == [4]
    assert await run("SENTBEFORE 2-Jan-1970", cands) == [4]
    messages = {
        1: crlf("Date: not a date at all\n\nx\n"),
        2: crlf("Date: 31 Feb 2020 10:00 +0000\n\n"),
    }
    cands = [cand(1, 1, date=NOW), cand(2, 2, date=NOW)]
    assert await run("SENTON 10-Mar-2024", cands, Loader(messages)) == []
    assert await run("SENTON 1-Jan-1970", cands, Loader(messages)) == [1, 2]


# ----------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (b"FROM alice", [1]),
        (b'FROM "alice example"', [1]),
        (b"FROM ALICE@EXAMPLE.COM", [1]),
        (b'FROM "Alice Example <alice@"', [1]),
        (b"FROM example", [1, 2, 3]),
        (b"FROM " + lit("jürgen"), [2]),
        (b"FROM " + lit("JÜRGEN <juergen@example.de>"), [2]),
        (b"TO " + lit("andré"), [2]),
        (b"TO carol", [2]),
        (b"TO bob@example.org", [1]),
        (b"CC dave", [2]),
        (b"BCC dave", []),
        (b'SUBJECT "hello folded world"', [1]),
        (b'SUBJECT "hello\tfolded"', []),
        (b"SUBJECT " + lit("café crème €3"), [2]),
        (b"SUBJECT " + lit("CAFÉ"), [2]),
        (b"SUBJECT inner", []),
        (b'SUBJECT ""', [1, 2, 3, 4]),
        (b'HEADER X-Spam ""', [1]),
        (b'HEADER x-spam "NO"', [1]),
        (b'HEADER X-Spam "yes"', []),
        (b'HEADER Content-Type ""', [3, 4]),
        (b'HEADER X-Raw "caf"', [4]),
        (b'NOT HEADER X-Spam ""', [2, 3, 4]),
        (b"HEADER Subject odd", [4]),
    ],
)
async def test_header_keys(criteria: bytes, expected: list[int]) -> None:
    assert await run(b"CHARSET UTF-8 " + criteria, folder()) == expected


async def test_adjacent_encoded_words_join_multibyte_characters() -> None:
    # "Grüße" split inside the two-byte "ü" across two encoded words.
    data = "Grüße".encode()
    w1 = base64.b64encode(data[:3]).decode()
    w2 = base64.b64encode(data[3:]).decode()
    msg = crlf(f"Subject: =?utf-8?b?{w1}?=\n =?utf-8?b?{w2}?= x\n\nbody\n")
    found = await run(b"SUBJECT " + lit("grüße x"), [cand(1, 1)], Loader({1: msg}))
    assert found == [1]


async def test_text_matches_header_or_body() -> None:
    assert await run("TEXT hello", folder()) == [1]
    assert await run("TEXT quick", folder()) == [1]
    assert await run("TEXT alice@example.com", folder()) == [1]
    assert await run("TEXT nowhere-to-be-found", folder()) == []


# ----------------------------------------------------------------------- body


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        (b"BODY quick", [1]),
        (b'BODY "BROWN FOX"', [1]),
        (b"BODY " + lit("grüße aus köln"), [3]),  # base64 UTF-8 part
        (b"BODY " + lit("déjà vu"), [3]),  # quoted-printable Latin-1 in nested multipart
        (b'BODY "soft linebreak"', [3]),  # soft line break removed
        (b"BODY secretword", []),  # non-text part is not searched
        (b"BODY preamble", []),
        (b'BODY "nested needle"', [3]),  # text inside message/rfc822
        (b"BODY Subject", []),  # BODY does not look at the header
        (b'BODY "not padded"', [4]),  # broken base64, unknown charset
        (b'BODY ""', [1, 2, 3, 4]),
    ],
)
async def test_body_keys(criteria: bytes, expected: list[int]) -> None:
    assert await run(b"CHARSET UTF-8 " + criteria, folder()) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"no header at all",
        b"Content-Type: multipart/mixed\r\n\r\n--x\r\nbody\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nunterminated",
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=4",
        b'Subject: =?utf-8?q?=FF=FE?=\r\nFrom: <<<@@@>>>, "unclosed\r\n\r\n\xff\xfe',
        b"Content-Type: text/plain; charset=hex\r\n\r\nabc",
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n" * 200,
    ],
)
async def test_malformed_messages_never_raise(raw: bytes) -> None:
    found = await run(
        "OR OR TEXT qqq FROM qqq OR BODY qqq SENTON 1-Jan-2000", [cand(1, 1)], Loader({1: raw})
    )
    assert found == []


async def test_body_without_mime_uses_raw_text() -> None:
    msg = b"Subject: x\n\nLatin-1 caf\xe9 text\n"
    assert await run(b"CHARSET UTF-8 BODY " + lit("café"), [cand(1, 1)], Loader({1: msg})) == [1]


# ----------------------------------------------------------------------- loading


async def test_load_only_when_needed_and_once() -> None:
    loader = Loader(MESSAGES)
    assert await run("UID 3 BODY nested", folder(), loader) == [3]
    assert loader.calls == [3]

    loader = Loader(MESSAGES)
    assert await run("BODY quick UID 1", folder(), loader) == [1]
    assert loader.calls == [1]

    loader = Loader(MESSAGES)
    assert await run("BODY e SUBJECT e TEXT e FROM e SENTSINCE 1-Jan-1990", folder(), loader)
    assert sorted(loader.calls) == [1, 2, 3, 4]

    loader = Loader(MESSAGES)
    assert await run("OR SEEN BODY xyz", folder(), loader) == [1, 3]
    assert loader.calls == [2, 4]

    loader = Loader(MESSAGES)
    assert await run("NOT DELETED NOT BODY quick", folder(), loader) == [2, 4]
    assert loader.calls == [1, 2, 4]

    loader = Loader(MESSAGES)
    assert await run("OR ANSWERED (DRAFT SUBJECT odd)", folder(), loader) == [1, 4]
    assert loader.calls == [4]


async def test_flag_only_search_on_large_folder_is_fast() -> None:
    cands = [
        cand(i, i * 2, *(("\\Seen",) if i % 3 else ()), size=i, recent=i % 7 == 0)
        for i in range(1, 10_001)
    ]
    loader = Loader({})
    start = time.perf_counter()
    found = await run("UNSEEN NOT DELETED OR LARGER 5000 UID 1:100,9000:*", cands, loader)
    elapsed = time.perf_counter() - start
    assert loader.calls == []
    assert found == [
        c.info.uid
        for c in cands
        if c.seq % 3 == 0 and (c.info.size > 5000 or c.info.uid <= 100 or c.info.uid >= 9000)
    ]
    assert elapsed < 2.0


# ----------------------------------------------------------------------- errors


@pytest.mark.parametrize("charset", [None, "UTF-8", "utf-8", "US-ASCII", "us-ascii"])
async def test_accepted_charsets(charset: str | None) -> None:
    criteria = SearchKey("AND", children=(SearchKey("SUBJECT", value=b"hello"),))
    found = await search(criteria, folder(), charset=charset, load=Loader(MESSAGES))
    assert [c.info.uid for c in found] == [1]


@pytest.mark.parametrize("charset", ["ISO-8859-1", "UTF-16", "x"])
async def test_bad_charset_raises_before_loading(charset: str) -> None:
    loader = Loader(MESSAGES)
    criteria = SearchKey("AND", children=(SearchKey("BODY", value=b"x"),))
    with pytest.raises(BadCharset) as info:
        await search(criteria, folder(), charset=charset, load=loader)
    assert isinstance(info.value, SearchError)
    assert charset in str(info.value)
    assert info.value.supported == ("UTF-8", "US-ASCII")
    assert loader.calls == []


async def test_invalid_utf8_search_string() -> None:
    loader = Loader(MESSAGES)
    criteria = SearchKey("AND", children=(SearchKey("ALL"), SearchKey("BODY", value=b"\xff\xfe")))
    with pytest.raises(SearchError, match="charset"):
        await search(criteria, folder(), charset="UTF-8", load=loader)
    assert loader.calls == []


async def test_modseq_finds_messages_changed_at_or_after_it() -> None:
    """RFC 7162 §3.1.5: one mod-sequence per message, whatever the entry name."""
    candidates = [
        Candidate(c.seq, dataclasses.replace(c.info, modseq=modseq), c.recent)
        for c, modseq in zip(folder(), (3, 7, 5, 9), strict=True)
    ]
    loader = Loader(MESSAGES)
    for criteria, expected in (
        (b"MODSEQ 5", [2, 3, 4]),
        (b"MODSEQ 8", [4]),
        (b"MODSEQ 10", []),
        (b'MODSEQ "/flags/\\\\seen" all 7', [2, 4]),
        (b"SEEN MODSEQ 5", [3]),
        (b"NOT MODSEQ 6", [1, 3]),
    ):
        found = await search(parse(criteria).criteria, candidates, charset=None, load=loader)
        assert [c.seq for c in found] == expected, criteria
    assert loader.calls == []  # answered from metadata alone


async def test_unknown_key_is_a_search_error() -> None:
    criteria = SearchKey("AND", children=(SearchKey("FUZZY"),))
    with pytest.raises(SearchError, match="FUZZY"):
        await search(criteria, folder(), charset=None, load=Loader(MESSAGES))


async def test_tree_built_by_hand() -> None:
    tree = SearchKey(
        "AND",
        children=(
            SearchKey("SEQ", value=SequenceSet(((2, None),))),
            SearchKey("OR", children=(SearchKey("FLAGGED"), SearchKey("HEADER", "", "subject"))),
        ),
    )
    found = await search(tree, folder(), charset=None, load=Loader(MESSAGES))
    assert [c.seq for c in found] == [2, 3, 4]
