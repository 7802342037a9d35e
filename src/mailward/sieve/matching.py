"""Sieve comparisons (RFC 5228 §2.7, RFC 5231): ``:is``, ``:contains``, ``:matches``
(with the match variables it captures) and the relational ``:count``/``:value``, under the
comparators ``i;ascii-casemap`` (the default) and ``i;octet``."""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["compare", "relational"]

_OPS = {"gt": lambda c: c > 0, "ge": lambda c: c >= 0, "lt": lambda c: c < 0,
        "le": lambda c: c <= 0, "eq": lambda c: c == 0, "ne": lambda c: c != 0}


def _fold(text: str, comparator: str) -> str:
    """``i;ascii-casemap`` folds ASCII letters only; ``i;octet`` leaves the text."""
    if comparator == "i;octet":
        return text
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


@lru_cache(maxsize=512)
def _glob(pattern: str, comparator: str) -> re.Pattern[str]:
    """A ``:matches`` pattern as a regular expression: ``*`` and ``?`` captured, ``\\``
    escaping the next character."""
    out: list[str] = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            out.append("(.*?)")
        elif char == "?":
            out.append("(.)")
        else:
            out.append(re.escape(_fold(char, comparator)))
    return re.compile("".join(out) + r"\Z", re.S)


def compare(match: str, comparator: str, value: str, key: str) -> list[str] | None:
    """Whether ``value`` matches ``key``: ``None`` if not, else the match variables
    (``[${0}, ${1}, ...]`` for ``:matches``, empty for the others)."""
    if match == ":is":
        return [] if _fold(value, comparator) == _fold(key, comparator) else None
    if match == ":contains":
        return [] if _fold(key, comparator) in _fold(value, comparator) else None
    if match == ":matches":
        found = _glob(key, comparator).match(_fold(value, comparator))
        if found is None:
            return None
        # the captured parts are taken from the original text (same offsets)
        return [value] + [value[found.start(i):found.end(i)]
                          for i in range(1, (found.lastindex or 0) + 1)]
    raise ValueError(f"unknown match type {match}")


def _order(left: str, right: str, comparator: str) -> int:
    """Compare two values: as numbers when both are decimal numbers (as
    ``i;ascii-numeric`` would), else by the comparator's folding."""
    if left.isdigit() and right.isdigit():
        a: int | str = int(left)
        b: int | str = int(right)
    else:
        a, b = _fold(left, comparator), _fold(right, comparator)
    return (a > b) - (a < b)  # type: ignore[operator]


def relational(op: str, comparator: str, value: str, key: str) -> bool:
    """``:value "op"``: ``value op key``."""
    return _OPS[op](_order(value, key, comparator))
