"""The IMAP MIME parser stays linear and bounded on hostile nesting (issue 16, item 1).

``mime._Parser.steps`` counts the parser's units of Python-level work (parts, delimiter
matches, close-delimiter checks, line-end moves); the parse before this fix re-parsed
every level twice, so its work doubled with each level of nesting.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailward.imap.mime import MAX_DEPTH, MAX_PARTS, Message, bodystructure, section
from mailward.store import mime  # the parser lives in the store (imap.mime re-exports it)


def _chain(depth: int, *, close: bool = True, boundary: str = "b") -> bytes:
    """``depth`` multiparts, each holding the next; every level ends in the close
    delimiter of the level below followed by its own (the shape that was exponential)."""
    body = b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for i in range(depth):
        b = f"{boundary}{i}".encode()
        body = (b"Content-Type: multipart/mixed; boundary=" + b + b"\r\n\r\n--" + b + b"\r\n"
                + body + b"\r\n--" + b + (b"--" if close else b""))
    return b"From: a@example.com\r\nSubject: deep\r\n" + body + b"\r\n"


def _wide(parts: int) -> bytes:
    body = b"".join(b"--w\r\n\r\n%d\r\n" % i for i in range(parts))
    return (b"Subject: wide\r\nContent-Type: multipart/mixed; boundary=w\r\n\r\n"
            + body + b"--w--\r\n")


def _walk(part: mime._Part, depth: int = 0) -> tuple[int, int]:
    """(deepest level, number of parts) of a parsed tree."""
    deepest, count = depth, 1
    for child in [*part.children, *([part.message] if part.message else [])]:
        d, c = _walk(child, depth + 1)
        deepest, count = max(deepest, d), count + c
    return deepest, count


def _steps(data: bytes) -> int:
    parser = mime._Parser(data)
    parser.parse(0, len(data))
    return parser.steps


_TOKEN = re.compile(rb'\(|\)|NIL|"(?:[^"\\]|\\.)*"|\{(\d+)\}\r\n|[0-9]+| ')


def _well_formed(data: bytes) -> int:
    """Check ``data`` is one IMAP parenthesised list; return its nesting depth."""
    pos, depth, deepest = 0, 0, 0
    while pos < len(data):
        m = _TOKEN.match(data, pos)
        assert m is not None, f"bad token at {pos}: {data[pos:pos + 40]!r}"
        pos = m.end() + (int(m.group(1)) if m.group(1) else 0)
        depth += {b"(": 1, b")": -1}.get(m.group(0), 0)
        assert depth >= 0 and (depth > 0 or pos == len(data))
        deepest = max(deepest, depth)
    assert depth == 0
    return deepest


# ----------------------------------------------------------------- deterministic


def test_work_grows_linearly_with_nesting() -> None:
    steps = {depth: _steps(_chain(depth)) for depth in (10, 20, 40)}
    # Twice the nesting is twice the work (exponential before: 2**10 times more).
    assert steps[20] <= 2.2 * steps[10] and steps[40] <= 2.2 * steps[20]
    for depth, count in steps.items():
        assert count <= len(_chain(depth))


def test_work_grows_linearly_with_parts() -> None:
    small, large = _steps(_wide(100)), _steps(_wide(1000))
    assert large <= 11 * small
    assert large <= len(_wide(1000))


def test_nesting_beyond_the_cap_is_served_as_a_leaf() -> None:
    data = _chain(MAX_DEPTH + 30)
    root = mime.parse(data)
    deepest, _ = _walk(root)
    assert deepest == MAX_DEPTH
    leaf = root
    for _ in range(MAX_DEPTH):
        leaf = leaf.children[0]
    assert not leaf.multipart and leaf.ctype == "multipart"
    assert leaf.body.endswith(b"--b29--")  # the rest of the message, unparsed
    assert _well_formed(bodystructure(data)) == MAX_DEPTH + 2  # + the leaf's parameters
    # BODY[1.1...1] of the leaf is its body (a leaf is its own part 1); no part 2 there.
    assert section(data, ".".join(["1"] * MAX_DEPTH)) == leaf.body
    assert section(data, ".".join(["1"] * (MAX_DEPTH - 1) + ["2"])) == b""


def test_parts_beyond_the_cap_are_served_as_one_leaf() -> None:
    data = _wide(MAX_PARTS + 500)
    root = mime.parse(data)
    assert len(root.children) == MAX_PARTS  # the root is one of the MAX_PARTS parts
    rest = root.children[-1]
    assert not rest.multipart and rest.body.startswith(b"%d\r\n--w\r\n" % (MAX_PARTS - 1))
    assert rest.body.endswith(b"--w--\r\n")
    assert section(data, "1") == b"0"
    assert section(data, str(MAX_PARTS + 1)) == b""
    _well_formed(bodystructure(data))


def test_message_parses_once_for_every_item() -> None:
    data = _chain(12)
    msg = Message(data)
    assert msg.bodystructure() == bodystructure(data)
    assert msg.section("1.1.TEXT") == section(data, "1.1.TEXT") == b""
    assert msg.section("1.1.1") == section(data, "1.1.1")
    assert msg.envelope() == mime.envelope(data)


# ----------------------------------------------------------------- generated nesting

_BOUNDARIES = ["a", "b", "ab", "a-b", "q", "x--"]


@st.composite
def _tree(draw: st.DrawFn, depth: int = 0) -> str:
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    kinds = ["text", "multi", "message", "chain", "junk"] if depth < 4 else ["text", "junk"]
    kind = draw(st.sampled_from(kinds))
    if kind == "text":
        lines = draw(st.lists(st.sampled_from(
            ["text", "", "--a--", "--b", "--ab--", " x", "--q-- ", "x--a"]), max_size=4))
        return "Content-Type: text/plain" + eol + eol + eol.join(lines)
    if kind == "junk":
        return draw(st.sampled_from(["", eol, "--a--", "X: y", "--b--" + eol]))
    if kind == "message":
        return "Content-Type: message/rfc822" + eol + eol + draw(_tree(depth + 1))
    if kind == "chain":  # deep nesting, mostly past the depth cap
        inner = draw(_tree(depth + 1))
        levels = draw(st.integers(0, MAX_DEPTH + 40))
        close = draw(st.booleans())
        for i in range(levels):
            b = f"c{i}"
            inner = (f"Content-Type: multipart/mixed; boundary={b}{eol}{eol}--{b}{eol}"
                     f"{inner}{eol}--{b}" + ("--" if close else ""))
        return inner
    b = draw(st.sampled_from(_BOUNDARIES))
    sub = draw(st.sampled_from(["mixed", "digest", "alternative"]))
    out = f'Content-Type: multipart/{sub}; boundary="{b}"{eol}{eol}'
    for kid in draw(st.lists(_tree(depth + 1), max_size=4)):
        out += f"--{b}{eol}{kid}" + draw(st.sampled_from([eol, ""]))
    return out + draw(st.sampled_from([f"--{b}--", f"--{b}--{eol}epilogue", ""]))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_tree(), st.integers(1, 40))
def test_generated_nesting_is_bounded_and_well_formed(tree: str, cap: int) -> None:
    data = ("From: a@example.com\r\n" + tree).encode()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mime, "MAX_PARTS", cap)  # exercise the part cap on small messages
        deepest, count = _walk(mime.parse(data))
        assert count <= cap + MAX_DEPTH  # one leaf per level for "the rest"
        capped = bodystructure(data)
    assert deepest <= MAX_DEPTH
    deepest, count = _walk(mime.parse(data))
    assert deepest <= MAX_DEPTH and count <= MAX_PARTS
    assert _steps(data) <= 2 * len(data) + 10
    for item in (bodystructure(data), bodystructure(data, extensible=False), capped):
        assert _well_formed(item) <= MAX_DEPTH + 4
    _well_formed(mime.envelope(data))
    msg = Message(data)
    for spec in ("", "TEXT", "1", "1.1", "1.MIME", "2.1.HEADER", "1.1.1.1.1"):
        assert msg.section(spec) == section(data, spec)
