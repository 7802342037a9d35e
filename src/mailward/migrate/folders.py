"""The old server's folders and the names they get here.

An old server's ``LIST "" "*"`` answer is parsed (:func:`parse_list`), its names decoded
from modified UTF-7 (RFC 3501 §5.1.3) and translated (:func:`target_name`): the server's
hierarchy delimiter becomes ours (``/``), a personal namespace under ``INBOX.`` loses the
prefix, and the special-use folders (RFC 6154 attributes, else their common names) become
ours: ``Sent``, ``Drafts``, ``Trash``, ``Junk``, ``Archive``. Virtual folders (``\\All``,
``\\Flagged``) and ``\\Noselect`` ones are not copied.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from mailward.store.interface import INBOX, SEPARATOR

SPECIAL_USE = {"\\sent": "Sent", "\\drafts": "Drafts", "\\trash": "Trash",
               "\\junk": "Junk", "\\archive": "Archive"}
"""RFC 6154 attribute (lower-case) → our folder."""

COMMON_NAMES = {
    "sent": "Sent", "sent items": "Sent", "sent messages": "Sent", "sent mail": "Sent",
    "gesendet": "Sent", "gesendete elemente": "Sent", "envoyés": "Sent",
    "drafts": "Drafts", "draft": "Drafts", "entwürfe": "Drafts", "brouillons": "Drafts",
    "trash": "Trash", "deleted items": "Trash", "deleted messages": "Trash", "bin": "Trash",
    "papierkorb": "Trash", "corbeille": "Trash",
    "junk": "Junk", "spam": "Junk", "junk e-mail": "Junk", "junk email": "Junk",
    "bulk mail": "Junk",
    "archive": "Archive", "archives": "Archive", "archiv": "Archive",
}
"""A top-level folder's name (case-folded) → our special folder, when no attribute says."""

SKIPPED = frozenset({"\\noselect", "\\nonexistent", "\\all", "\\flagged"})
"""Attributes of folders that hold no mail of their own (or only copies of other mail)."""

_LIST = re.compile(rb'\((?P<flags>[^)]*)\) (?P<delim>NIL|"(?:\\.|[^"\\])*") (?P<name>.*)\Z',
                   re.S)
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f*%]")


@dataclass(frozen=True, slots=True)
class SourceFolder:
    """One folder of the old server: its raw name (to SELECT), decoded name, delimiter and
    attributes (lower-case)."""

    raw: bytes
    name: str
    delimiter: str | None
    attributes: frozenset[str]

    @property
    def selectable(self) -> bool:
        return not self.attributes & SKIPPED


def decode_mutf7(raw: bytes) -> str:
    """A modified UTF-7 mailbox name (``&AOQ-`` → ``ä``, ``&-`` → ``&``) as text."""
    out: list[str] = []
    text = raw.decode("ascii", errors="replace")
    pos = 0
    while pos < len(text):
        amp = text.find("&", pos)
        if amp < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:amp])
        end = text.find("-", amp)
        if end < 0:  # malformed: keep it as it is
            out.append(text[amp:])
            break
        chunk = text[amp + 1:end]
        if not chunk:
            out.append("&")
        else:
            data = chunk.replace(",", "/")
            data += "=" * (-len(data) % 4)
            try:
                out.append(base64.b64decode(data).decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                out.append(text[amp:end + 1])
        pos = end + 1
    return "".join(out)


def encode_mutf7(name: str) -> bytes:
    """``name`` in modified UTF-7, as an old server expects it in SELECT."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = base64.b64encode("".join(pending).encode("utf-16-be")).decode()
            out.append("&" + data.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out).encode("ascii")


def _unquote(value: bytes) -> bytes:
    if len(value) >= 2 and value[:1] == value[-1:] == b'"':
        return re.sub(rb"\\(.)", rb"\1", value[1:-1])
    return value


def parse_list(items: list[bytes | tuple[bytes, bytes] | None]) -> list[SourceFolder]:
    """The folders of an imaplib ``list()`` answer (literal names come as tuples)."""
    found: list[SourceFolder] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, tuple):
            head, literal = item
            line = re.sub(rb"\{\d+\}\Z", b"", head).rstrip() + b' "' + literal.replace(
                b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        else:
            line = item
        match = _LIST.match(line)
        if match is None:
            continue
        delim = match.group("delim")
        delimiter = None if delim == b"NIL" else _unquote(delim).decode("ascii", "replace")
        raw = _unquote(match.group("name").strip())
        attributes = frozenset(a.lower() for a in match.group("flags").decode(
            "ascii", "replace").split())
        found.append(SourceFolder(raw, decode_mutf7(raw), delimiter, attributes))
    return found


def _clean(part: str) -> str:
    part = _FORBIDDEN.sub("_", part.replace(SEPARATOR, "-")).strip()
    return "_" if part in ("", ".", "..") else part


def target_name(folder: SourceFolder) -> str:
    """Our name for ``folder`` (see the module docstring)."""
    for attribute in sorted(folder.attributes):
        if attribute in SPECIAL_USE:
            return SPECIAL_USE[attribute]
    delimiter = folder.delimiter
    parts = folder.name.split(delimiter) if delimiter else [folder.name]
    if parts[0].upper() == INBOX:
        if len(parts) == 1:
            return INBOX
        parts = parts[1:]  # "INBOX.Sent": a personal namespace under INBOX
    if len(parts) == 1 and parts[0].strip().casefold() in COMMON_NAMES:
        return COMMON_NAMES[parts[0].strip().casefold()]
    return SEPARATOR.join(_clean(part) for part in parts)


def plan(folders: list[SourceFolder]) -> list[tuple[SourceFolder, str]]:
    """``(source, target)`` of every folder to copy, INBOX first; two old folders that map
    to one name (``Sent`` and ``Sent Items``) both go into it."""
    pairs = [(folder, target_name(folder)) for folder in folders if folder.selectable]
    return sorted(pairs, key=lambda pair: (pair[1] != INBOX, pair[1], pair[0].name))
