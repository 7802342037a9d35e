"""Blocking operations on one user's Maildir. Callers hold the mailbox lock.

Invariants kept here:

* every file in a folder's ``new/`` or ``cur/`` has a uidlist record after a sync (files
  dropped in by other programs get the next UIDs, oldest first);
* ``maildirsize`` equals the sum of the sizes recorded in all uidlists; when that cannot
  be trusted (a uidlist had to be rebuilt) it is removed and recomputed on next use.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from mailward.store.interface import (
    INBOX,
    FolderExists,
    FolderHasChildren,
    FolderStatus,
    InvalidFolderName,
    MessageInfo,
    NoSuchFolder,
    NoSuchMessage,
    QuotaExceeded,
    Stored,
    StoreError,
)
from mailward.store.maildir import quota
from mailward.store.maildir.files import (
    DIR_MODE,
    atomic_write,
    ensure_folder_dirs,
    fsync_dir,
    size_from_base,
    split_name,
    unique_base,
    write_new_file,
)
from mailward.store.maildir.flags import (
    flags_to_letters,
    letters_to_flags,
    load_keywords,
    save_keywords,
)
from mailward.store.maildir.modseqs import ModseqLogs
from mailward.store.maildir.names import (
    folder_dirname,
    folder_from_dirname,
    is_inferior,
    superiors,
)
from mailward.store.maildir.summaries import SummaryLogs
from mailward.store.maildir.uidlist import (
    UIDLIST_FILE,
    Entry,
    FolderState,
    append_entries,
    peek_signature,
    read_uidlist,
    write_uidlist,
)

UIDVALIDITY_FILE = "mailward-uidvalidity"
TRASH_PREFIX = "..mailward-deleted."
STALE_TMP_SECONDS = 36 * 3600
_SEEN_LETTER = "S"
_DELETED_LETTER = "T"


class FolderCache:
    """A bounded, thread-safe LRU of folder states keyed by (Maildir, directory name)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: OrderedDict[tuple[str, str], FolderState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> FolderState | None:
        with self._lock:
            state = self._items.get(key)
            if state is not None:
                self._items.move_to_end(key)
            return state

    def put(self, key: tuple[str, str], state: FolderState) -> None:
        with self._lock:
            self._items[key] = state
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def drop_maildir(self, maildir: Path) -> None:
        prefix = str(maildir)
        with self._lock:
            for key in [k for k in self._items if k[0] == prefix]:
                del self._items[key]


class Maildir:
    """One mailbox's Maildir++ tree: folders, UID state, messages and usage."""

    def __init__(
        self,
        path: Path,
        mailbox: str,
        cache: FolderCache,
        summaries: SummaryLogs,
        modseqs: ModseqLogs | None = None,
    ) -> None:
        self.path = path
        self.mailbox = mailbox
        self._cache = cache
        self._summaries = summaries
        self.modseqs = modseqs if modseqs is not None else ModseqLogs()

    # -- folders -------------------------------------------------------------------

    def folder_dir(self, folder: str) -> Path:
        return self.path / folder_dirname(folder)

    def exists(self, folder: str) -> bool:
        return folder == INBOX or self.folder_dir(folder).is_dir()

    def require(self, folder: str) -> Path:
        if not self.exists(folder):
            raise NoSuchFolder(f"folder {folder!r} does not exist in {self.mailbox}")
        return self.folder_dir(folder)

    def list_folders(self) -> list[str]:
        """All folders, INBOX first; also finishes interrupted folder deletions."""
        found: list[str] = []
        with os.scandir(self.path) as entries:
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if entry.name.startswith(TRASH_PREFIX):
                    shutil.rmtree(entry.path, ignore_errors=True)
                elif (folder := folder_from_dirname(entry.name)) is not None:
                    found.append(folder)
        return [INBOX, *sorted(found)]

    def create(self, folder: str) -> None:
        if self.exists(folder):
            raise FolderExists(f"folder {folder!r} already exists in {self.mailbox}")
        for parent in superiors(folder):
            if not self.exists(parent):
                self._make_folder(parent)
        self._make_folder(folder)

    def _make_folder(self, folder: str) -> None:
        folder_dir = self.folder_dir(folder)
        folder_dir.mkdir(mode=DIR_MODE)
        fsync_dir(self.path)
        ensure_folder_dirs(folder_dir, subfolder=True)
        self.load(folder)

    def delete(self, folder: str) -> None:
        if folder == INBOX:
            raise InvalidFolderName("INBOX cannot be deleted")
        folder_dir = self.require(folder)
        children = [f for f in self.list_folders() if is_inferior(f, folder)]
        if children:
            raise FolderHasChildren(
                f"folder {folder!r} has sub-folders ({', '.join(children[:3])}); delete them first"
            )
        state = self.sync(folder)
        size = sum(entry.size for entry in state.entries.values())
        trash = self.path / f"{TRASH_PREFIX}{secrets.token_hex(6)}"
        os.rename(folder_dir, trash)
        fsync_dir(self.path)
        self._cache.drop_maildir(self.path)
        self.modseqs.drop_under(self.path)  # a new folder's log may reuse the inode
        quota.add_usage(self.path, -size, -len(state.entries))
        shutil.rmtree(trash, ignore_errors=True)

    def rename(self, folder: str, new_name: str) -> None:
        """Rename with inferiors; each renamed folder gets a new UIDVALIDITY."""
        if folder == INBOX:
            raise InvalidFolderName("renaming INBOX is not supported")
        if new_name == folder or is_inferior(new_name, folder):
            raise InvalidFolderName(f"cannot rename {folder!r} to {new_name!r} (under itself)")
        self.require(folder)
        if self.exists(new_name):
            raise FolderExists(f"folder {new_name!r} already exists in {self.mailbox}")
        moving = [folder, *(f for f in self.list_folders() if is_inferior(f, folder))]
        targets = {f: new_name + f[len(folder) :] for f in moving}
        clash = [t for t in targets.values() if self.exists(t)]
        if clash:
            raise FolderExists(f"folder {clash[0]!r} already exists in {self.mailbox}")
        for parent in superiors(new_name):
            if not self.exists(parent):
                self._make_folder(parent)
        self._cache.drop_maildir(self.path)
        self.modseqs.drop_under(self.path)
        for source, target in targets.items():
            os.rename(self.folder_dir(source), self.folder_dir(target))
            uidlist = self.folder_dir(target) / UIDLIST_FILE
            state = read_uidlist(uidlist)
            if state is not None:
                state.uidvalidity = self.next_uidvalidity()
                write_uidlist(uidlist, state)
        fsync_dir(self.path)

    def next_uidvalidity(self) -> int:
        """A UIDVALIDITY above every one this mailbox has handed out (time-based)."""
        path = self.path / UIDVALIDITY_FILE
        try:
            last = int(path.read_text("ascii").strip())
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            last = 0
        value = max(int(time.time()), last + 1)
        atomic_write(path, f"{value}\n".encode())
        return value

    # -- UID state -----------------------------------------------------------------

    def _key(self, folder: str) -> tuple[str, str]:
        return str(self.path), folder_dirname(folder)

    def load(self, folder: str) -> FolderState:
        """The folder's uidlist state (cached while unchanged), created if missing."""
        folder_dir = self.folder_dir(folder)
        path = folder_dir / UIDLIST_FILE
        key = self._key(folder)
        cached = self._cache.get(key)
        if cached is not None and peek_signature(path) == cached.signature():
            return cached
        state = read_uidlist(path)
        if state is None:
            state = FolderState(uidvalidity=self.next_uidvalidity(), uidnext=1)
            write_uidlist(path, state)
            if any(_message_names(folder_dir / sub) for sub in ("new", "cur")):
                quota.invalidate(self.path)  # those files get counted when recomputed
        self._cache.put(key, state)
        return state

    def sync(self, folder: str) -> FolderState:
        """Reconcile the uidlist with ``new/`` and ``cur/``; learn every file's name."""
        folder_dir = self.require(folder)
        ensure_folder_dirs(folder_dir, subfolder=folder != INBOX)
        state = self.load(folder)
        on_disk: dict[str, tuple[str, str]] = {}
        for sub in ("new", "cur"):
            for name in _message_names(folder_dir / sub):
                on_disk.setdefault(split_name(name)[0], (sub, name))
        gone: list[Entry] = []
        for entry in state.entries.values():
            found = on_disk.pop(entry.base, None)
            if found is None:
                gone.append(entry)
            else:
                entry.subdir, entry.name = found
        for entry in gone:
            del state.entries[entry.uid]
        added = self._new_entries(folder_dir, state, on_disk)
        if gone:  # removed behind our back (or an expunge was interrupted)
            self.modseqs.expunged(folder_dir, [e.uid for e in gone], set(state.entries))
        if added:
            self.modseqs.changed(folder_dir, [e.uid for e in added])
        uidlist = folder_dir / UIDLIST_FILE
        if gone or state.needs_rewrite:
            for entry in added:
                state.entries[entry.uid] = entry
            state.uidnext = max(state.uidnext, *(e.uid + 1 for e in added), 1)
            write_uidlist(uidlist, state)
        elif added:
            append_entries(uidlist, state, added)
        delta = sum(e.size for e in added) - sum(e.size for e in gone)
        quota.add_usage(self.path, delta, len(added) - len(gone))
        state.synced = True
        return state

    @staticmethod
    def _new_entries(
        folder_dir: Path, state: FolderState, unknown: dict[str, tuple[str, str]]
    ) -> list[Entry]:
        found: list[tuple[int, str, str, str, int]] = []
        for base, (sub, name) in unknown.items():
            try:
                st = os.stat(folder_dir / sub / name)
            except FileNotFoundError:
                continue
            size = size_from_base(base)
            found.append((int(st.st_mtime), base, sub, name, st.st_size if size is None else size))
        found.sort()
        return [
            Entry(uid=state.uidnext + i, base=base, size=size, mtime=mtime, subdir=sub, name=name)
            for i, (mtime, base, sub, name, size) in enumerate(found)
        ]

    def _entry(self, folder: str, uid: int, *, refresh: bool) -> Entry:
        self.require(folder)
        state = self.sync(folder) if refresh else self.load(folder)
        entry = state.entries.get(uid)
        if (entry is None or entry.name is None) and not refresh:
            entry = self.sync(folder).entries.get(uid)
        if entry is None or entry.name is None:
            raise NoSuchMessage(f"no message with UID {uid} in {folder!r}")
        return entry

    # -- messages ------------------------------------------------------------------

    def status(self, folder: str) -> FolderStatus:
        state = self.sync(folder)
        _remove_stale(self.folder_dir(folder) / "tmp")
        unseen = sum(
            1 for e in state.entries.values() if _SEEN_LETTER not in split_name(e.name or "")[1]
        )
        highest = self.modseqs.state(self.folder_dir(folder)).highest
        return FolderStatus(
            folder, state.uidvalidity, state.uidnext, len(state.entries), unseen, highest
        )

    def messages(self, folder: str) -> list[MessageInfo]:
        state = self.sync(folder)
        keywords = load_keywords(self.folder_dir(folder))
        modseqs = self.modseqs.state(self.folder_dir(folder)).uids
        shared: dict[str, frozenset[str]] = {}  # one flag set per distinct info string

        def flags(name: str | None) -> frozenset[str]:
            letters = split_name(name or "")[1]
            found = shared.get(letters)
            if found is None:
                found = shared[letters] = letters_to_flags(letters, keywords)
            return found

        return [
            MessageInfo(entry.uid, entry.size, flags(entry.name),
                        datetime.fromtimestamp(entry.mtime, UTC), modseqs.get(entry.uid, 1))
            for entry in state.entries.values()
        ]

    def locate(self, folder: str, uid: int, *, refresh: bool) -> Path:
        """The current path of a message's file."""
        entry = self._entry(folder, uid, refresh=refresh)
        return self.require(folder) / str(entry.subdir) / str(entry.name)

    def commit(
        self,
        folder: str,
        tmp: Path,
        mtime: float,
        flags: frozenset[str],
        quota_bytes: int | None,
        summary: bytes | None = None,
    ) -> Stored:
        """Move a fsync'd file from ``tmp/`` into the folder and give it a UID."""
        try:
            folder_dir = self.require(folder)
            size = size_from_base(tmp.name) or 0
            self.check_quota(size, quota_bytes)
            state = self.load(folder)
            sub, name = "new", tmp.name
            if flags:
                keywords = load_keywords(folder_dir)
                letters, grew = flags_to_letters(flags, keywords)
                if grew:
                    save_keywords(folder_dir, keywords)
                sub, name = "cur", f"{tmp.name}:2,{letters}"
            self.modseqs.changed(folder_dir, [state.uidnext])  # logged before it happens
            try:
                os.rename(tmp, folder_dir / sub / name)
            except FileNotFoundError:
                raise StoreError(f"{folder!r} of {self.mailbox} vanished during delivery") from None
            fsync_dir(folder_dir / sub)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        entry = Entry(state.uidnext, tmp.name, size, int(mtime), sub, name)
        append_entries(folder_dir / UIDLIST_FILE, state, [entry])
        quota.add_usage(self.path, size, 1)
        if summary is not None:
            with contextlib.suppress(OSError):  # a cache: made again on first listing
                self._summaries.append(folder_dir, {entry.base: summary})
        return Stored(folder=folder, uid=entry.uid, size=size, uidvalidity=state.uidvalidity)

    def check_quota(self, size: int, quota_bytes: int | None) -> None:
        if quota_bytes is None:
            return
        used = self.usage()
        if quota_bytes <= 0 or used + size > quota_bytes:
            raise QuotaExceeded(self.mailbox, used, size, quota_bytes)

    def set_flags_many(
        self, folder: str, wanted: dict[int, frozenset[str]], unchanged_since: int | None = None
    ) -> tuple[dict[int, frozenset[str]], list[int]]:
        """Several messages' flags under one modseq (one log record before the renames).

        With ``unchanged_since`` (RFC 7162 ``UNCHANGEDSINCE``) a message whose modseq is
        above it is left alone; returns the flags stored and those UIDs, ascending.
        """
        folder_dir = self.require(folder)
        modified: list[int] = []
        if unchanged_since is not None:
            current = self.modseqs.state(folder_dir)
            modified = sorted(uid for uid in wanted if current.modseq(uid) > unchanged_since)
            skip = set(modified)
            wanted = {uid: flags for uid, flags in wanted.items() if uid not in skip}
        state = self.load(folder)
        keywords = load_keywords(folder_dir)
        moving = set()
        for uid, flags in wanted.items():
            entry = state.entries.get(uid)
            if entry is None or entry.name is None:
                continue  # set_flags finds it (or not) and logs for itself
            letters = split_name(entry.name)[1]
            if entry.subdir != "cur" or letters_to_flags(letters, keywords) != flags:
                moving.add(uid)
        self.modseqs.changed(folder_dir, moving)  # logged before it happens
        done: dict[int, frozenset[str]] = {}
        for uid, flags in sorted(wanted.items()):
            with contextlib.suppress(NoSuchMessage):
                done[uid] = self.set_flags(folder, uid, flags, logged=moving)
        return done, modified

    def set_flags(
        self, folder: str, uid: int, flags: frozenset[str], *, logged: set[int] | None = None
    ) -> frozenset[str]:
        """Replace one message's flags; ``logged``: UIDs whose change is already in the
        modseq log (see :meth:`set_flags_many`)."""
        folder_dir = self.require(folder)
        for refresh in (False, True):
            entry = self._entry(folder, uid, refresh=refresh)
            keywords = load_keywords(folder_dir)
            letters, grew = flags_to_letters(flags, keywords, split_name(str(entry.name))[1])
            if grew:
                save_keywords(folder_dir, keywords)
            new_name = f"{entry.base}:2,{letters}"
            if (entry.subdir, entry.name) != ("cur", new_name):
                if logged is None or uid not in logged:
                    self.modseqs.changed(folder_dir, [uid])  # logged before it happens
                try:
                    os.rename(
                        folder_dir / str(entry.subdir) / str(entry.name),
                        folder_dir / "cur" / new_name,
                    )
                except FileNotFoundError:
                    continue  # renamed or removed by another program: look again
                entry.subdir, entry.name = "cur", new_name
            return letters_to_flags(letters, keywords)
        raise NoSuchMessage(f"no message with UID {uid} in {folder!r}")

    def expunge(self, folder: str, uids: Iterable[int] | None) -> list[int]:
        folder_dir = self.require(folder)
        state = self.sync(folder)
        wanted = None if uids is None else set(uids)
        doomed = [
            entry
            for entry in state.entries.values()
            if (wanted is None or entry.uid in wanted)
            and _DELETED_LETTER in split_name(str(entry.name))[1]
        ]
        if not doomed:
            return []
        for sub in {str(entry.subdir) for entry in doomed}:
            for entry in (e for e in doomed if e.subdir == sub):
                (folder_dir / sub / str(entry.name)).unlink(missing_ok=True)
            fsync_dir(folder_dir / sub)
        for entry in doomed:
            del state.entries[entry.uid]
        self.modseqs.expunged(folder_dir, [e.uid for e in doomed], set(state.entries))
        write_uidlist(folder_dir / UIDLIST_FILE, state)
        quota.add_usage(self.path, -sum(e.size for e in doomed), -len(doomed))
        self._compact(folder_dir, state)
        return [entry.uid for entry in doomed]

    def _compact(self, folder_dir: Path, state: FolderState) -> None:
        with contextlib.suppress(OSError):
            self._summaries.compact(folder_dir, {e.base for e in state.entries.values()})

    # -- summaries -----------------------------------------------------------------

    def summaries(self, folder: str, uids: list[int]) -> tuple[dict[int, bytes], list[int]]:
        """The kept packed summaries of those messages, and the UIDs that have none."""
        folder_dir = self.require(folder)
        state = self.load(folder)
        if any(uid not in state.entries for uid in uids):
            state = self.sync(folder)
        bases = {state.entries[uid].base: uid for uid in uids if uid in state.entries}
        kept = self._summaries.read(folder_dir, bases)
        found = {bases[base]: value for base, value in kept.items()}
        return found, [uid for uid in bases.values() if uid not in found]

    def keep_summaries(self, folder: str, made: dict[int, bytes]) -> None:
        """Keep summaries made from the bytes (of messages still there)."""
        folder_dir = self.require(folder)
        state = self.load(folder)
        records = {state.entries[uid].base: v for uid, v in made.items() if uid in state.entries}
        self._summaries.append(folder_dir, records)

    def transfer(
        self,
        folder: str,
        uids: Iterable[int],
        target: str,
        *,
        move: bool,
        quota_bytes: int | None = None,
    ) -> dict[int, int]:
        """Copy (hard link) or move messages to ``target``; return old UID → new UID."""
        source_dir = self.require(folder)
        target_dir = self.require(target)
        source = self.sync(folder)
        chosen = [source.entries[uid] for uid in sorted(set(uids)) if uid in source.entries]
        if not chosen:
            return {}
        if not move:
            self.check_quota(sum(entry.size for entry in chosen), quota_bytes)
        same = target == folder
        dest = source if same else self.load(target)
        source_keywords = load_keywords(source_dir)
        target_keywords = source_keywords if same else load_keywords(target_dir)
        plans: list[tuple[Entry, str]] = []
        grew_any = False
        for entry in chosen:
            old_letters = split_name(str(entry.name))[1]
            flags = letters_to_flags(old_letters, source_keywords)
            keep = "".join(ch for ch in old_letters if ch.isupper())
            letters, grew = flags_to_letters(flags, target_keywords, keep)
            grew_any |= grew
            plans.append((entry, letters))
        if grew_any:
            save_keywords(target_dir, target_keywords)
        added: list[Entry] = []
        mapping: dict[int, int] = {}
        renamed: dict[str, str] = {}  # old base -> new base
        for entry, letters in plans:
            base = unique_base(entry.size)
            name = f"{base}:2,{letters}"
            origin = source_dir / str(entry.subdir) / str(entry.name)
            try:
                if move:
                    os.rename(origin, target_dir / "cur" / name)
                else:
                    _link_or_copy(origin, target_dir / "cur" / name, target_dir / "tmp" / base)
            except FileNotFoundError:
                continue  # removed by another program meanwhile
            uid = dest.uidnext + len(added)
            added.append(Entry(uid, base, entry.size, entry.mtime, "cur", name))
            mapping[entry.uid] = uid
            renamed[entry.base] = base
        fsync_dir(target_dir / "cur")
        self.modseqs.changed(target_dir, [e.uid for e in added])
        append_entries(target_dir / UIDLIST_FILE, dest, added)
        with contextlib.suppress(OSError):
            self._summaries.copy(source_dir, target_dir, renamed)
        if move:
            for sub in {str(entry.subdir) for entry, _ in plans}:
                fsync_dir(source_dir / sub)
            for old_uid in mapping:
                del source.entries[old_uid]
            self.modseqs.expunged(source_dir, mapping, set(source.entries))
            write_uidlist(source_dir / UIDLIST_FILE, source)
            self._compact(source_dir, source)
        else:
            quota.add_usage(self.path, sum(e.size for e in added), len(added))
        return mapping

    # -- usage ---------------------------------------------------------------------

    def usage(self) -> int:
        """Bytes used; recomputed from all folders when ``maildirsize`` is unusable."""
        recorded = quota.read_usage(self.path)
        if recorded is not None:
            return recorded[0]
        total = count = 0
        for folder in self.list_folders():
            state = self.sync(folder)
            total += sum(entry.size for entry in state.entries.values())
            count += len(state.entries)
        quota.write_usage(self.path, total, count)
        return total


def _message_names(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [n for n in names if not n.startswith(".") and "\n" not in n]


def _remove_stale(tmp_dir: Path) -> None:
    """Delete files left in ``tmp/`` for 36 hours, as the Maildir spec allows.

    Judged by ctime: a delivery sets the mtime of its tmp file to the internal date.
    """
    cutoff = time.time() - STALE_TMP_SECONDS
    try:
        with os.scandir(tmp_dir) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False) and entry.stat().st_ctime < cutoff:
                        os.unlink(entry.path)
                except FileNotFoundError:
                    continue
    except FileNotFoundError:
        return


def _link_or_copy(origin: Path, target: Path, tmp: Path) -> None:
    """Hard-link ``origin`` as ``target``; copy via ``tmp`` where links do not work."""
    try:
        os.link(origin, target)
        return
    except FileNotFoundError:
        raise
    except OSError:
        pass
    data = origin.read_bytes()
    mtime = os.stat(origin).st_mtime
    write_new_file(tmp, data, mtime)
    os.rename(tmp, target)
