"""SEARCH criteria (RFC 3501 §6.4.4, §9 ``search-key``) as a tree of :class:`SearchKey`."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from .core import MAX_ITEMS, Reader, SequenceSet

__all__ = ["SearchKey", "parse_search_keys"]

#: Keys without argument.
FLAG_KEYS = frozenset(
    {
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
    }
)
#: Keys taking an astring (matched as a substring).
STRING_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
#: Keys taking a date.
DATE_KEYS = frozenset({"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"})
#: Keys taking a number.
SIZE_KEYS = frozenset({"LARGER", "SMALLER"})
#: Keys taking a flag-keyword.
KEYWORD_KEYS = frozenset({"KEYWORD", "UNKEYWORD"})


@dataclass(frozen=True, slots=True)
class SearchKey:
    """One node of the search tree.

    ``op`` is the upper-cased key name, or one of the structural nodes:

    - ``"AND"``: ``children`` must all match (a parenthesised group, and the top
      level of a SEARCH command, are always ``AND`` nodes),
    - ``"OR"``: two ``children``; ``"NOT"``: one child,
    - ``"SEQ"``: ``value`` is a :class:`SequenceSet` of message sequence numbers;
      ``"UID"``: ``value`` is a :class:`SequenceSet` of UIDs.

    Other ops carry ``value``: ``bytes`` for string keys (charset given by the
    command), ``datetime.date`` for date keys, ``int`` for LARGER/SMALLER, ``str`` for
    KEYWORD/UNKEYWORD; HEADER has ``field`` (str) and ``value`` (bytes); MODSEQ
    (RFC 7162) has ``value`` (int) and ``field`` the optional entry name.
    """

    op: str
    value: bytes | str | int | _dt.date | SequenceSet | None = None
    field: str | None = None
    children: tuple[SearchKey, ...] = ()


class _Budget:
    def __init__(self) -> None:
        self.count = 0


def parse_search_keys(r: Reader) -> SearchKey:
    """``1*(SP search-key)`` up to the end of the command, as one ``AND`` node.

    The caller has consumed everything up to (not including) the first SP.
    """
    budget = _Budget()
    keys: list[SearchKey] = []
    while not r.at_eol():
        r.sp()
        keys.append(_key(r, budget))
    if not keys:
        raise r.error("missing search criteria")
    return SearchKey("AND", children=tuple(keys))


def _key(r: Reader, budget: _Budget) -> SearchKey:
    budget.count += 1
    if budget.count > MAX_ITEMS:
        raise r.error("too many search keys")
    c = r.peek()
    if c == 0x28:  # "("
        r.pos += 1
        r.enter()
        children = [_key(r, budget)]
        while not r.maybe(b")"):
            r.sp()
            children.append(_key(r, budget))
        r.leave()
        return SearchKey("AND", children=tuple(children))
    if c is not None and (0x30 <= c <= 0x39 or c == 0x2A):
        return SearchKey("SEQ", value=r.sequence_set())
    op = r.keyword("search key")
    if op in FLAG_KEYS:
        return SearchKey(op)
    if op in STRING_KEYS:
        r.sp()
        return SearchKey(op, value=r.astring())
    if op in DATE_KEYS:
        r.sp()
        return SearchKey(op, value=r.date())
    if op in SIZE_KEYS:
        r.sp()
        return SearchKey(op, value=r.number())
    if op in KEYWORD_KEYS:
        r.sp()
        return SearchKey(op, value=r.atom("flag keyword").decode("ascii"))
    if op == "HEADER":
        r.sp()
        field = r.text(r.astring("header field name"), "header field name")
        r.sp()
        return SearchKey(op, field=field, value=r.astring())
    if op == "MODSEQ":  # RFC 7162: MODSEQ ["/flags/\\seen" all] 620162338
        r.sp()
        entry = None
        if r.peek() == 0x22:
            entry = r.text(r.quoted(), "entry name")
            r.sp()
            if r.keyword("entry type") not in ("PRIV", "SHARED", "ALL"):
                raise r.error("invalid entry type")
            r.sp()
        return SearchKey(op, value=r.mod_sequence(nonzero=False), field=entry)
    if op == "UID":
        r.sp()
        return SearchKey(op, value=r.sequence_set())
    if op == "NOT":
        r.sp()
        r.enter()
        child = _key(r, budget)
        r.leave()
        return SearchKey(op, children=(child,))
    if op == "OR":
        r.sp()
        r.enter()
        left = _key(r, budget)
        r.sp()
        right = _key(r, budget)
        r.leave()
        return SearchKey(op, children=(left, right))
    raise r.error(f"unknown search key {op[:40]}")
