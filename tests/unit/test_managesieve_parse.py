"""The ManageSieve wire grammar (RFC 5804 section 4): tokens, literals and responses."""

from __future__ import annotations

import pytest

from mailward.managesieve.grammar import (
    MAX_QUOTED,
    Literal,
    ParseError,
    response,
    split_literal,
    string,
    text_argument,
    tokenize,
)


def test_a_command_is_an_upper_cased_atom_then_strings_and_numbers() -> None:
    assert tokenize(b'havespace "my script" 1234', first=True) == [
        "HAVESPACE", "my script", 1234]
    assert tokenize(b"LISTSCRIPTS", first=True) == ["LISTSCRIPTS"]
    assert tokenize(b'NOOP "a"  "b"', first=True) == ["NOOP", "a", "b"]  # spaces repeated


def test_quoted_strings_unescape_and_are_utf8() -> None:
    assert tokenize(br'X "a \"b\" \\c"', first=True) == ["X", 'a "b" \\c']
    assert tokenize('X "Ferien-Grüße"'.encode(), first=True) == ["X", "Ferien-Grüße"]
    assert tokenize(b'X "123"', first=True) == ["X", "123"]  # a string, not a number


@pytest.mark.parametrize(("line", "message"), [
    (b'"PUTSCRIPT"', "command name"),
    (b"", "command name"),
    (b'X "open', "Unterminated"),
    (b'X "a\\nb"', "escape"),
    (b'X "a"b', "space between"),
    (b"X atom", "string or a number"),
    (b"X 99999999999", "too large"),
    (b'X {5+} "a"', "literal must end"),
    (b'X "\xff"', "UTF-8"),
    (b'X "a\x00"', "Invalid character"),
])
def test_malformed_commands_say_why(line: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        tokenize(line, first=True)


def test_quoted_strings_are_bounded() -> None:
    assert tokenize(b'X "' + b"a" * MAX_QUOTED + b'"', first=True)[1] == "a" * MAX_QUOTED
    with pytest.raises(ParseError, match="longer than 1024"):
        tokenize(b'X "' + b"a" * (MAX_QUOTED + 1) + b'"', first=True)


def test_a_line_ending_in_a_literal_marker_gives_its_size() -> None:
    assert split_literal(b'PUTSCRIPT "s" {12+}\r\n') == (b'PUTSCRIPT "s" ', 12)
    assert split_literal(b"CHECKSCRIPT {7}\r\n") == (b"CHECKSCRIPT ", 7)  # synchronising
    assert split_literal(b'NOOP "x"\r\n') == (b'NOOP "x"', None)
    assert split_literal(b'NOOP "{3+}"x\r\n') == (b'NOOP "{3+}"x', None)  # not at the end
    assert split_literal(b"X {99999999999+}\r\n")[1] is None  # 11 digits: no literal


def test_the_piece_after_a_literal_continues_the_command() -> None:
    assert tokenize(b"", first=False) == []
    assert tokenize(b' "next"', first=False) == ["next"]
    with pytest.raises(ParseError, match="space after the literal"):
        tokenize(b'"next"', first=False)


def test_literal_and_string_arguments() -> None:
    assert text_argument(Literal("grüß".encode())) == "grüß"
    with pytest.raises(ParseError, match="UTF-8"):
        text_argument(Literal(b"\xff\xfe"))
    with pytest.raises(ParseError, match="not a number"):
        text_argument(5)


def test_responses_quote_or_use_a_literal() -> None:
    assert response("OK") == b"OK\r\n"
    assert response("NO", 'no "x"', "NONEXISTENT") == b'NO (NONEXISTENT) "no \\"x\\""\r\n'
    assert response("NO", "line 1\nline 2") == b"NO {13}\r\nline 1\nline 2\r\n"
    assert string("a\\b") == b'"a\\\\b"'
    long = "x" * (MAX_QUOTED + 1)
    assert string(long) == b"{1025}\r\n" + long.encode()
