"""Webmail's folders and message lists over the mail store, for one logged-in mailbox.

Lists are made from the store's message metadata (``messages``) and kept summaries
(``summaries``: the IMAP ENVELOPE and BODYSTRUCTURE), never from message bytes. What a
summary says of a message (:class:`Head`) cannot change while its folder keeps its
UIDVALIDITY, so heads are kept per process in a bounded LRU (:class:`HeadCache`) and only
new UIDs are asked for. Sorting by date (arrival) or size needs no summary at all: a
page of a big folder reads the summaries of that page only. Sorting by sender or
subject, and conversations, read every summary of the folder once.

Special-use folders are IMAP's (:data:`mailward.imap.listing.SPECIAL_USE`, created as
IMAP creates them); ``Archive`` is shown as the archive, made only when asked for
(:meth:`MailboxView.special`), and may be renamed or deleted like the user's own folders.

Conversations use ``In-Reply-To`` and ``Message-ID`` from the ENVELOPE; ``References``
is not in the store's summary, so it is not used (see :mod:`mailward.webmail.threads`
for the subject fallback).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from typing import cast

from mailward.app import Services
from mailward.core.errors import InvalidInput
from mailward.imap.listing import SPECIAL_USE
from mailward.imap.mailboxes import ensure_special_folders
from mailward.imap.reports import Lesson, report, verdict
from mailward.store import (
    ANSWERED,
    DELETED,
    FLAGGED,
    INBOX,
    SEEN,
    SEPARATOR,
    FolderStatus,
    MailStore,
    MessageInfo,
    NoSuchFolder,
    Summary,
    batch,
)
from mailward.webmail.threads import ThreadItem, group, message_ids, normalize_subject

__all__ = ["CONVERSATION_SCAN", "FolderInfo", "HeadCache", "ListPage", "MailboxView",
           "MessageRow"]

#: Per folder, how many of the newest messages a conversation (or the Sent folder's part
#: of a threaded list) is looked for in.
CONVERSATION_SCAN = 1000
MAX_GROUPINGS = 64  # folder listings whose conversations are kept (most recently used)
MAX_PER_PAGE = 500
SORTS = ("date", "from", "subject", "size")
ONLY = ("unread", "flagged")
#: Special kinds and their folder names (IMAP's special-use names, plus Archive).
KIND_OF: dict[str, str] = {name: attr.lstrip("\\").lower() for name, attr in SPECIAL_USE.items()}
KIND_OF["Archive"] = "archive"
FOLDER_OF: dict[str, str] = {kind: name for name, kind in KIND_OF.items()}
_ORDER = {INBOX: 0, "Drafts": 1, "Sent": 2, "Archive": 3, "Junk": 4, "Trash": 5}
SUMMARY_BATCH = 500  # summaries asked for in one store call


@dataclass(frozen=True, slots=True)
class FolderInfo:
    name: str
    display: str  # the last level of the name
    special: str | None  # "inbox", "drafts", "sent", "trash", "junk", "archive"
    total: int
    unread: int
    depth: int  # levels below the top ("A/B" is 1)


@dataclass(frozen=True, slots=True)
class MessageRow:
    folder: str
    uid: int
    subject: str
    sender: str  # display name or address
    sender_address: str
    to: str
    date: datetime | None
    size: int
    seen: bool
    flagged: bool
    answered: bool
    has_attachments: bool
    thread_size: int = 1  # in conversation lists: messages in the thread


@dataclass(frozen=True, slots=True)
class ListPage:
    rows: list[MessageRow]
    page: int
    pages: int
    total: int


class HeadCache:
    """Heads per (mailbox, folder, UIDVALIDITY), least recently used dropped first once
    more than ``max_heads`` are kept in all."""

    def __init__(self, max_heads: int = 200_000) -> None:
        self.max_heads = max_heads
        self._folders: OrderedDict[tuple[str, str], tuple[int, dict[int, Head]]] = OrderedDict()
        self._count = 0

    def known(self, mailbox: str, folder: str, uidvalidity: int) -> dict[int, Head]:
        key = (mailbox, folder)
        found = self._folders.get(key)
        if found is None or found[0] != uidvalidity:
            if found is not None:
                self._count -= len(found[1])
            found = (uidvalidity, {})
            self._folders[key] = found
        self._folders.move_to_end(key)
        return found[1]

    def added(self) -> None:
        """Account for heads just added to a folder's dict; drop the least recently used
        folders while too many are kept."""
        self._count = sum(len(v[1]) for v in self._folders.values())
        while self._count > self.max_heads and len(self._folders) > 1:
            _key, (_v, dropped) = self._folders.popitem(last=False)
            self._count -= len(dropped)


class MailboxView:
    """Folders, lists, conversations and message actions of one mailbox at a time."""

    def __init__(self, services: Services, store: MailStore,
                 cache: HeadCache | None = None) -> None:
        self.services = services
        self.store = store
        self.cache = cache or HeadCache()
        # conversations of a folder's listing, by the messages it was made of
        self._groups: OrderedDict[tuple[str, str, int, int], builtins.list[
            builtins.list[tuple[str, int]]]] = OrderedDict()

    # -- folders --------------------------------------------------------------------------

    async def folders(self, mailbox: str) -> builtins.list[FolderInfo]:
        """Every folder, INBOX first, then the special ones, then the rest by name
        (Drafts, Sent, Trash and Junk are made when missing)."""
        statuses = await self.store.folders(mailbox)
        if any(name not in {s.name for s in statuses} for name in SPECIAL_USE):
            await ensure_special_folders(self.store, mailbox)
            statuses = await self.store.folders(mailbox)
        infos = [FolderInfo(s.name, s.name.rsplit(SEPARATOR, 1)[-1],
                            "inbox" if s.name == INBOX else KIND_OF.get(s.name),
                            s.exists, s.unseen, s.name.count(SEPARATOR)) for s in statuses]
        return sorted(infos, key=_folder_order)

    async def special(self, mailbox: str, kind: str) -> str:
        """The folder of ``kind`` ("inbox", "drafts", "sent", "trash", "junk",
        "archive"), made if missing."""
        if kind == "inbox":
            return INBOX
        name = FOLDER_OF.get(kind)
        if name is None:
            raise InvalidInput(f"no special folder {kind!r}")
        with contextlib.suppress(NoSuchFolder):
            await self.store.folder_status(mailbox, name)
            return name
        if name in SPECIAL_USE:
            await ensure_special_folders(self.store, mailbox)
        else:
            await self.store.create_folder(mailbox, name)
            await self.store.subscribe(mailbox, name)
        return name

    async def create_folder(self, mailbox: str, name: str) -> None:
        folder = _folder_name(name)
        await self.store.create_folder(mailbox, folder)
        await self.store.subscribe(mailbox, folder)

    async def rename_folder(self, mailbox: str, name: str, new: str) -> None:
        _changeable(name, "renamed")
        target = _folder_name(new)
        if target.upper() == INBOX or target in SPECIAL_USE:
            raise InvalidInput(f"{target} is a special folder's name")
        await self.store.rename_folder(mailbox, name, target)

    async def delete_folder(self, mailbox: str, name: str) -> None:
        _changeable(name, "deleted")
        await self.store.delete_folder(mailbox, name)
        await self.store.unsubscribe(mailbox, name)

    async def version(self, mailbox: str) -> str:
        """Changes whenever a folder's messages or any message's flags change: a digest of
        every folder's counters and every message's UID and flags (one metadata listing
        per folder, no summaries, no bytes)."""
        digest = hashlib.sha256()
        for status in await self.store.folders(mailbox):
            digest.update(repr((status.name, status.uidvalidity, status.uidnext,
                                status.exists, status.unseen)).encode())
            with contextlib.suppress(NoSuchFolder):  # deleted meanwhile
                for info in await self.store.messages(mailbox, status.name):
                    digest.update(b"%d %s;" % (info.uid, " ".join(sorted(info.flags)).encode()))
        return digest.hexdigest()[:32]

    # -- lists ----------------------------------------------------------------------------

    async def list(self, mailbox: str, folder: str, *, page: int = 1, per_page: int = 50,
                   sort: str = "date", reverse: bool = True, only: str | None = None,
                   threads: bool = False) -> ListPage:
        """One page of the folder: by arrival date, sender, subject or size; only unread
        or flagged messages on request; with ``threads`` one row per conversation (the
        newest message of it in this folder; replies in Sent joined and counted)."""
        if sort not in SORTS:
            raise InvalidInput(f"sort must be one of {', '.join(SORTS)}")
        if only not in (None, *ONLY):
            raise InvalidInput("only must be unread or flagged")
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"page must be 1 or more, per_page 1 to {MAX_PER_PAGE}")
        status = await self.store.folder_status(mailbox, folder)
        infos = await self.store.messages(mailbox, folder)
        if threads:
            return await self._threaded(mailbox, status, infos, page, per_page, sort,
                                        reverse, only)
        if only is not None:
            infos = [i for i in infos if _matches(i, only)]
        heads: dict[int, Head] = {}
        if sort in ("from", "subject"):
            heads = await self._heads(mailbox, status, [i.uid for i in infos])
        infos.sort(key=lambda i: _sort_key(sort, i, heads.get(i.uid)), reverse=reverse)
        chosen = infos[(page - 1) * per_page: page * per_page]
        if not heads:
            heads = await self._heads(mailbox, status, [i.uid for i in chosen])
        rows = [_row(folder, i, heads.get(i.uid)) for i in chosen]
        return ListPage(rows, page, _pages(len(infos), per_page), len(infos))

    async def _threaded(self, mailbox: str, status: FolderStatus, infos: builtins.list[MessageInfo],
                        page: int, per_page: int, sort: str, reverse: bool,
                        only: str | None) -> ListPage:
        folder = status.name
        heads = await self._heads(mailbox, status, [i.uid for i in infos])
        items = [_item(folder, i, heads.get(i.uid)) for i in infos]
        sent = FOLDER_OF["sent"]
        if folder not in (sent, FOLDER_OF["trash"], FOLDER_OF["junk"]):
            with contextlib.suppress(NoSuchFolder):
                items += await self._scan(mailbox, sent)
        # the grouping depends only on which messages there are (heads never change)
        key = (mailbox, folder, status.uidvalidity, hash(tuple(i.key for i in items)))
        groups = self._groups.get(key)
        if groups is None:
            groups = [[cast(tuple[str, int], m.key) for m in members] for members in group(items)]
            self._groups[key] = groups
            while len(self._groups) > MAX_GROUPINGS:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(key)
        by_uid = {i.uid: i for i in infos}
        threads: builtins.list[tuple[MessageInfo, builtins.list[MessageInfo], int]] = []
        for keys in groups:
            here = [by_uid[k[1]] for k in keys if k[0] == folder and k[1] in by_uid]
            if not here or (only is not None and not any(_matches(i, only) for i in here)):
                continue
            threads.append((max(here, key=lambda i: (i.internal_date, i.uid)), here, len(keys)))
        threads.sort(key=lambda t: _sort_key(sort, t[0], heads.get(t[0].uid)), reverse=reverse)
        chosen = [replace(_row(folder, newest, heads.get(newest.uid), thread_size=size),
                          seen=all(SEEN in i.flags for i in here),
                          flagged=any(FLAGGED in i.flags for i in here))
                  for newest, here, size in threads[(page - 1) * per_page: page * per_page]]
        return ListPage(chosen, page, _pages(len(threads), per_page), len(threads))

    async def rows(self, mailbox: str, hits: builtins.list[tuple[str, int]],
                   ) -> builtins.list[MessageRow]:
        """Rows for ``(folder, uid)`` hits (e.g. search results), in their order; hits no
        longer there are skipped."""
        wanted: dict[str, builtins.list[int]] = {}
        for folder, uid in hits:
            wanted.setdefault(folder, []).append(uid)
        found: dict[tuple[str, int], MessageRow] = {}
        for folder, uids in wanted.items():
            try:
                status = await self.store.folder_status(mailbox, folder)
                infos = {i.uid: i for i in await self.store.messages(mailbox, folder)}
            except NoSuchFolder:
                continue
            present = [u for u in uids if u in infos]
            heads = await self._heads(mailbox, status, present)
            for uid in present:
                found[(folder, uid)] = _row(folder, infos[uid], heads.get(uid))
        return [found[hit] for hit in hits if hit in found]

    async def conversation(self, mailbox: str, folder: str, uid: int,
                           ) -> builtins.list[MessageRow]:
        """The conversation of a message, oldest first, across every folder but Trash and
        Junk (each folder's newest :data:`CONVERSATION_SCAN` messages looked at; the
        message itself always included)."""
        skip = {FOLDER_OF["trash"], FOLDER_OF["junk"]} - {folder}
        items: builtins.list[ThreadItem] = []
        infos: dict[tuple[str, int], MessageInfo] = {}
        heads: dict[tuple[str, int], Head] = {}
        for status in await self.store.folders(mailbox):
            if status.name in skip:
                continue
            with contextlib.suppress(NoSuchFolder):
                listed = await self.store.messages(mailbox, status.name)
                recent = listed[-CONVERSATION_SCAN:]
                if status.name == folder and all(i.uid != uid for i in recent):
                    recent += [i for i in listed if i.uid == uid]
                found = await self._heads(mailbox, status, [i.uid for i in recent])
                for info in recent:
                    key = (status.name, info.uid)
                    infos[key] = info
                    head = found.get(info.uid)
                    if head is not None:
                        heads[key] = head
                    items.append(_item(status.name, info, head))
        if (folder, uid) not in infos:
            await self.store.folder_status(mailbox, folder)  # NoSuchFolder first
            raise InvalidInput(f"no message {uid} in {folder}")
        for members in group(items):
            keys = [cast(tuple[str, int], m.key) for m in members]
            if (folder, uid) in keys:
                return [_row(k[0], infos[k], heads.get(k)) for k in keys]
        return []  # not reached: every item is in a group

    async def raw(self, mailbox: str, folder: str, uid: int) -> bytes:
        return await self.store.fetch(mailbox, folder, uid)

    async def _heads(self, mailbox: str, status: FolderStatus,
                     uids: Iterable[int]) -> dict[int, Head]:
        """The heads of ``uids`` (those that exist), from the cache or the summaries."""
        known = self.cache.known(mailbox, status.name, status.uidvalidity)
        wanted = list(uids)
        missing = [u for u in wanted if u not in known]
        for start in range(0, len(missing), SUMMARY_BATCH):
            chunk = missing[start:start + SUMMARY_BATCH]
            summaries = await batch.summaries(self.store, mailbox, status.name, chunk)
            for uid, summary in summaries.items():
                known[uid] = head_of(summary)
        if len(known) > 2 * max(status.exists, 1) and len(wanted) >= status.exists:
            keep = set(wanted)
            for uid in [u for u in known if u not in keep]:
                del known[uid]  # expunged meanwhile
        if missing:
            self.cache.added()
        return {u: known[u] for u in wanted if u in known}

    async def _scan(self, mailbox: str, folder: str) -> builtins.list[ThreadItem]:
        status = await self.store.folder_status(mailbox, folder)
        recent = (await self.store.messages(mailbox, folder))[-CONVERSATION_SCAN:]
        heads = await self._heads(mailbox, status, [i.uid for i in recent])
        return [_item(folder, i, heads.get(i.uid)) for i in recent]

    # -- actions --------------------------------------------------------------------------

    async def set_flag(self, mailbox: str, folder: str, uids: builtins.list[int], flag: str,
                       on: bool) -> None:
        """Set or clear one flag (``\\Seen``, ``\\Flagged``, ``\\Answered`` or a keyword)."""
        wanted = set(uids)
        changes = {}
        for info in await self.store.messages(mailbox, folder):
            if info.uid in wanted:
                flags = info.flags | {flag} if on else info.flags - {flag}
                if flags != info.flags:
                    changes[info.uid] = frozenset(flags)
        if changes:
            await batch.set_flags_many(self.store, mailbox, folder, changes)

    async def move(self, mailbox: str, folder: str, uids: builtins.list[int], target: str,
                   *, teach: bool = True) -> dict[int, int]:
        """Move messages (source UID → new UID). As over IMAP, moving into Junk teaches
        the filter "spam" and out of Junk (not to Trash) "ham", unless ``teach`` is off."""
        if target == folder or not uids:
            return {}
        await self.store.folder_status(mailbox, target)  # NoSuchFolder before anything
        moved = await self.store.move(mailbox, folder, uids, target)
        lesson = verdict(folder, target) if teach else None
        if lesson is not None and moved:
            await report(self.services.filter, self.store,
                         [Lesson(mailbox, target, lesson, uids=tuple(moved.values()))])
        return moved

    async def delete(self, mailbox: str, folder: str, uids: builtins.list[int]) -> None:
        """Move to Trash; in Trash, expunge for good."""
        trash = await self.special(mailbox, "trash")
        if folder != trash:
            await self.move(mailbox, folder, uids, trash)
            return
        await self._expunge(mailbox, folder, uids)

    async def empty(self, mailbox: str, folder: str) -> int:
        """Expunge every message of Trash or Junk; how many went."""
        if folder not in (FOLDER_OF["trash"], FOLDER_OF["junk"]):
            raise InvalidInput("only Trash and Junk can be emptied")
        infos = await self.store.messages(mailbox, folder)
        return len(await self._expunge(mailbox, folder, [i.uid for i in infos]))

    async def _expunge(self, mailbox: str, folder: str,
                       uids: builtins.list[int]) -> builtins.list[int]:
        await self.set_flag(mailbox, folder, uids, DELETED, True)
        return await self.store.expunge(mailbox, folder, uids)


# -- helpers ------------------------------------------------------------------------------


def _folder_order(info: FolderInfo) -> tuple[int, builtins.list[str]]:
    parts = info.name.split(SEPARATOR)
    return _ORDER.get(parts[0], len(_ORDER)), [p.casefold() for p in parts]


def _folder_name(name: str) -> str:
    folder = name.strip().strip(SEPARATOR).strip()
    if not folder or any(not part.strip() for part in folder.split(SEPARATOR)):
        raise InvalidInput("name the folder (levels separated by /, none empty)")
    return folder


def _changeable(name: str, done: str) -> None:
    """Refuse INBOX and the special-use folders IMAP makes (Archive is the user's own)."""
    if name.upper() == INBOX or name in SPECIAL_USE:
        raise InvalidInput(f"{name} is a special folder and cannot be {done}")


def _matches(info: MessageInfo, only: str) -> bool:
    return SEEN not in info.flags if only == "unread" else FLAGGED in info.flags


def _pages(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page))


def _sort_key(sort: str, info: MessageInfo, head: Head | None) -> tuple[object, ...]:
    if sort == "size":
        return (info.size, info.uid)
    if sort == "from":
        return ((head.sender.casefold() if head else ""), info.internal_date, info.uid)
    if sort == "subject":
        return ((head.sort_subject if head else ""), info.internal_date, info.uid)
    return (info.internal_date, info.uid)


def _item(folder: str, info: MessageInfo, head: Head | None) -> ThreadItem:
    date = (head.date if head else None) or info.internal_date
    if head is None:
        return ThreadItem((folder, info.uid), None, None, (), "", date)
    return ThreadItem((folder, info.uid), head.message_id, head.in_reply_to,
                      head.references, head.subject, date)


def _row(folder: str, info: MessageInfo, head: Head | None, *,
         thread_size: int = 1) -> MessageRow:
    h = head or Head.empty()
    return MessageRow(folder, info.uid, h.subject, h.sender, h.sender_address, h.to,
                      h.date or info.internal_date.astimezone(UTC), info.size,
                      SEEN in info.flags, FLAGGED in info.flags, ANSWERED in info.flags,
                      h.has_attachments, thread_size)


# -- what a summary says of a message ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    """A message's listing fields, from its ENVELOPE and BODYSTRUCTURE (RFC 2047 decoded)."""

    subject: str
    sort_subject: str  # without Re:/Fwd:/[list] prefixes, case-folded
    sender: str
    sender_address: str
    to: str
    date: datetime | None  # the Date field, timezone-aware
    message_id: str | None
    in_reply_to: str | None
    has_attachments: bool
    references: tuple[str, ...] = ()

    @staticmethod
    def empty() -> Head:
        return Head("", "", "", "", "", None, None, None, False)


_LITERAL = re.compile(rb"\{(\d+)\}\r\n")
_NOT_ATTACHMENTS = {(b"application", b"pgp-signature"), (b"application", b"pkcs7-signature"),
                    (b"application", b"x-pkcs7-signature")}


def head_of(summary: Summary) -> Head:
    """The head of a kept summary (a damaged one gives empty fields, never an error)."""
    envelope = _sexp(summary.envelope)
    if not isinstance(envelope, list) or len(envelope) < 10:
        envelope = [None] * 10
    subject = _text(envelope[1])
    senders = _addresses(envelope[2])
    name, address = senders[0] if senders else ("", "")
    to = ", ".join(n or a for n, a in _addresses(envelope[5]))
    return Head(subject, normalize_subject(subject)[0], name or address, address, to,
                _date(envelope[0]), _plain(envelope[9]), _plain(envelope[8]),
                _has_attachments(_sexp(summary.bodystructure)),
                tuple(message_ids(summary.references.decode("utf-8", "replace"))))


def _sexp(data: bytes) -> object:
    """An IMAP value as nested lists of bytes (``NIL``: None); ``None`` when damaged."""
    stack: builtins.list[builtins.list[object]] = [[]]
    i, n = 0, len(data)
    try:
        while i < n:
            c = data[i:i + 1]
            if c in (b" ", b"\r", b"\n"):
                i += 1
            elif c == b"(":
                stack.append([])
                i += 1
            elif c == b")":
                done = stack.pop()
                stack[-1].append(done)
                i += 1
            elif c == b'"':
                out = bytearray()
                i += 1
                while data[i:i + 1] != b'"':
                    if data[i:i + 1] == b"\\":
                        i += 1
                    if i >= n:
                        return None
                    out += data[i:i + 1]
                    i += 1
                stack[-1].append(bytes(out))
                i += 1
            elif (m := _LITERAL.match(data, i)) is not None:
                size = int(m.group(1))
                stack[-1].append(data[m.end():m.end() + size])
                i = m.end() + size
            else:
                start = i
                while i < n and data[i:i + 1] not in (b" ", b"(", b")", b"\r", b"\n"):
                    i += 1
                atom = data[start:i]
                stack[-1].append(None if atom.upper() == b"NIL" else atom)
    except IndexError:
        return None
    return stack[0][0] if len(stack) == 1 and stack[0] else None


def _plain(value: object) -> str | None:
    return value.decode("utf-8", "replace").strip() or None if isinstance(value, bytes) else None


def _text(value: object) -> str:
    """A header value for people: RFC 2047 encoded words decoded."""
    text = _plain(value) or ""
    if "=?" in text:
        with contextlib.suppress(Exception):  # unknown charsets, broken encodings
            text = str(make_header(decode_header(text)))
    return text


def _addresses(value: object) -> builtins.list[tuple[str, str]]:
    """``(display name, address)`` of each mailbox in an ENVELOPE address list."""
    found = []
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, list) or len(entry) != 4 or entry[3] is None:
            continue  # a group's start or end
        local, host = _plain(entry[2]) or "", _plain(entry[3]) or ""
        found.append((_text(entry[0]), f"{local}@{host}".lower() if host else local.lower()))
    return found


def _date(value: object) -> datetime | None:
    text = _plain(value)
    if not text:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _has_attachments(part: object) -> bool:
    """Whether a BODYSTRUCTURE has a part one would call an attachment."""
    if not isinstance(part, list) or not part:
        return False
    if isinstance(part[0], list):  # multipart: the parts, then the subtype
        return any(_has_attachments(p) for p in part if isinstance(p, list)
                   and p and isinstance(p[0], list | bytes) and len(p) > 2)
    kind = (part[0] or b"").lower() if isinstance(part[0], bytes) else b""
    sub = (part[1] or b"").lower() if isinstance(part[1], bytes) else b""
    if kind == b"message" and sub == b"rfc822":
        return True
    ext = 8 if kind == b"text" else 10 if (kind, sub) == (b"message", b"rfc822") else 7
    disposition = part[ext + 1] if len(part) > ext + 1 else None
    how = disposition[0].lower() if isinstance(disposition, list) and disposition and \
        isinstance(disposition[0], bytes) else b""
    if how == b"attachment":
        return True
    if how == b"inline" or kind in (b"text", b"multipart") or (kind, sub) in _NOT_ATTACHMENTS:
        return False
    if kind == b"image":
        return part[3] is None  # an image with a Content-ID is shown in the text
    return True
