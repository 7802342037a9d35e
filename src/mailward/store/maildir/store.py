"""``MaildirStore``: the :class:`~mailward.store.interface.MailStore` on Maildir++ files.

Layout (readable by Dovecot with ``mail_location = maildir:~/Maildir``, separator
``/`` and the listescape plugin for names containing dots)::

    <root>/<domain>/<local>/Maildir/{cur,new,tmp}         INBOX
    <root>/<domain>/<local>/Maildir/.Archive.2024/...     folder "Archive/2024"
    .../Maildir/maildirsize                               Maildir++ usage
    .../Maildir/mailward-uidvalidity, mailward-lock       ours
    .../Maildir/subscriptions                             IMAP subscriptions
    .../<folder>/mailward-uidlist, dovecot-keywords       per folder
    .../<folder>/mailward-modseq                          RFC 7162 mod-sequences

All file work runs in worker threads (``asyncio.to_thread``). Work on one mailbox is
serialised by an ``asyncio.Lock`` in this process and an ``flock`` on
``mailward-lock`` across processes; a delivery writes and fsyncs its file in ``tmp/``
before taking the lock, so deliveries to one mailbox overlap their slow part.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar
from weakref import WeakValueDictionary

from mailward.store.interface import (
    INBOX,
    FolderStatus,
    InvalidMailbox,
    MessageInfo,
    NoSuchFolder,
    NoSuchMessage,
    Stored,
    StoreError,
    Summary,
)
from mailward.store.maildir import subscriptions as subs
from mailward.store.maildir.files import (
    ensure_folder_dirs,
    fsync_dir,
    mailbox_lock,
    unique_base,
    write_new_file,
)
from mailward.store.maildir.flags import normalize_flags
from mailward.store.maildir.mailbox import TRASH_PREFIX, FolderCache, Maildir
from mailward.store.maildir.modseqs import ModseqLogs
from mailward.store.maildir.names import folder_dirname, normalize_folder, split_mailbox
from mailward.store.maildir.summaries import SummaryLogs
from mailward.store.summary import pack, summarize, unpack

T = TypeVar("T")
FETCH_ATTEMPTS = 3


class MaildirStore:
    """Mailboxes as Maildir++ directories under ``root`` (see the module docstring)."""

    def __init__(self, root: Path, *, cached_folders: int = 1024) -> None:
        self.root = Path(root)
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()
        self._cache = FolderCache(cached_folders)
        self._summaries = SummaryLogs()
        self._modseqs = ModseqLogs()

    def maildir_path(self, mailbox: str) -> Path:
        """The Maildir of a mailbox; raises ``InvalidMailbox`` for unsafe names."""
        local, domain = split_mailbox(mailbox)
        path = self.root / domain / local / "Maildir"
        root = os.path.normpath(self.root)
        if os.path.commonpath([root, os.path.normpath(path)]) != root:  # defence in depth
            raise InvalidMailbox(f"mailbox {mailbox!r} would be stored outside the root")
        return path

    def _lock(self, mailbox: str) -> asyncio.Lock:
        lock = self._locks.get(mailbox)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[mailbox] = lock
        return lock

    async def _run(self, mailbox: str, work: Callable[[Maildir], T]) -> T:
        path = self.maildir_path(mailbox)
        async with self._lock(mailbox):
            return await asyncio.to_thread(self._locked, path, mailbox, work)

    def _locked(self, path: Path, mailbox: str, work: Callable[[Maildir], T]) -> T:
        with mailbox_lock(path):
            try:
                return work(Maildir(path, mailbox, self._cache, self._summaries, self._modseqs))
            except StoreError:
                raise
            except BaseException:
                self._cache.drop_maildir(path)  # a failed write may have left it ahead of disk
                self._summaries.drop_under(path)
                self._modseqs.drop_under(path)
                raise

    # -- delivery ------------------------------------------------------------------

    async def deliver(
        self,
        mailbox: str,
        data: bytes,
        *,
        folder: str = INBOX,
        flags: frozenset[str] = frozenset(),
        quota_bytes: int | None = None,
        internal_date: datetime | None = None,
    ) -> Stored:
        """Store ``data`` durably: tmp/ + fsync, rename into new/ (cur/ if flagged), fsync."""
        path = self.maildir_path(mailbox)
        folder = normalize_folder(folder)
        wanted = normalize_flags(flags)
        if quota_bytes is not None and quota_bytes < 0:
            raise ValueError("quota_bytes must be None (unlimited) or >= 0")
        data = bytes(data)
        mtime = None if internal_date is None else _timestamp(internal_date)
        tmp, written, summary = await asyncio.to_thread(
            _write_tmp, path, mailbox, folder, data, mtime
        )
        try:
            return await self._run(
                mailbox,
                lambda box: box.commit(folder, tmp, written, wanted, quota_bytes, summary),
            )
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # the commit may not have run; a renamed file is unaffected
            raise

    async def usage(self, mailbox: str) -> int:
        return await self._run(mailbox, lambda box: box.usage())

    # -- folders -------------------------------------------------------------------

    async def folders(self, mailbox: str) -> list[FolderStatus]:
        return await self._run(
            mailbox, lambda box: [box.status(name) for name in box.list_folders()]
        )

    async def folder_status(self, mailbox: str, folder: str) -> FolderStatus:
        name = normalize_folder(folder)
        return await self._run(mailbox, lambda box: box.status(name))

    async def create_folder(self, mailbox: str, folder: str) -> None:
        name = normalize_folder(folder)
        await self._run(mailbox, lambda box: box.create(name))

    async def delete_folder(self, mailbox: str, folder: str) -> None:
        name = normalize_folder(folder)
        await self._run(mailbox, lambda box: box.delete(name))

    async def rename_folder(self, mailbox: str, folder: str, new_name: str) -> None:
        old, new = normalize_folder(folder), normalize_folder(new_name)

        def rename(box: Maildir) -> None:
            box.rename(old, new)
            subs.rename_subscriptions(box.path, old, new)

        await self._run(mailbox, rename)

    # -- subscriptions -------------------------------------------------------------

    async def subscriptions(self, mailbox: str) -> list[str]:
        return await self._run(mailbox, lambda box: subs.read_subscriptions(box.path))

    async def subscribe(self, mailbox: str, folder: str) -> None:
        name = normalize_folder(folder)
        await self._run(mailbox, lambda box: subs.subscribe(box.path, name))

    async def unsubscribe(self, mailbox: str, folder: str) -> None:
        name = normalize_folder(folder)
        await self._run(mailbox, lambda box: subs.unsubscribe(box.path, name))

    # -- messages ------------------------------------------------------------------

    async def messages(self, mailbox: str, folder: str) -> list[MessageInfo]:
        name = normalize_folder(folder)
        return await self._run(mailbox, lambda box: box.messages(name))

    async def fetch(self, mailbox: str, folder: str, uid: int) -> bytes:
        """Read a message; the file is read outside the lock, retried if it moved."""
        name = normalize_folder(folder)
        _check_uid(uid, name)
        for attempt in range(FETCH_ATTEMPTS):
            path = await self._run(
                mailbox, partial(Maildir.locate, folder=name, uid=uid, refresh=attempt > 0)
            )
            try:
                return await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                continue  # flags changed or expunged meanwhile: locate it again
        raise NoSuchMessage(f"message UID {uid} in {name!r} keeps disappearing")

    async def fetch_many(self, mailbox: str, folder: str, uids: Iterable[int]) -> dict[int, bytes]:
        """Locate all under one lock, read the files in one worker thread; a file that
        moved meanwhile is fetched again on its own."""
        name = normalize_folder(folder)
        wanted = sorted(set(uids))

        def locate(box: Maildir) -> dict[int, Path]:
            paths = {}
            for uid in wanted:
                with contextlib.suppress(NoSuchMessage):
                    paths[uid] = box.locate(name, uid, refresh=False)
            return paths

        def read(paths: dict[int, Path]) -> tuple[dict[int, bytes], list[int]]:
            found, moved = {}, []
            for uid, path in paths.items():
                try:
                    found[uid] = path.read_bytes()
                except FileNotFoundError:
                    moved.append(uid)
            return found, moved

        found, moved = await asyncio.to_thread(read, await self._run(mailbox, locate))
        for uid in moved:
            with contextlib.suppress(NoSuchMessage):
                found[uid] = await self.fetch(mailbox, name, uid)
        return found

    async def summaries(self, mailbox: str, folder: str, uids: Iterable[int]) -> dict[int, Summary]:
        """Read from the folder's summary log; missing ones are made and kept."""
        name = normalize_folder(folder)
        wanted = sorted({uid for uid in uids if isinstance(uid, int) and uid > 0})
        kept, missing = await self._run(mailbox, lambda box: box.summaries(name, wanted))
        found: dict[int, Summary] = {}
        for uid, packed in kept.items():
            summary = unpack(packed)
            if summary is None:
                missing.append(uid)
            else:
                found[uid] = summary
        if missing:
            raw = await self.fetch_many(mailbox, name, missing)
            made = await asyncio.to_thread(
                lambda: {uid: summarize(data) for uid, data in raw.items()}
            )
            packed_made = {uid: pack(summary) for uid, summary in made.items()}
            with contextlib.suppress(OSError):
                await self._run(mailbox, lambda box: box.keep_summaries(name, packed_made))
            found.update(made)
        return found

    async def set_flags_many(
        self, mailbox: str, folder: str, changes: dict[int, frozenset[str]]
    ) -> dict[int, frozenset[str]]:
        """All under one lock, in one worker thread."""
        name = normalize_folder(folder)
        wanted = {
            uid: normalize_flags(flags)
            for uid, flags in changes.items()
            if isinstance(uid, int) and not isinstance(uid, bool) and uid > 0
        }

        return (await self._run(mailbox, lambda box: box.set_flags_many(name, wanted)))[0]

    async def set_flags_unchanged_since(
        self, mailbox: str, folder: str, changes: dict[int, frozenset[str]], modseq: int
    ) -> tuple[dict[int, frozenset[str]], list[int]]:
        """``set_flags_many`` but for messages whose modseq is above ``modseq`` (returned
        as the second item), checked and changed under the mailbox lock."""
        name = normalize_folder(folder)
        wanted = {
            uid: normalize_flags(flags)
            for uid, flags in changes.items()
            if isinstance(uid, int) and not isinstance(uid, bool) and uid > 0
        }
        return await self._run(mailbox, lambda box: box.set_flags_many(name, wanted, modseq))

    async def vanished(self, mailbox: str, folder: str, since: int) -> list[int] | None:
        """From the folder's ``mailward-modseq`` log (see :mod:`.modseqs`)."""
        name = normalize_folder(folder)

        def read(box: Maildir) -> list[int] | None:
            return box.modseqs.state(box.require(name)).vanished.since(since)

        return await self._run(mailbox, read)

    async def set_flags(
        self, mailbox: str, folder: str, uid: int, flags: Iterable[str]
    ) -> frozenset[str]:
        name = normalize_folder(folder)
        _check_uid(uid, name)
        wanted = normalize_flags(flags)
        return await self._run(mailbox, lambda box: box.set_flags(name, uid, wanted))

    async def expunge(
        self, mailbox: str, folder: str, uids: Iterable[int] | None = None
    ) -> list[int]:
        name = normalize_folder(folder)
        chosen = None if uids is None else list(uids)
        return await self._run(mailbox, lambda box: box.expunge(name, chosen))

    async def copy(
        self,
        mailbox: str,
        folder: str,
        uids: Iterable[int],
        target_folder: str,
        *,
        quota_bytes: int | None = None,
    ) -> dict[int, int]:
        source, target, chosen = normalize_folder(folder), normalize_folder(target_folder), [*uids]
        return await self._run(
            mailbox,
            lambda box: box.transfer(source, chosen, target, move=False, quota_bytes=quota_bytes),
        )

    async def move(
        self, mailbox: str, folder: str, uids: Iterable[int], target_folder: str
    ) -> dict[int, int]:
        source, target, chosen = normalize_folder(folder), normalize_folder(target_folder), [*uids]
        return await self._run(mailbox, lambda box: box.transfer(source, chosen, target, move=True))

    async def delete_mailbox(self, mailbox: str) -> None:
        path = self.maildir_path(mailbox)
        async with self._lock(mailbox):
            await asyncio.to_thread(self._delete_mailbox, path)

    def _delete_mailbox(self, path: Path) -> None:
        home = path.parent
        if not home.is_dir():
            return
        trash = home.parent / f"{TRASH_PREFIX}{secrets.token_hex(6)}"
        with mailbox_lock(path):
            os.rename(home, trash)
            fsync_dir(home.parent)
            self._cache.drop_maildir(path)
            self._summaries.drop_under(path)
            self._modseqs.drop_under(path)
        shutil.rmtree(trash, ignore_errors=True)


def _check_uid(uid: int, folder: str) -> None:
    if not isinstance(uid, int) or isinstance(uid, bool) or uid <= 0:
        raise NoSuchMessage(f"{uid!r} is not a valid UID in {folder!r}")


def _timestamp(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _write_tmp(
    maildir: Path, mailbox: str, folder: str, data: bytes, mtime: float | None
) -> tuple[Path, float, bytes]:
    """Write and fsync the message in the folder's ``tmp/``; return its path, its mtime
    and its packed summary."""
    folder_dir = maildir / folder_dirname(folder)
    if folder == INBOX:
        ensure_folder_dirs(maildir, subfolder=False)
    elif not folder_dir.is_dir():
        raise NoSuchFolder(f"folder {folder!r} does not exist in {mailbox}")
    elif not (folder_dir / "tmp").is_dir():
        ensure_folder_dirs(folder_dir, subfolder=True)
    tmp = folder_dir / "tmp" / unique_base(len(data))
    return tmp, write_new_file(tmp, data, mtime), pack(summarize(data))
