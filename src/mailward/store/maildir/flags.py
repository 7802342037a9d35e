"""IMAP flags ↔ Maildir info letters, and Dovecot's per-folder ``dovecot-keywords`` file.

System flags use the standard letters (``D`` Draft, ``F`` Flagged, ``R`` Answered,
``S`` Seen, ``T`` Deleted). Keywords use ``a`` to ``z``: letter *n* is the *n*-th line of
the folder's ``dovecot-keywords`` file (``"<n> <keyword>"``), exactly as Dovecot keeps
them, so at most 26 keywords per folder. Letters we do not map (``P`` "passed", unknown
lower-case ones) are kept as they are when flags change.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

from mailward.store.interface import (
    ANSWERED,
    DELETED,
    DRAFT,
    FLAGGED,
    RECENT,
    SEEN,
    SYSTEM_FLAGS,
    InvalidFlag,
)
from mailward.store.maildir.files import atomic_write

KEYWORDS_FILE = "dovecot-keywords"
MAX_KEYWORDS = 26
MAX_KEYWORD_LENGTH = 128

_LETTER_TO_FLAG = {"D": DRAFT, "F": FLAGGED, "R": ANSWERED, "S": SEEN, "T": DELETED}
_FLAG_TO_LETTER = {flag: letter for letter, flag in _LETTER_TO_FLAG.items()}
_SYSTEM_BY_LOWER = {flag.lower(): flag for flag in SYSTEM_FLAGS}
_ATOM_SPECIALS = frozenset('(){ %*"\\]')


def normalize_flags(flags: Iterable[str]) -> frozenset[str]:
    """Canonical spelling of system flags; validated keywords; raise ``InvalidFlag``."""
    out: set[str] = set()
    for flag in flags:
        if not isinstance(flag, str) or not flag:
            raise InvalidFlag(f"flag {flag!r} is empty or not text")
        if flag.startswith("\\"):
            canonical = _SYSTEM_BY_LOWER.get(flag.lower())
            if canonical is None:
                hint = " (it is session state)" if flag.lower() == RECENT.lower() else ""
                raise InvalidFlag(f"flag {flag!r} cannot be stored{hint}")
            out.add(canonical)
        elif len(flag) > MAX_KEYWORD_LENGTH or any(
            not 0x21 <= ord(ch) <= 0x7E or ch in _ATOM_SPECIALS for ch in flag
        ):
            raise InvalidFlag(f"keyword {flag!r} is not a valid IMAP atom")
        else:
            out.add(flag)
    return frozenset(out)


def load_keywords(folder_dir: Path) -> list[str]:
    """The folder's keyword table (index = letter offset); empty if there is none."""
    try:
        text = (folder_dir / KEYWORDS_FILE).read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    table: list[str] = [""] * MAX_KEYWORDS
    for line in text.splitlines():
        index, _, name = line.partition(" ")
        if index.isdigit() and int(index) < MAX_KEYWORDS and name:
            table[int(index)] = name
    while table and not table[-1]:
        table.pop()
    return table


def save_keywords(folder_dir: Path, table: list[str]) -> None:
    lines = "".join(f"{i} {name}\n" for i, name in enumerate(table) if name)
    atomic_write(folder_dir / KEYWORDS_FILE, lines.encode())


def letters_to_flags(letters: str, keywords: list[str]) -> frozenset[str]:
    """The IMAP flags an info string (``"FS"``, ``"Sab"``) stands for."""
    flags: set[str] = set()
    for letter in letters:
        if letter in _LETTER_TO_FLAG:
            flags.add(_LETTER_TO_FLAG[letter])
        elif letter in string.ascii_lowercase:
            index = ord(letter) - ord("a")
            if index < len(keywords) and keywords[index]:
                flags.add(keywords[index])
    return frozenset(flags)


def flags_to_letters(
    flags: frozenset[str], keywords: list[str], keep_from: str = ""
) -> tuple[str, bool]:
    """Info letters for normalised ``flags``, registering new keywords in ``keywords``.

    Letters of ``keep_from`` that map to no flag are carried over. Returns the sorted
    letters and whether the keyword table grew (and must be saved).
    """
    letters = {_FLAG_TO_LETTER[f] for f in flags if f in _FLAG_TO_LETTER}
    known = {name.lower(): i for i, name in enumerate(keywords) if name}
    grew = False
    for keyword in sorted(flags - SYSTEM_FLAGS):
        index = known.get(keyword.lower())
        if index is None:
            if "" in keywords:
                index = keywords.index("")
                keywords[index] = keyword
            elif len(keywords) < MAX_KEYWORDS:
                index = len(keywords)
                keywords.append(keyword)
            else:
                raise InvalidFlag(f"the folder already uses {MAX_KEYWORDS} keywords")
            known[keyword.lower()] = index
            grew = True
        letters.add(chr(ord("a") + index))
    for letter in keep_from:
        if letter in _LETTER_TO_FLAG:
            continue
        if letter in string.ascii_lowercase:
            index = ord(letter) - ord("a")
            if index < len(keywords) and keywords[index]:
                continue
        letters.add(letter)
    return "".join(sorted(letters)), grew
