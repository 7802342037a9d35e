"""The per-folder ``mailward-summaries`` log: each message's packed summary
(:mod:`mailward.store.summary`) keyed by its unique Maildir base name.

Format: a first line ``mailward-summaries 1``, then records
``<base> <length> <crc32 hex>\\n<packed summary>``. Records are only *appended* (under
the mailbox ``flock``, so several processes may write); a base's last record wins. The
file is rewritten atomically, keeping only the live messages, when dead records
outnumber live ones. Appends are not fsync'd: this is a cache. A reader stops at the
first damaged or torn record, and the log is then rewritten from the records before it;
a summary that is missing is made again from the message.

An index (base → offset, length, crc) per folder is kept in memory and brought up to
date by reading only what was appended since; values are read on demand and checked
against their crc, so a stale index can never yield another message's summary.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mailward.store.maildir.files import FILE_MODE, atomic_write

SUMMARIES_FILE = "mailward-summaries"
MAGIC = b"mailward-summaries 1\n"
_MAX_HEADER = 1024


@dataclass(slots=True)
class _Index:
    identity: tuple[int, int]  # st_dev, st_ino of the file indexed
    size: int  # bytes read so far
    where: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    damaged: bool = False


class SummaryLogs:
    """A bounded, thread-safe LRU of folder summary indexes keyed by folder directory."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._items: OrderedDict[str, _Index] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, key: str) -> _Index | None:
        with self._lock:
            index = self._items.get(key)
            if index is not None:
                self._items.move_to_end(key)
            return index

    def _put(self, key: str, index: _Index) -> None:
        with self._lock:
            self._items[key] = index
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def _drop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def drop_under(self, directory: Path) -> None:
        prefix = str(directory)
        with self._lock:
            for key in [k for k in self._items if k.startswith(prefix)]:
                del self._items[key]

    # -- reading (caller holds the mailbox lock) -------------------------------------

    def _index(self, folder_dir: Path) -> _Index:
        """The up-to-date index of a folder's log (empty if it has none)."""
        path = folder_dir / SUMMARIES_FILE
        key = str(path)
        try:
            handle = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return _Index(identity=(0, 0), size=0)
        with handle:
            st = os.fstat(handle.fileno())
            index = self._get(key)
            if index is None or index.identity != (st.st_dev, st.st_ino) or st.st_size < index.size:
                index = _Index(identity=(st.st_dev, st.st_ino), size=0)
            if st.st_size > index.size and not index.damaged:
                handle.seek(index.size)
                _scan(index, handle.read(st.st_size - index.size))
            self._put(key, index)
        if index.damaged:
            self.rewrite(folder_dir, set(index.where))
            return self._index(folder_dir)
        return index

    def read(self, folder_dir: Path, bases: Iterable[str]) -> dict[str, bytes]:
        """The packed summaries kept for those bases (bases without one are left out)."""
        return _values(folder_dir / SUMMARIES_FILE, self._index(folder_dir), bases)

    # -- writing (caller holds the mailbox lock) -------------------------------------

    def append(self, folder_dir: Path, records: dict[str, bytes]) -> None:
        """Append packed summaries by base (the file is created when missing)."""
        if not records:
            return
        index = self._index(folder_dir)
        path = folder_dir / SUMMARIES_FILE
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            st = os.fstat(fd)
            start = st.st_size
            data = bytearray(MAGIC if start == 0 else b"")
            for base, value in records.items():
                data += _record(base, value)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        if start == 0 or index.identity != (st.st_dev, st.st_ino):
            self._drop(str(path))  # re-read from scratch next time
        # Otherwise the next _index() reads just what was appended.

    def copy(self, source_dir: Path, target_dir: Path, renamed: dict[str, str]) -> None:
        """Give the copies (old base → new base) the summaries of their originals."""
        values = self.read(source_dir, renamed)
        self.append(target_dir, {renamed[base]: value for base, value in values.items()})

    def compact(self, folder_dir: Path, live: set[str]) -> None:
        """Rewrite the log without dead records once they outnumber the live ones."""
        index = self._index(folder_dir)
        dead = sum(1 for base in index.where if base not in live)
        if dead > max(len(live), 64):
            self.rewrite(folder_dir, live)

    def rewrite(self, folder_dir: Path, keep: set[str]) -> None:
        """Replace the log atomically by the readable records of ``keep``."""
        path = folder_dir / SUMMARIES_FILE
        index = self._get(str(path))
        values = {} if index is None else _values(path, index, keep)
        data = MAGIC + b"".join(_record(base, value) for base, value in values.items())
        atomic_write(path, data)
        self._drop(str(path))


def _values(path: Path, index: _Index, bases: Iterable[str]) -> dict[str, bytes]:
    """The values ``index`` locates for those bases that pass their crc check."""
    wanted = [(base, index.where[base]) for base in bases if base in index.where]
    if not wanted:
        return {}
    found: dict[str, bytes] = {}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return {}
    try:
        for base, (offset, length, crc) in wanted:
            value = os.pread(fd, length, offset)
            if len(value) == length and zlib.crc32(value) == crc:
                found[base] = value
    finally:
        os.close(fd)
    return found


def _record(base: str, value: bytes) -> bytes:
    head = f"{base} {len(value)} {zlib.crc32(value):08x}\n".encode("utf-8", "surrogateescape")
    return head + value


def _scan(index: _Index, data: bytes) -> None:
    """Index the records in ``data`` (read from ``index.size`` on); stop at damage."""
    pos = 0
    if index.size == 0:
        if not data.startswith(MAGIC):
            index.damaged = True
            return
        pos = len(MAGIC)
    while pos < len(data):
        end = data.find(b"\n", pos, pos + _MAX_HEADER)
        if end < 0:
            index.damaged = True
            return
        parts = data[pos:end].split(b" ")
        if len(parts) != 3 or not parts[1].isdigit() or len(parts[2]) != 8:
            index.damaged = True
            return
        try:
            crc = int(parts[2], 16)
        except ValueError:
            index.damaged = True
            return
        length = int(parts[1])
        start = end + 1
        if start + length > len(data) or zlib.crc32(data[start : start + length]) != crc:
            index.damaged = True
            return
        base = parts[0].decode("utf-8", "surrogateescape")
        index.where[base] = (index.size + start, length, crc)
        pos = start + length
    index.size += pos
