"""The per-folder ``mailward-modseq`` log: RFC 7162 mod-sequences of a Maildir folder.

Format (text, one record a line)::

    mailward-modseq 1
    H<highest>             (only after a rewrite: the highest modseq handed out)
    F<floor>               (only once expunged UIDs were pruned, see store.modseq)
    <modseq> <uid-set>     the messages changed (delivered, flagged, copied in) at modseq
    <modseq> -<uid-set>    the messages expunged at modseq

Records are *appended* and fsync'd under the mailbox lock, *before* the change they
describe is made (the file rename of a flag change or a delivery): a crash in between
leaves a change announced that did not happen (harmless: the client fetches the same
flags again), never one that happened unannounced. Expunges are recorded after the files
are unlinked but before the uidlist forgets them; files that vanish otherwise are recorded
when a sync notices (``Maildir.sync``). A UID's last record wins; a message without one
has modseq 1. The folder's HIGHESTMODSEQ is the largest modseq in the file.

The log is rewritten atomically (live UIDs' last records, the bounded expunged groups)
once it holds many more records than that. A torn last line (no newline) is ignored, and
dropped by such a rewrite before the next append.
Parsed states are cached per file (identity and size): only appended bytes are read.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mailward.store.maildir.files import FILE_MODE, atomic_write
from mailward.store.modseq import Vanished, parse_ranges, uid_ranges

MODSEQ_FILE = "mailward-modseq"
MAGIC = b"mailward-modseq 1\n"
COMPACT_SLACK = 1000  # records beyond the live ones before a rewrite


@dataclass(slots=True)
class ModState:
    """A folder's mod-sequences as read from its log."""

    identity: tuple[int, int] = (0, 0)
    size: int = 0  # bytes of the file parsed
    highest: int = 1
    uids: dict[int, int] = field(default_factory=dict)
    vanished: Vanished = field(default_factory=Vanished)
    records: int = 0
    torn: bool = False  # the file ends inside a record (a crash while appending)

    def modseq(self, uid: int) -> int:
        return self.uids.get(uid, 1)


class ModseqLogs:
    """A bounded, thread-safe LRU of parsed folder logs keyed by folder directory."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._items: OrderedDict[str, ModState] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, key: str) -> ModState | None:
        with self._lock:
            state = self._items.get(key)
            if state is not None:
                self._items.move_to_end(key)
            return state

    def _put(self, key: str, state: ModState) -> None:
        with self._lock:
            self._items[key] = state
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def drop_under(self, directory: Path) -> None:
        prefix = str(directory)
        with self._lock:
            for key in [k for k in self._items if k.startswith(prefix)]:
                del self._items[key]

    # -- reading (caller holds the mailbox lock) -------------------------------------

    def state(self, folder_dir: Path) -> ModState:
        """The folder's current mod-sequences (an empty state if it has no log)."""
        path = folder_dir / MODSEQ_FILE
        try:
            handle = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return ModState()
        with handle:
            st = os.fstat(handle.fileno())
            identity = (st.st_dev, st.st_ino)
            state = self._get(str(path))
            if state is None or state.identity != identity or st.st_size < state.size:
                state = ModState(identity=identity)
            if st.st_size > state.size:
                handle.seek(state.size)
                _scan(state, handle.read(st.st_size - state.size))
            state.torn = st.st_size > state.size
            self._put(str(path), state)
        return state

    def _writable(self, folder_dir: Path) -> ModState:
        """The state to append to: a torn last record is first dropped by a rewrite (an
        append after it would complete it into a record that was never meant)."""
        state = self.state(folder_dir)
        if state.torn:
            self.rewrite(folder_dir, state, None)
            state = self.state(folder_dir)
        return state

    # -- writing (caller holds the mailbox lock) -------------------------------------

    def changed(self, folder_dir: Path, uids: Iterable[int]) -> int:
        """Give ``uids`` the folder's next modseq (logged durably first); return it."""
        chosen = sorted(set(uids))
        state = self._writable(folder_dir)
        if not chosen:
            return state.highest
        modseq = state.highest + 1
        self._append(folder_dir, state, f"{modseq} {uid_ranges(chosen)}\n")
        for uid in chosen:
            state.uids[uid] = modseq
        state.highest = modseq
        if state.records > 2 * (len(state.uids) + len(state.vanished.groups)) + COMPACT_SLACK:
            self.rewrite(folder_dir, state, None)  # flag changes only: keep every UID's last
        return modseq

    def expunged(self, folder_dir: Path, uids: Iterable[int], live: set[int]) -> int:
        """Record ``uids`` as expunged at the folder's next modseq; return it."""
        chosen = sorted(set(uids))
        state = self._writable(folder_dir)
        if not chosen:
            return state.highest
        modseq = state.highest + 1
        self._append(folder_dir, state, f"{modseq} -{uid_ranges(chosen)}\n")
        for uid in chosen:
            state.uids.pop(uid, None)
        state.vanished.add(modseq, chosen)
        state.highest = modseq
        if state.records > 2 * (len(live) + len(state.vanished.groups)) + COMPACT_SLACK:
            self.rewrite(folder_dir, state, live)
        return modseq

    def _append(self, folder_dir: Path, state: ModState, line: str) -> None:
        path = folder_dir / MODSEQ_FILE
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            st = os.fstat(fd)
            data = (MAGIC if st.st_size == 0 else b"") + line.encode("ascii")
            if st.st_size != state.size or (st.st_dev, st.st_ino) != state.identity:
                state.size = -1  # not what was parsed: parse afresh next time
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        state.records += 1
        if state.size <= 0:
            self._put(str(path), ModState())  # parse afresh next time
        else:
            state.size += len(data)

    def rewrite(self, folder_dir: Path, state: ModState, live: set[int] | None) -> None:
        """Replace the log atomically by the last records of ``live`` UIDs (all if
        ``None``), the kept expunged groups, the floor and the highest modseq."""
        by_modseq: dict[int, list[int]] = {}
        for uid, modseq in state.uids.items():
            if live is None or uid in live:
                by_modseq.setdefault(modseq, []).append(uid)
        lines = [f"H{state.highest}\n"]
        if state.vanished.floor:
            lines.append(f"F{state.vanished.floor}\n")
        lines += [f"{seq} {uid_ranges(uids)}\n" for seq, uids in sorted(by_modseq.items())]
        lines += [f"{seq} -{uid_ranges(uids)}\n" for seq, uids in state.vanished.groups]
        path = folder_dir / MODSEQ_FILE
        atomic_write(path, MAGIC + "".join(lines).encode("ascii"))
        with self._lock:
            self._items.pop(str(path), None)


def _scan(state: ModState, data: bytes) -> None:
    """Apply the complete lines of ``data`` (read from ``state.size`` on)."""
    pos = 0
    if state.size == 0:
        if not data.startswith(MAGIC):
            end = data.find(b"\n")
            if end < 0:
                return  # a torn header: nothing recorded yet
            pos = end + 1  # an unknown header: read the records all the same
        else:
            pos = len(MAGIC)
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            break
        _apply(state, data[pos:end].decode("ascii", "replace"))
        pos = end + 1
    state.size += pos


def _apply(state: ModState, line: str) -> None:
    state.records += 1
    try:
        if line.startswith("H"):
            state.highest = max(state.highest, int(line[1:]))
            return
        if line.startswith("F"):
            state.vanished.floor = max(state.vanished.floor, int(line[1:]))
            return
        seq_text, _, ranges = line.partition(" ")
        modseq = int(seq_text)
        if ranges.startswith("-"):
            gone = parse_ranges(ranges[1:])
            for uid in gone:
                state.uids.pop(uid, None)
            state.vanished.add(modseq, gone)
        else:
            for uid in parse_ranges(ranges):
                state.uids[uid] = modseq
        state.highest = max(state.highest, modseq)
    except ValueError:
        # A damaged record: its changes are unknown, so nothing older can be trusted.
        state.vanished.floor = max(state.vanished.floor, state.highest)
