"""Unit and property tests for the pure IMAP command parser (RFC 3501 §9)."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailward.imap.grammar.core import MAX_DEPTH, MAX_ITEMS, MONTHS
from mailward.imap.parse import (
    Append,
    Authenticate,
    Command,
    CopyMove,
    Enable,
    Expunge,
    Fetch,
    FetchAtt,
    GetQuota,
    GetQuotaRoot,
    Id,
    ListCommand,
    Login,
    MailboxCommand,
    ParseError,
    Rename,
    Search,
    SearchKey,
    Section,
    SequenceSet,
    Status,
    Store,
    literal_needed,
    parse_command,
)


def bad(data: bytes, tag: str | None = "a1") -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_command(data)
    assert info.value.tag == tag
    return info.value


def keys(cmd: Command) -> tuple[SearchKey, ...]:
    assert isinstance(cmd, Search)
    assert cmd.criteria.op == "AND"
    return cmd.criteria.children


# --------------------------------------------------------------------------- literal_needed
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"a LOGIN {5}\r\n", (5, False)),
        (b"a LOGIN {5+}\r\n", (5, True)),
        (b"a LOGIN bob {12}", (12, False)),
        (b"a APPEND INBOX (\\Seen) {310}\n", (310, False)),
        (b"a LOGIN {0}\r\n", (0, False)),
        (b"a LOGIN bob pw\r\n", None),
        (b'a LOGIN "{5}\r\n', None),  # inside an unterminated quoted string
        (b'a LOGIN "x\\" {5}\r\n', None),  # escaped quote keeps the string open
        (b'a LOGIN "x" {5}\r\n', (5, False)),
        (b"a LOGIN {5}x\r\n", None),
        (b"a LOGIN {12345678901}\r\n", None),
        (b"", None),
        (b'a LOGIN {1}\r\n" {5}\r\n', (5, False)),  # quote inside a collected literal
        (b"a LOGIN {6}\r\n {5}\r\n", None),  # announcement inside a collected literal
        (b"a LOGIN {1}\r\nx {2+}", (2, True)),
    ],
)
def test_literal_needed(line: bytes, expected: tuple[int, bool] | None) -> None:
    assert literal_needed(line) == expected


def test_session_style_literal_collection() -> None:
    data = b"a1 LOGIN {3}\r\n"
    assert literal_needed(data) == (3, False)
    data += b"bob" + b" {4+}\r\n"  # literal octets + the next line
    assert literal_needed(data) == (4, True)
    with pytest.raises(ParseError):  # not valid UTF-8
        parse_command(data + b"p w\xc3\r\n")
    cmd = parse_command(data + "pé".encode() + b"x\r\n")
    assert cmd == Login(tag="a1", name="LOGIN", user="bob", password="péx")


# --------------------------------------------------------------------------- simple commands
@pytest.mark.parametrize(
    "name",
    ["CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "IDLE", "NAMESPACE", "CHECK", "CLOSE", "UNSELECT"],
)
def test_no_argument_commands(name: str) -> None:
    assert parse_command(f"t {name}\r\n".encode()) == Command(tag="t", name=name)
    assert parse_command(f"t {name.lower()}".encode()).name == name
    bad(f"a1 {name} extra\r\n".encode())


def test_final_crlf_is_optional_and_nothing_may_follow() -> None:
    assert parse_command(b"a NOOP").name == "NOOP"
    assert parse_command(b"a NOOP\n").name == "NOOP"
    bad(b"a1 NOOP\r\n\r\n")
    bad(b"a1 NOOP ")


def test_tag_rules() -> None:
    assert parse_command(b"A.0001 NOOP").tag == "A.0001"
    bad(b"+x NOOP", tag=None)
    bad(b" NOOP", tag=None)
    bad(b"", tag=None)
    bad(b"a1", tag="a1")
    bad(b"a1 ", tag="a1")
    e = bad(b"a1 FROB\r\n")
    assert "unknown command" in e.message
    assert str(e).startswith("a1 BAD ")


# --------------------------------------------------------------------------- strings
def test_login_atoms_quoted_literals() -> None:
    assert parse_command(b"a LOGIN bob secret") == Login(
        tag="a", name="LOGIN", user="bob", password="secret"
    )
    cmd = parse_command(b'a login "b o\\"b" "a\\\\b"\r\n')
    assert isinstance(cmd, Login)
    assert (cmd.user, cmd.password) == ('b o"b', "a\\b")
    cmd = parse_command(b'a LOGIN {3}\r\nbob {5+}\r\n"(){}\r\n')
    assert isinstance(cmd, Login)
    assert (cmd.user, cmd.password) == ("bob", '"(){}')
    cmd = parse_command(b'a LOGIN "" pw]')
    assert isinstance(cmd, Login)
    assert (cmd.user, cmd.password) == ("", "pw]")


def test_quoted_refuses_8bit_but_literal_allows_it() -> None:
    e = bad('a1 LOGIN "jösé" pw'.encode())
    assert "8-bit" in e.message
    pw = "jösé".encode()
    cmd = parse_command(b"a1 LOGIN {%d}\r\n%s pw" % (len(pw), pw))
    assert isinstance(cmd, Login)
    assert cmd.user == "jösé"


@pytest.mark.parametrize(
    "data",
    [
        b'a1 LOGIN "abc pw',  # unterminated
        b'a1 LOGIN "a\\nb" pw',  # invalid escape
        b'a1 LOGIN "a\rb" pw',
        b"a1 LOGIN {10}\r\nabc",  # truncated literal
        b"a1 LOGIN {3} abc pw",  # no CRLF after size
        b"a1 LOGIN {99999999999}\r\n",  # size overflow
        b"a1 LOGIN bob",
        b"a1 LOGIN bob  pw",
        b"a1 LOGIN (bob) pw",
    ],
)
def test_string_errors(data: bytes) -> None:
    bad(data)


def test_authenticate() -> None:
    assert parse_command(b"a authenticate plain") == Authenticate(
        tag="a", name="AUTHENTICATE", mechanism="PLAIN"
    )
    cmd = parse_command(b"a AUTHENTICATE PLAIN AGJvYgBwdw==\r\n")
    assert isinstance(cmd, Authenticate)
    assert cmd.initial_response == b"AGJvYgBwdw=="
    cmd = parse_command(b"a AUTHENTICATE EXTERNAL =")
    assert isinstance(cmd, Authenticate)
    assert cmd.initial_response == b"="
    bad(b"a1 AUTHENTICATE PLAIN ***")
    bad(b"a1 AUTHENTICATE")


# --------------------------------------------------------------------------- mailboxes
@pytest.mark.parametrize(
    "name", ["SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE"]
)
def test_mailbox_commands(name: str) -> None:
    assert parse_command(f"a {name} inbox".encode()) == MailboxCommand(
        tag="a", name=name, mailbox="INBOX"
    )
    cmd = parse_command(f'a {name.lower()} "Inbox"'.encode())
    assert isinstance(cmd, MailboxCommand)
    assert cmd.mailbox == "INBOX"
    cmd = parse_command(f"a {name} Inbox/Sub".encode())
    assert isinstance(cmd, MailboxCommand)
    assert cmd.mailbox == "Inbox/Sub"  # only INBOX itself is case-insensitive
    cmd = parse_command(f"a {name} &AOQ-bc".encode())
    assert isinstance(cmd, MailboxCommand)
    assert cmd.mailbox == "&AOQ-bc"  # modified UTF-7 left encoded
    bad(f"a1 {name}".encode())
    bad(f"a1 {name} a b".encode())


def test_mailbox_8bit_literal_must_be_utf8() -> None:
    cmd = parse_command(b"a SELECT {4}\r\nb\xc3\xa4r")
    assert isinstance(cmd, MailboxCommand)
    assert cmd.mailbox == "bär"
    bad(b"a1 SELECT {3}\r\nb\xe4r")


def test_rename_list_lsub() -> None:
    assert parse_command(b'a RENAME "Old Box" New') == Rename(
        tag="a", name="RENAME", old="Old Box", new="New"
    )
    assert parse_command(b'a LIST "" *') == ListCommand(
        tag="a", name="LIST", reference="", pattern="*"
    )
    cmd = parse_command(b"a lsub Archive/ %/Sub]*")
    assert cmd == ListCommand(tag="a", name="LSUB", reference="Archive/", pattern="%/Sub]*")
    cmd = parse_command(b'a LIST "" "a b%"')
    assert isinstance(cmd, ListCommand)
    assert cmd.pattern == "a b%"
    bad(b'a1 LIST ""')
    bad(b'a1 LIST "" (x)')


def test_status() -> None:
    cmd = parse_command(b"a STATUS inbox (messages UIDNEXT Unseen)")
    assert cmd == Status(
        tag="a", name="STATUS", mailbox="INBOX", items=("MESSAGES", "UIDNEXT", "UNSEEN")
    )
    bad(b"a1 STATUS INBOX ()")
    bad(b"a1 STATUS INBOX (FOO)")
    bad(b"a1 STATUS INBOX MESSAGES")


def test_append() -> None:
    msg = b"From: a\r\n\r\n\xff\x00body\r\n"
    cmd = parse_command(b"a APPEND Sent {%d}\r\n%s\r\n" % (len(msg), msg))
    assert cmd == Append(
        tag="a", name="APPEND", mailbox="Sent", flags=(), date_time=None, message=msg
    )
    cmd = parse_command(b'a APPEND INBOX (\\Seen $Junk) " 7-Feb-1994 21:52:25 -0800" {3+}\r\nabc')
    assert isinstance(cmd, Append)
    assert cmd.flags == ("\\Seen", "$Junk")
    assert cmd.date_time == dt.datetime(
        1994, 2, 7, 21, 52, 25, tzinfo=dt.timezone(-dt.timedelta(hours=8))
    )
    cmd = parse_command(b'a APPEND INBOX "17-Feb-1994 21:52:25 +0000" {0}\r\n')
    assert isinstance(cmd, Append)
    assert cmd.message == b""
    assert cmd.flags == ()
    bad(b'a1 APPEND INBOX "abc"')  # message must be a literal
    bad(b'a1 APPEND INBOX "31-Feb-1994 21:52:25 +0000" {1}\r\nx')
    bad(b'a1 APPEND INBOX "1-Feb-1994 21:52:25 +0000" {1}\r\nx')  # day not fixed width
    bad(b'a1 APPEND INBOX "01-Foo-1994 21:52:25 +0000" {1}\r\nx')
    bad(b'a1 APPEND INBOX "01-Feb-1994 25:52:25 +0000" {1}\r\nx')
    bad(b'a1 APPEND INBOX "01-Feb-1994 21:52:25 +9900" {1}\r\nx')
    bad(b"a1 APPEND INBOX (\\Seen {1}\r\nx")


def test_id_enable_quota() -> None:
    assert parse_command(b"a ID NIL") == Id(tag="a", name="ID", params=None)
    cmd = parse_command(b'a ID ("name" "Thunderbird" "version" NIL)')
    assert cmd == Id(tag="a", name="ID", params=(("name", "Thunderbird"), ("version", None)))
    bad(b'a1 ID ("name")')
    bad(b"a1 ID ()")
    bad(b"a1 ID (" + b" ".join([b'"k" "v"'] * 31) + b")")
    assert parse_command(b"a ENABLE condstore UTF8=ACCEPT") == Enable(
        tag="a", name="ENABLE", capabilities=("CONDSTORE", "UTF8=ACCEPT")
    )
    bad(b"a1 ENABLE")
    assert parse_command(b'a GETQUOTA ""') == GetQuota(tag="a", name="GETQUOTA", root="")
    assert parse_command(b"a GETQUOTAROOT inbox") == GetQuotaRoot(
        tag="a", name="GETQUOTAROOT", mailbox="INBOX"
    )


# --------------------------------------------------------------------------- sequence sets
def seq(text: str) -> SequenceSet:
    cmd = parse_command(f"a COPY {text} X".encode())
    assert isinstance(cmd, CopyMove)
    return cmd.sequence_set


def test_sequence_set_parsing_and_str() -> None:
    assert seq("1").ranges == ((1, 1),)
    assert seq("*").ranges == ((None, None),)
    assert seq("2:4,7,9:*,5:3").ranges == ((2, 4), (7, 7), (9, None), (5, 3))
    assert str(seq("2:4,7,9:*,*")) == "2:4,7,9:*,*"
    for text in ("0", "1:0", "1,", ",1", "1::2", "a", "1:", "4294967296"):
        bad(f"a1 COPY {text} X".encode())


def test_sequence_set_resolve() -> None:
    s = seq("5:3,1,9:*,2")
    assert s.resolve(10) == [(1, 5), (9, 10)]
    assert s.numbers(10) == [1, 2, 3, 4, 5, 9, 10]
    assert s.resolve(4) == [(1, 4)]  # 9:* with max 4 -> 4:9 clipped -> (4, 4)
    assert s.resolve(0) == []
    assert seq("900:*").resolve(500) == [(500, 500)]
    assert seq("600").resolve(500) == []
    assert s.contains(10, 10)
    assert not s.contains(7, 10)
    assert s.highest_explicit() == 9
    assert seq("*").highest_explicit() == 0


def test_sequence_set_too_long() -> None:
    bad(b"a1 COPY " + b",".join([b"1"] * (MAX_ITEMS + 1)) + b" X")


# --------------------------------------------------------------------------- copy/store/expunge
def test_copy_move_uid() -> None:
    assert parse_command(b"a COPY 1:3 Trash") == CopyMove(
        tag="a", name="COPY", sequence_set=SequenceSet(((1, 3),)), mailbox="Trash"
    )
    cmd = parse_command(b"a uid move 4,5 inbox")
    assert cmd == CopyMove(
        tag="a",
        name="MOVE",
        uid=True,
        sequence_set=SequenceSet(((4, 4), (5, 5))),
        mailbox="INBOX",
    )
    bad(b"a1 UID LOGIN a b")
    bad(b"a1 UID")


def test_store() -> None:
    cmd = parse_command(b"a STORE 2:4 +FLAGS (\\Deleted \\Seen)")
    assert cmd == Store(
        tag="a",
        name="STORE",
        sequence_set=SequenceSet(((2, 4),)),
        mode="+",
        silent=False,
        flags=("\\Deleted", "\\Seen"),
    )
    cmd = parse_command(b"a UID STORE 1 -flags.silent \\Flagged $Label1")
    assert isinstance(cmd, Store)
    assert (cmd.uid, cmd.mode, cmd.silent, cmd.flags) == (True, "-", True, ("\\Flagged", "$Label1"))
    cmd = parse_command(b"a STORE 1 FLAGS ()")
    assert isinstance(cmd, Store)
    assert (cmd.mode, cmd.flags) == ("", ())
    bad(b"a1 STORE 1 LABELS (x)")
    bad(b"a1 STORE 1 +FLAGS")
    bad(b"a1 STORE 1 +FLAGS (\\Seen")
    bad(b"a1 STORE 1 *FLAGS (\\Seen)")


def test_expunge() -> None:
    assert parse_command(b"a EXPUNGE") == Expunge(tag="a", name="EXPUNGE")
    assert parse_command(b"a UID EXPUNGE 3:5,9") == Expunge(
        tag="a", name="EXPUNGE", uid=True, sequence_set=SequenceSet(((3, 5), (9, 9)))
    )
    bad(b"a1 EXPUNGE 1")
    bad(b"a1 UID EXPUNGE")


# --------------------------------------------------------------------------- fetch
def fetch(items: str) -> tuple[FetchAtt, ...]:
    cmd = parse_command(f"a FETCH 1 {items}".encode())
    assert isinstance(cmd, Fetch)
    return cmd.items


def test_fetch_macros() -> None:
    fast = (FetchAtt("FLAGS"), FetchAtt("INTERNALDATE"), FetchAtt("RFC822.SIZE"))
    assert fetch("fast") == fast
    assert fetch("ALL") == (*fast, FetchAtt("ENVELOPE"))
    assert fetch("Full") == (*fast, FetchAtt("ENVELOPE"), FetchAtt("BODY"))
    bad(b"a1 FETCH 1 (ALL)")  # macros only stand alone


@pytest.mark.parametrize(
    "name",
    [
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
    ],
)
def test_fetch_simple_atts(name: str) -> None:
    assert fetch(name.lower()) == (FetchAtt(name),)
    assert fetch(f"({name} UID)") == (FetchAtt(name), FetchAtt("UID"))


def test_fetch_sections() -> None:
    assert fetch("BODY[]") == (FetchAtt("BODY", section=Section()),)
    assert fetch("body.peek[]<0.1024>") == (
        FetchAtt("BODY", section=Section(), partial=(0, 1024), peek=True),
    )
    assert fetch('BODY[1.2.HEADER.FIELDS (From "To")]') == (
        FetchAtt("BODY", section=Section((1, 2), "HEADER.FIELDS", ("From", "To"))),
    )
    assert fetch("BODY.PEEK[header.fields.not (X-Spam)]") == (
        FetchAtt("BODY", section=Section((), "HEADER.FIELDS.NOT", ("X-Spam",)), peek=True),
    )
    assert fetch("(BODY[TEXT] BODY[3] BODY[3.MIME] BODY[4.1.TEXT] BODY[HEADER])") == (
        FetchAtt("BODY", section=Section((), "TEXT")),
        FetchAtt("BODY", section=Section((3,))),
        FetchAtt("BODY", section=Section((3,), "MIME")),
        FetchAtt("BODY", section=Section((4, 1), "TEXT")),
        FetchAtt("BODY", section=Section((), "HEADER")),
    )
    assert str(fetch("BODY.PEEK[1.HEADER.FIELDS (A B)]<5.10>")[0]) == (
        "BODY.PEEK[1.HEADER.FIELDS (A B)]<5.10>"
    )


@pytest.mark.parametrize(
    "items",
    [
        "BODY[MIME]",
        "BODY[1.]",
        "BODY[0]",
        "BODY[FOO]",
        "BODY[HEADER.FIELDS]",
        "BODY[HEADER.FIELDS ()]",
        "BODY[1",
        "BODY[]<0>",
        "BODY[]<0.0>",
        "BODY.PEEK",
        "FLAGS[]",
        "()",
        "(FLAGS",
        "(FLAGS  UID)",
        "XYZZY",
        "",
    ],
)
def test_fetch_errors(items: str) -> None:
    bad(f"a1 FETCH 1 {items}".encode())


def test_uid_fetch() -> None:
    cmd = parse_command(b"a UID FETCH 1:* (FLAGS)")
    assert isinstance(cmd, Fetch)
    assert cmd.uid
    assert cmd.sequence_set == SequenceSet(((1, None),))


# --------------------------------------------------------------------------- search
def test_search_simple_keys() -> None:
    flags = [
        "ALL",
        "ANSWERED",
        "DELETED",
        "DRAFT",
        "FLAGGED",
        "NEW",
        "OLD",
        "RECENT",
        "SEEN",
        "UNANSWERED",
        "UNDELETED",
        "UNDRAFT",
        "UNFLAGGED",
        "UNSEEN",
    ]
    cmd = parse_command(("a SEARCH " + " ".join(f.lower() for f in flags)).encode())
    assert keys(cmd) == tuple(SearchKey(f) for f in flags)


def test_search_argument_keys() -> None:
    cmd = parse_command(
        b'a SEARCH FROM alice subject "a b" BEFORE 1-Feb-2020 on "12-dec-2021" '
        b"LARGER 100 smaller 5 KEYWORD $Junk UNKEYWORD foo HEADER X-Spam yes "
        b"UID 1:*,4 2,4:6 SENTSINCE 29-Feb-2024 TEXT {3}\r\n\xffab"
    )
    assert keys(cmd) == (
        SearchKey("FROM", b"alice"),
        SearchKey("SUBJECT", b"a b"),
        SearchKey("BEFORE", dt.date(2020, 2, 1)),
        SearchKey("ON", dt.date(2021, 12, 12)),
        SearchKey("LARGER", 100),
        SearchKey("SMALLER", 5),
        SearchKey("KEYWORD", "$Junk"),
        SearchKey("UNKEYWORD", "foo"),
        SearchKey("HEADER", b"yes", field="X-Spam"),
        SearchKey("UID", SequenceSet(((1, None), (4, 4)))),
        SearchKey("SEQ", SequenceSet(((2, 2), (4, 6)))),
        SearchKey("SENTSINCE", dt.date(2024, 2, 29)),
        SearchKey("TEXT", b"\xffab"),
    )


def test_search_tree() -> None:
    cmd = parse_command(b"a SEARCH OR (FROM a SEEN) NOT OR DELETED 1:3 *")
    assert keys(cmd) == (
        SearchKey(
            "OR",
            children=(
                SearchKey("AND", children=(SearchKey("FROM", b"a"), SearchKey("SEEN"))),
                SearchKey(
                    "NOT",
                    children=(
                        SearchKey(
                            "OR",
                            children=(
                                SearchKey("DELETED"),
                                SearchKey("SEQ", SequenceSet(((1, 3),))),
                            ),
                        ),
                    ),
                ),
            ),
        ),
        SearchKey("SEQ", SequenceSet(((None, None),))),
    )


def test_search_charset_and_uid() -> None:
    cmd = parse_command(b"a UID SEARCH charset utf-8 SUBJECT {4}\r\n\xc3\xa4bc")
    assert isinstance(cmd, Search)
    assert (cmd.uid, cmd.charset) == (True, "UTF-8")
    assert keys(cmd) == (SearchKey("SUBJECT", b"\xc3\xa4bc"),)
    cmd = parse_command(b"a SEARCH ALL")
    assert isinstance(cmd, Search)
    assert cmd.charset is None


@pytest.mark.parametrize(
    "criteria",
    [
        "",
        "FOO",
        "FROM",
        "BEFORE 31-Feb-2020",
        "BEFORE 1-2-2020",
        "BEFORE 2020-01-01",
        "ON 1-Feb-20",
        "LARGER x",
        "OR SEEN",
        "NOT",
        "(SEEN",
        "()",
        "SEEN)",
        "HEADER X",
        "KEYWORD (x)",
        "UID x",
        "0",
        "SEEN  DELETED",
        'SUBJECT "ö"',
    ],
)
def test_search_errors(criteria: str) -> None:
    bad(f"a1 SEARCH {criteria}".encode())


def test_nesting_and_size_limits() -> None:
    ok = "(" * MAX_DEPTH + "SEEN" + ")" * MAX_DEPTH
    assert parse_command(f"a SEARCH {ok}".encode()).name == "SEARCH"
    deep = "(" * (MAX_DEPTH + 1) + "SEEN" + ")" * (MAX_DEPTH + 1)
    assert "nested" in bad(f"a1 SEARCH {deep}".encode()).message
    assert "nested" in bad(b"a1 SEARCH " + b"NOT " * 40 + b"SEEN").message
    bad(b"a1 SEARCH " + b"(" * 100_000)
    bad(b"a1 SEARCH " + b" ".join([b"SEEN"] * (MAX_ITEMS + 1)))
    bad(b"a1 FETCH 1 (" + b" ".join([b"UID"] * (MAX_ITEMS + 1)) + b")")
    bad(b"a1 STORE 1 FLAGS (" + b" ".join([b"x"] * (MAX_ITEMS + 1)) + b")")


# --------------------------------------------------------------------------- properties
@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda tag, name, rest: tag + b" " + name + rest,
            st.sampled_from([b"a1", b"*", b"", b"x+"]),
            st.sampled_from(
                [
                    b"FETCH",
                    b"SEARCH",
                    b"UID FETCH",
                    b"LOGIN",
                    b"APPEND",
                    b"STORE",
                    b"ID",
                    b"STATUS",
                    b"LIST",
                    b"UID EXPUNGE",
                    b"AUTHENTICATE",
                ]
            ),
            st.binary(max_size=120).map(lambda b: b" " + b),
        ),
        st.lists(
            st.sampled_from(
                [
                    b"(",
                    b")",
                    b" ",
                    b"{3}\r\n",
                    b"{2+}\r\n",
                    b'"',
                    b"\\",
                    b"[",
                    b"]",
                    b"<",
                    b">",
                    b"1",
                    b":",
                    b"*",
                    b",",
                    b"BODY",
                    b"PEEK",
                    b".",
                    b"HEADER",
                    b"NOT",
                    b"OR",
                    b"NIL",
                    b"\xff",
                    b"\r\n",
                    b"-",
                    b"Feb",
                    b"2020",
                ]
            ),
            max_size=40,
        ).map(lambda parts: b"a1 SEARCH " + b"".join(parts)),
    )
)
def test_arbitrary_bytes_only_raise_parse_error(data: bytes) -> None:
    from mailward.imap.parse import Reader, _parse  # strict: no defensive wrapper

    try:
        result = parse_command(data)
    except ParseError as exc:
        assert exc.tag is None or isinstance(exc.tag, str)
    else:
        assert isinstance(result, Command)
    with contextlib.suppress(ParseError):
        _parse(Reader(data))
    literal_needed(data)


# Strategies producing (wire text, expected structure).
_seq_num = st.one_of(st.integers(1, 4294967295), st.none())
_seq_set = st.lists(st.tuples(_seq_num, _seq_num), min_size=1, max_size=5).map(
    lambda rs: SequenceSet(tuple(rs))
)
_header_name = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12
)
_section = st.one_of(
    st.just(Section()),
    st.builds(Section, st.lists(st.integers(1, 50), min_size=1, max_size=4).map(tuple)),
    st.builds(
        Section,
        st.lists(st.integers(1, 50), max_size=3).map(tuple),
        st.sampled_from(["HEADER", "TEXT"]),
    ),
    st.builds(
        Section,
        st.lists(st.integers(1, 50), min_size=1, max_size=3).map(tuple),
        st.just("MIME"),
    ),
    st.builds(
        Section,
        st.lists(st.integers(1, 50), max_size=3).map(tuple),
        st.sampled_from(["HEADER.FIELDS", "HEADER.FIELDS.NOT"]),
        st.lists(_header_name, min_size=1, max_size=4).map(tuple),
    ),
)
_fetch_att = st.one_of(
    st.sampled_from(
        [
            "ENVELOPE",
            "FLAGS",
            "INTERNALDATE",
            "RFC822",
            "RFC822.HEADER",
            "RFC822.SIZE",
            "RFC822.TEXT",
            "BODY",
            "BODYSTRUCTURE",
            "UID",
        ]
    ).map(FetchAtt),
    st.builds(
        lambda section, partial, peek: FetchAtt("BODY", section, partial, peek),
        _section,
        st.one_of(st.none(), st.tuples(st.integers(0, 10**6), st.integers(1, 10**6))),
        st.booleans(),
    ),
)


def _case(text: str, flips: list[bool]) -> str:
    return "".join(
        c.lower() if f else c for c, f in zip(text, flips + [False] * len(text), strict=False)
    )


@settings(max_examples=200, deadline=None)
@given(
    _seq_set,
    st.lists(_fetch_att, min_size=1, max_size=6),
    st.booleans(),
    st.lists(st.booleans(), max_size=200),
)
def test_generated_fetch_round_trips(
    seqs: SequenceSet, atts: list[FetchAtt], uid: bool, flips: list[bool]
) -> None:
    items = _case(" ".join(str(a) for a in atts), flips)
    wire = f"T {'UID ' if uid else ''}FETCH {seqs} ({items})\r\n".encode()
    cmd = parse_command(wire)
    assert cmd == Fetch(tag="T", name="FETCH", uid=uid, sequence_set=seqs, items=tuple(atts))


_astring_value = st.one_of(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8).map(
        lambda s: (s, s.encode())
    ),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8).map(
        lambda s: ('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"', s.encode())
    ),
    st.binary(max_size=8).map(lambda b: (None, b)),  # literal
)
_date = st.dates(dt.date(1900, 1, 1), dt.date(2999, 12, 31))
_MONTHS = [m.title() for m in MONTHS]


def _render_value(text: str | None, raw: bytes) -> bytes:
    if text is None:
        return b"{%d}\r\n" % len(raw) + raw
    return text.encode()


def _leaf():
    simple = st.sampled_from(["ALL", "SEEN", "UNSEEN", "DELETED", "FLAGGED", "NEW"]).map(
        lambda k: (k.encode(), SearchKey(k))
    )
    string = st.tuples(st.sampled_from(["FROM", "SUBJECT", "BODY", "TO"]), _astring_value).map(
        lambda t: (t[0].encode() + b" " + _render_value(*t[1]), SearchKey(t[0], t[1][1]))
    )
    date = st.tuples(st.sampled_from(["BEFORE", "SINCE", "SENTON"]), _date).map(
        lambda t: (
            f"{t[0]} {t[1].day}-{_MONTHS[t[1].month - 1]}-{t[1].year:04d}".encode(),
            SearchKey(t[0], t[1]),
        )
    )
    size = st.tuples(st.sampled_from(["LARGER", "SMALLER"]), st.integers(0, 2**32 - 1)).map(
        lambda t: (f"{t[0]} {t[1]}".encode(), SearchKey(t[0], t[1]))
    )
    seqset = _seq_set.map(lambda s: (str(s).encode(), SearchKey("SEQ", s)))
    uidset = _seq_set.map(lambda s: (b"UID " + str(s).encode(), SearchKey("UID", s)))
    header = st.tuples(_header_name, _astring_value).map(
        lambda t: (
            b"HEADER " + t[0].encode() + b" " + _render_value(*t[1]),
            SearchKey("HEADER", t[1][1], field=t[0]),
        )
    )
    return st.one_of(simple, string, date, size, seqset, uidset, header)


def _extend(children):
    group = st.lists(children, min_size=1, max_size=3).map(
        lambda ks: (
            b"(" + b" ".join(k[0] for k in ks) + b")",
            SearchKey("AND", children=tuple(k[1] for k in ks)),
        )
    )
    neg = children.map(lambda k: (b"NOT " + k[0], SearchKey("NOT", children=(k[1],))))
    either = st.tuples(children, children).map(
        lambda t: (
            b"OR " + t[0][0] + b" " + t[1][0],
            SearchKey("OR", children=(t[0][1], t[1][1])),
        )
    )
    return st.one_of(group, neg, either)


_search_key = st.recursive(_leaf(), _extend, max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(_search_key, min_size=1, max_size=4), st.booleans())
def test_generated_search_round_trips(parts: list[tuple[bytes, SearchKey]], uid: bool) -> None:
    wire = b"T " + (b"UID " if uid else b"") + b"SEARCH " + b" ".join(p[0] for p in parts)
    cmd = parse_command(wire + b"\r\n")
    assert cmd == Search(
        tag="T",
        name="SEARCH",
        uid=uid,
        charset=None,
        criteria=SearchKey("AND", children=tuple(p[1] for p in parts)),
    )


# --------------------------------------------------------------------------- extensions
def test_condstore() -> None:
    cmd = parse_command(b"a SELECT inbox (condstore)")
    assert cmd == MailboxCommand(tag="a", name="SELECT", mailbox="INBOX", condstore=True)
    bad(b"a1 SELECT INBOX (QRESYNC)")
    bad(b"a1 CREATE INBOX (CONDSTORE)")
    cmd = parse_command(b"a UID FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345)")
    assert isinstance(cmd, Fetch)
    assert cmd.items == (FetchAtt("FLAGS"), FetchAtt("MODSEQ"))
    assert cmd.changed_since == 12345
    bad(b"a1 FETCH 1 FLAGS (CHANGEDSINCE x)")
    bad(b"a1 FETCH 1 FLAGS (CHANGEDSINCE 99999999999999999999)")
    cmd = parse_command(b"a STORE 1 (UNCHANGEDSINCE 9223372036854775807) +FLAGS \\Seen")
    assert isinstance(cmd, Store)
    assert (cmd.unchanged_since, cmd.flags) == (2**63 - 1, ("\\Seen",))
    bad(b"a1 STORE 1 (UNCHANGEDSINCE 9223372036854775808) +FLAGS \\Seen")
    cmd = parse_command(b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338 MODSEQ 5')
    assert keys(cmd) == (
        SearchKey("MODSEQ", 620162338, field="/flags/\\draft"),
        SearchKey("MODSEQ", 5),
    )
    bad(b'a1 SEARCH MODSEQ "/flags/x" any 5')


def test_list_extended() -> None:
    cmd = parse_command(b'a LIST (subscribed) "" "*" RETURN (special-use STATUS (MESSAGES))')
    assert cmd == ListCommand(
        tag="a",
        name="LIST",
        reference="",
        pattern="*",
        select_options=("SUBSCRIBED",),
        return_options=("SPECIAL-USE", "STATUS"),
        return_status=("MESSAGES",),
    )
    cmd = parse_command(b'a LIST "" % RETURN ()')
    assert isinstance(cmd, ListCommand)
    assert cmd.return_options == ()
    bad(b'a1 LIST "" % RETURN (STATUS ())')
    bad(b'a1 LIST "" % RETURN (SPECIAL-USE')
    bad(b'a1 LSUB () "" %')


def test_qresync() -> None:
    """RFC 7162 §3.2.5 and §3.2.6: SELECT (QRESYNC (...)) and FETCH ... VANISHED."""
    cmd = parse_command(b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211))")
    assert isinstance(cmd, MailboxCommand) and cmd.qresync is not None
    assert (cmd.qresync.uidvalidity, cmd.qresync.modseq) == (67890007, 20050715194045000)
    assert cmd.qresync.known_uids is not None
    assert cmd.qresync.known_uids.resolve(1000) == [(41, 41), (43, 211)]
    cmd = parse_command(b"a EXAMINE INBOX (QRESYNC (1 2 1:9 (1:3,5 7:9,12)) CONDSTORE)")
    assert isinstance(cmd, MailboxCommand) and cmd.qresync is not None and cmd.condstore
    assert cmd.qresync.known_uids is not None and str(cmd.qresync.known_uids) == "1:9"
    cmd = parse_command(b"a SELECT INBOX (QRESYNC (7 9 (1 3)))")  # match data, no UIDs
    assert isinstance(cmd, MailboxCommand) and cmd.qresync is not None
    assert cmd.qresync.known_uids is None
    bad(b"a1 SELECT INBOX (QRESYNC (0 9))")  # UIDVALIDITY is non-zero
    bad(b"a1 SELECT INBOX (QRESYNC (7 0))")  # so is the mod-sequence
    bad(b"a1 SELECT INBOX (QRESYNC (7 9 1:*))")  # known UIDs are explicit
    bad(b"a1 SELECT INBOX (QRESYNC (7 9) QRESYNC (7 9))")
    bad(b"a1 SELECT INBOX (QRESYNC (7))")
    cmd = parse_command(b"a UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert isinstance(cmd, Fetch) and cmd.vanished and cmd.changed_since == 12345
    cmd = parse_command(b"a UID FETCH 1:* FLAGS (VANISHED CHANGEDSINCE 7)")
    assert isinstance(cmd, Fetch) and cmd.vanished and cmd.changed_since == 7
    bad(b"a1 FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")  # only with UID FETCH
    bad(b"a1 UID FETCH 1:* (FLAGS) (VANISHED)")  # VANISHED needs CHANGEDSINCE
