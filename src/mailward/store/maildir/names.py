"""Mailbox and folder names: validation and their on-disk (Maildir++) directory names.

A mailbox ``local@domain`` lives in ``<root>/<domain>/<local>/Maildir``. The domain must
be an ASCII (IDNA A-label) host name; the local part may be UTF-8 but never contains a
path separator, a control character or a leading dot, so no name can leave the root.

Folder ``"Archive/2024"`` is the directory ``.Archive.2024`` (Maildir++, as Dovecot lays
it out). Each hierarchy level is escaped the way Dovecot's *listescape* plugin does
(``.`` → ``\\2e``, ``\\`` → ``\\5c``, a leading ``~`` → ``\\7e``) and then encoded in IMAP
modified UTF-7 (RFC 3501 §5.1.3), as Dovecot stores non-ASCII names. So ``"v1.2"`` is
``.v1\\2e2`` and ``"Entwürfe"`` is ``.Entw&APw-rfe``. Only directories whose name is the
exact (canonical) encoding of a valid folder are listed as folders.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Iterable

from mailward.store.interface import INBOX, SEPARATOR, InvalidFolderName, InvalidMailbox

MAX_LOCAL_OCTETS = 64
MAX_DIRNAME_OCTETS = 255
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_LOCAL_FORBIDDEN = frozenset('/\\"@ ')
_FOLDER_FORBIDDEN = frozenset("*%")  # IMAP LIST wildcards
_UNESCAPE_RE = re.compile(r"\\([0-9a-f]{2})")


def split_mailbox(mailbox: str) -> tuple[str, str]:
    """Return ``(local, domain)`` of a valid lower-case address or raise ``InvalidMailbox``."""
    if not isinstance(mailbox, str) or mailbox.count("@") != 1:
        raise InvalidMailbox(f"mailbox {mailbox!r} is not an address of the form local@domain")
    local, domain = mailbox.split("@")
    if mailbox != mailbox.lower():
        raise InvalidMailbox(f"mailbox {mailbox!r} must be lower-case")
    if len(domain) > 253 or not _DOMAIN_RE.fullmatch(domain):
        raise InvalidMailbox(f"mailbox {mailbox!r} has an invalid domain")
    if not local or local.startswith(".") or len(local.encode()) > MAX_LOCAL_OCTETS:
        raise InvalidMailbox(f"mailbox {mailbox!r} has an invalid local part")
    if any(ch in _LOCAL_FORBIDDEN or _is_control(ch) for ch in local):
        raise InvalidMailbox(f"mailbox {mailbox!r} has a forbidden character in its local part")
    return local, domain


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cs")


def normalize_folder(name: str) -> str:
    """Return the canonical folder name (``INBOX`` upper-cased) or raise.

    Refused: empty names or levels (leading, trailing or doubled ``/``), ``.`` and
    ``..`` levels, control characters, ``*`` and ``%``, and names whose directory
    name would exceed 255 bytes.
    """
    if not isinstance(name, str) or not name:
        raise InvalidFolderName("folder name is empty")
    parts = name.split(SEPARATOR)
    if any(not part for part in parts):
        raise InvalidFolderName(f"folder name {name!r} has an empty level")
    if any(part in (".", "..") for part in parts):
        raise InvalidFolderName(f"folder name {name!r} has a '.' or '..' level")
    for ch in name:
        if _is_control(ch) or ch in _FOLDER_FORBIDDEN:
            raise InvalidFolderName(f"folder name {name!r} contains the forbidden {ch!r}")
    if parts[0].upper() == INBOX:
        parts[0] = INBOX
    canonical = SEPARATOR.join(parts)
    if canonical != INBOX and len(_encode(parts).encode()) > MAX_DIRNAME_OCTETS:
        raise InvalidFolderName(f"folder name {name[:40]!r}... is too long")
    return canonical


def folder_dirname(folder: str) -> str:
    """Directory name (relative to the Maildir) of a canonical folder; ``""`` for INBOX."""
    if folder == INBOX:
        return ""
    return _encode(folder.split(SEPARATOR))


def folder_from_dirname(dirname: str) -> str | None:
    """The folder a Maildir++ directory holds, or ``None`` if it is not a canonical one."""
    if not dirname.startswith(".") or dirname.startswith(".."):
        return None
    try:
        parts = [_unescape(mutf7_decode(level)) for level in dirname[1:].split(".")]
        folder = normalize_folder(SEPARATOR.join(parts))
    except (ValueError, InvalidFolderName):
        return None
    if folder == INBOX or folder_dirname(folder) != dirname:
        return None
    return folder


def is_inferior(folder: str, parent: str) -> bool:
    """Whether ``folder`` lies strictly below ``parent`` in the hierarchy."""
    return folder.startswith(parent + SEPARATOR)


def superiors(folder: str) -> list[str]:
    """The folder's ancestors, outermost first (``"a/b/c"`` → ``["a", "a/b"]``)."""
    parts = folder.split(SEPARATOR)
    return [SEPARATOR.join(parts[:i]) for i in range(1, len(parts))]


def renamed(folder: str, old: str, new: str) -> str | None:
    """``folder``'s name after ``old`` (with its inferiors) became ``new``; ``None`` if
    the rename does not touch it."""
    if folder == old or is_inferior(folder, old):
        return new + folder[len(old) :]
    return None


def inbox_first(names: Iterable[str]) -> list[str]:
    """Distinct names sorted, ``INBOX`` first if present."""
    return sorted(set(names), key=lambda name: (name != INBOX, name))


def _encode(parts: list[str]) -> str:
    return "." + ".".join(mutf7_encode(_escape(part)) for part in parts)


def _escape(level: str) -> str:
    text = level.replace("\\", "\\5c").replace(".", "\\2e")
    return "\\7e" + text[1:] if text.startswith("~") else text


def _unescape(level: str) -> str:
    return _UNESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), level)


def mutf7_encode(text: str) -> str:
    """Encode text in IMAP modified UTF-7."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(text: str) -> str:
    """Decode IMAP modified UTF-7; raise ``ValueError`` on malformed input."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise ValueError(f"raw non-ASCII character {ch!r} in modified UTF-7")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise ValueError("unterminated modified UTF-7 shift sequence")
        chunk = text[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            raw = base64.b64decode(padded, validate=True)
            if len(raw) % 2:
                raise ValueError("modified UTF-7 shift sequence has an odd byte count")
            out.append(raw.decode("utf-16-be"))
        i = end + 1
    return "".join(out)
