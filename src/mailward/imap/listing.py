"""LIST / LSUB name matching and mailbox attributes.

Covers RFC 3501 §6.3.8-6.3.9, the basics of LIST-EXTENDED (RFC 5258: the SUBSCRIBED
selection option, RETURN (SUBSCRIBED CHILDREN)), CHILDREN (RFC 3348) and SPECIAL-USE
(RFC 6154). Names are Unicode with ``/`` as hierarchy separator; the session converts
modified UTF-7 on the wire. Pure functions, no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "INBOX",
    "SEPARATOR",
    "SPECIAL_USE",
    "ListEntry",
    "canonical_name",
    "join_reference",
    "list_folders",
    "pattern_matches",
]

SEPARATOR = "/"
INBOX = "INBOX"
#: Top-level folder names announced with a special-use attribute (RFC 6154).
SPECIAL_USE: dict[str, str] = {
    "Drafts": "\\Drafts",
    "Sent": "\\Sent",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
}

_NOSELECT = "\\Noselect"
_NONEXISTENT = "\\NonExistent"
_SUBSCRIBED = "\\Subscribed"
_HAS_CHILDREN = "\\HasChildren"
_HAS_NO_CHILDREN = "\\HasNoChildren"


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One LIST/LSUB response line: the name and its attributes, in Dovecot's order."""

    name: str
    attributes: tuple[str, ...]  # e.g. ("\\HasNoChildren", "\\Sent")


def canonical_name(name: str) -> str:
    """``name`` with a leading ``INBOX`` (any case) spelled ``INBOX``."""
    head = name[:5]
    if head != INBOX and head.upper() == INBOX and name[5:6] in ("", SEPARATOR):
        return INBOX + name[5:]
    return name


def join_reference(reference: str, pattern: str) -> str:
    """The effective pattern for ``LIST reference pattern``.

    As Dovecot does: the reference is prefixed verbatim (``"Foo"`` + ``"%"`` is
    ``"Foo%"``, RFC 3501 leaves the interpretation to the server); when the reference
    ends with the separator and the pattern starts with it, one separator is dropped.
    """
    if not reference:
        return pattern
    if reference.endswith(SEPARATOR) and pattern.startswith(SEPARATOR):
        pattern = pattern[1:]
    return reference + pattern


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether ``name`` matches the LIST ``pattern``.

    ``*`` matches anything including the separator, ``%`` anything but the separator;
    everything else is case-sensitive, except that for ``INBOX`` and its inferiors the
    leading ``INBOX`` of the pattern is matched case-insensitively (as Dovecot does).
    """
    if name[:5] == INBOX and name[5:6] in ("", SEPARATOR):
        pattern = _inbox_case(pattern)
    return _matcher(pattern)(name)


def _inbox_case(pattern: str) -> str:
    """Upper-case the leading characters of ``pattern`` that spell a prefix of INBOX."""
    n = 0
    while n < min(5, len(pattern)) and pattern[n].upper() == INBOX[n]:
        n += 1
    return pattern[:n].upper() + pattern[n:]


@lru_cache(maxsize=256)
def _matcher(pattern: str) -> _Matcher:
    return _Matcher(pattern)


class _Matcher:
    """Wildcard matching by NFA simulation: linear in ``len(pattern) * len(name)``."""

    __slots__ = ("_literal", "_tokens")

    def __init__(self, pattern: str) -> None:
        tokens: list[str] = []
        for ch in pattern:
            if ch in "*%" and tokens and tokens[-1] in ("*", "%"):
                if ch == "*":
                    tokens[-1] = "*"  # '%*' and '**' both mean '*'
                continue
            tokens.append(ch)
        self._tokens = tuple(tokens)
        self._literal = None if ("*" in tokens or "%" in tokens) else pattern

    def __call__(self, name: str) -> bool:
        if self._literal is not None:
            return name == self._literal
        tokens = self._tokens
        end = len(tokens)
        states = self._closure({0})
        for ch in name:
            nxt: set[int] = set()
            for i in states:
                if i == end:
                    continue
                tok = tokens[i]
                if tok == "*" or (tok == "%" and ch != SEPARATOR):
                    nxt.add(i)
                elif tok == ch:
                    nxt.add(i + 1)
            if not nxt:
                return False
            states = self._closure(nxt)
        return end in states

    def _closure(self, states: set[int]) -> set[int]:
        """Add the positions reachable by letting wildcards match nothing."""
        tokens = self._tokens
        for i in list(states):
            while i < len(tokens) and tokens[i] in ("*", "%"):
                i += 1
                states.add(i)
        return states


def _ancestors(name: str) -> list[str]:
    """Proper superiors of ``name``, outermost first (``a/b/c`` → ``a``, ``a/b``)."""
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:i]) for i in range(1, len(parts))]


def _attributes(
    *,
    subscribed: bool = False,
    noselect: bool = False,
    nonexistent: bool = False,
    children: bool | None = None,
    special: str | None = None,
) -> tuple[str, ...]:
    attrs: list[str] = []
    if subscribed:
        attrs.append(_SUBSCRIBED)
    if noselect:
        attrs.append(_NOSELECT)
    if nonexistent:
        attrs.append(_NONEXISTENT)
    if children is not None:
        attrs.append(_HAS_CHILDREN if children else _HAS_NO_CHILDREN)
    if special:
        attrs.append(special)
    return tuple(attrs)


def list_folders(
    reference: str,
    pattern: str,
    folders: Iterable[str],
    *,
    subscriptions: Iterable[str] = (),
    lsub: bool = False,
    select_subscribed: bool = False,
    return_subscribed: bool = False,
    return_children: bool = True,
    return_special_use: bool = True,
) -> list[ListEntry]:
    """The LIST (or LSUB, with ``lsub``) response entries for ``reference`` + ``pattern``.

    ``folders`` are the existing folders (INBOX always counts as existing), sorted by
    name; ``subscriptions`` the subscribed names. Entries come INBOX first, then in
    folder order, with names that are not folders merged in sorted position.

    - LIST: matching folders, plus matching superiors that are not folders
      (``\\Noselect \\HasChildren``);
    - LIST (SUBSCRIBED) (``select_subscribed``): matching subscribed names only,
      ``\\NonExistent`` when not a folder, always ``\\Subscribed``;
    - LSUB: matching subscribed names with no attributes, plus a matching superior
      that is not subscribed, with ``\\Noselect``, when the subscribed name itself does
      not match (RFC 3501 §6.3.9, ``LSUB "" %`` with only ``foo/bar`` subscribed).
    """
    full = join_reference(reference, pattern)
    existing = list(dict.fromkeys(canonical_name(f) for f in folders))
    if INBOX not in existing:
        existing.insert(0, INBOX)
    exists = set(existing)
    subscribed = {canonical_name(s) for s in subscriptions}
    if lsub:
        entries = _lsub(full, subscribed)
    else:
        parents = {a for f in existing for a in _ancestors(f)}
        show_subscribed = return_subscribed or select_subscribed

        def attrs(name: str) -> tuple[str, ...]:
            real = name in exists
            children: bool | None = None
            if return_children and (real or name in parents):
                children = name in parents  # no \HasNoChildren beside \NonExistent
            return _attributes(
                subscribed=show_subscribed and name in subscribed,
                noselect=not real and not select_subscribed,
                nonexistent=not real and select_subscribed,
                children=children,
                special=SPECIAL_USE.get(name) if return_special_use and real else None,
            )

        if select_subscribed:
            names = [s for s in subscribed if pattern_matches(full, s)]
        else:
            names = [f for f in existing if pattern_matches(full, f)]
            names += [p for p in parents - exists if pattern_matches(full, p)]
        entries = {name: attrs(name) for name in names}
    return _ordered(entries, existing)


def _lsub(pattern: str, subscribed: set[str]) -> dict[str, tuple[str, ...]]:
    entries: dict[str, tuple[str, ...]] = {}
    for name in subscribed:
        if pattern_matches(pattern, name):
            entries[name] = ()
            continue
        for parent in _ancestors(name):
            if parent not in subscribed and pattern_matches(pattern, parent):
                entries[parent] = (_NOSELECT,)
    return entries


def _ordered(entries: dict[str, tuple[str, ...]], existing: list[str]) -> list[ListEntry]:
    """INBOX first, then ``existing`` order, other names merged in sorted position."""
    exists = set(existing)
    known = [n for n in existing if n in entries and n != INBOX]
    extra = sorted(n for n in entries if n not in exists)
    names = ([INBOX] if INBOX in entries else []) + list(heapq.merge(known, extra))
    return [ListEntry(name, entries[name]) for name in names]
