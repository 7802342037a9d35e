"""The per-folder ``mailward-uidlist``: UIDVALIDITY, UIDNEXT and UID → file base name.

Format (text, one record a line)::

    mailward-uidlist 1 V<uidvalidity> N<uidnext> G<generation>
    <uid> <size> <mtime> <base name>
    ...

Deliveries *append* records (fsync'd); removals *rewrite* the file atomically with a
new random generation. UIDNEXT is ``max(N, last uid + 1)``, so appends never need to
touch the header. A reader that finds a torn last line (no newline) ignores it and
marks the state for a rewrite. A cached state is still valid while the file's
generation and size are unchanged.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from mailward.store.maildir.files import FILE_MODE, atomic_write

UIDLIST_FILE = "mailward-uidlist"
MAGIC = "mailward-uidlist 1"


@dataclass(slots=True)
class Entry:
    """A message known to the uidlist; ``subdir``/``name`` are known once synced."""

    uid: int
    base: str
    size: int
    mtime: int
    subdir: str | None = None
    name: str | None = None


@dataclass(slots=True)
class FolderState:
    """A folder's UID state as loaded from (and kept equal to) its uidlist."""

    uidvalidity: int
    uidnext: int
    entries: dict[int, Entry] = field(default_factory=dict)
    generation: str = ""
    file_size: int = -1
    needs_rewrite: bool = False
    synced: bool = False

    def signature(self) -> tuple[str, int]:
        return self.generation, self.file_size


def peek_signature(path: Path) -> tuple[str, int] | None:
    """``(generation, size)`` of a uidlist from its header, or ``None`` if unreadable."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            header = handle.readline(256).decode("ascii", errors="replace")
    except FileNotFoundError:
        return None
    fields = _header_fields(header)
    return (fields["G"], size) if fields else None


def _header_fields(header: str) -> dict[str, str] | None:
    if not header.startswith(MAGIC + " ") or not header.endswith("\n"):
        return None
    fields = {word[:1]: word[1:] for word in header[len(MAGIC) :].split()}
    if not fields.get("V", "").isdigit() or not fields.get("N", "").isdigit():
        return None
    fields.setdefault("G", "")
    return fields


def read_uidlist(path: Path) -> FolderState | None:
    """Parse a uidlist; ``None`` if it is missing or corrupt (UIDs must be reassigned)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    text = data.decode("utf-8", errors="surrogateescape")
    lines = text.split("\n")
    fields = _header_fields(lines[0] + "\n") if len(lines) > 1 else None
    if fields is None:
        return None
    torn = lines[-1] != ""
    state = FolderState(
        uidvalidity=int(fields["V"]),
        uidnext=int(fields["N"]),
        generation=fields["G"],
        file_size=len(data),
        needs_rewrite=torn,
    )
    last = 0
    for line in lines[1:-1]:
        entry = _parse_entry(line)
        if entry is None or entry.uid <= last:
            return None
        state.entries[entry.uid] = entry
        last = entry.uid
    state.uidnext = max(state.uidnext, last + 1)
    if state.uidvalidity <= 0:
        return None
    return state


def _parse_entry(line: str) -> Entry | None:
    parts = line.split(" ", 3)
    if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]) or not parts[3]:
        return None
    uid, size, mtime = (int(p) for p in parts[:3])
    return Entry(uid=uid, base=parts[3], size=size, mtime=mtime) if uid > 0 else None


def _record(entry: Entry) -> str:
    return f"{entry.uid} {entry.size} {entry.mtime} {entry.base}\n"


def write_uidlist(path: Path, state: FolderState) -> None:
    """Rewrite the uidlist from ``state`` atomically, with a new generation."""
    state.generation = secrets.token_hex(8)
    header = f"{MAGIC} V{state.uidvalidity} N{state.uidnext} G{state.generation}\n"
    body = "".join(_record(entry) for entry in state.entries.values())
    data = (header + body).encode("utf-8", errors="surrogateescape")
    atomic_write(path, data)
    state.file_size = len(data)
    state.needs_rewrite = False


def append_entries(path: Path, state: FolderState, entries: list[Entry]) -> None:
    """Record new ``entries`` (UIDs above all existing ones) in file and state."""
    for entry in entries:
        state.entries[entry.uid] = entry
        state.uidnext = max(state.uidnext, entry.uid + 1)
    if state.needs_rewrite or state.file_size < 0:
        write_uidlist(path, state)
        return
    data = "".join(_record(entry) for entry in entries).encode("utf-8", "surrogateescape")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    state.file_size += len(data)
