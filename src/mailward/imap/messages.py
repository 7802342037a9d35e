"""Selected-state commands (RFC 3501 §6.4, UIDPLUS, MOVE, UNSELECT) with their RFC 7162
parts: FETCH MODSEQ and (CHANGEDSINCE n [VANISHED]), STORE (UNCHANGEDSINCE n) answered
with [MODIFIED ...], SEARCH MODSEQ, VANISHED instead of EXPUNGE once QRESYNC is enabled."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from mailward.imap.fetch import fetch_data, needs_body, sets_seen, summary_answers
from mailward.imap.mailboxes import BadName, folder_name, vanished_since
from mailward.imap.parse import (
    Command,
    CopyMove,
    Expunge,
    Fetch,
    FetchAtt,
    Search,
    SearchKey,
    SequenceSet,
    Store,
)
from mailward.imap.search_eval import BadCharset, Candidate, SearchError, search
from mailward.imap.selected import SelectedFolder, flag_list
from mailward.store import (
    DELETED,
    RECENT,
    SEEN,
    NoSuchFolder,
    NoSuchMessage,
    batch,
)
from mailward.store.modseq import uid_ranges

if TYPE_CHECKING:
    from mailward.imap.session import ImapSession

Handler = Callable[["ImapSession", Command], Awaitable[None]]
FLUSH_BYTES = 256 * 1024  # send long FETCH answers as they grow
BATCH_MESSAGES = 100  # messages read from the store in one go by FETCH ...
BATCH_BYTES = 8 * 1024 * 1024  # ... and about this many bytes of them
SUMMARY_BATCH = 5000  # messages whose summaries are read in one go (no bytes needed)


def _selected(s: ImapSession) -> SelectedFolder:
    assert s.selected is not None and s.user is not None
    return s.selected


def resolve(s: ImapSession, cmd: Command, seqs: SequenceSet) -> list[tuple[int, int]] | None:
    """``(seq, uid)`` pairs named by ``seqs``; ``None`` (BAD sent) for an invalid set."""
    sel = _selected(s)
    if cmd.uid:
        if not sel.uids:
            return []
        spans = seqs.resolve(sel.uids[-1])
        return [(i, uid) for i, uid in enumerate(sel.uids, 1)
                if any(lo <= uid <= hi for lo, hi in spans)]
    if seqs.highest_explicit() > sel.exists or (not sel.exists and seqs.ranges):
        s.tagged(cmd.tag, "BAD", "Invalid message sequence number "
                 f"(the mailbox has {sel.exists} messages)")
        return None
    return [(seq, sel.uids[seq - 1]) for seq in seqs.numbers(sel.exists)]


def uid_set(uids: Iterable[int]) -> str:
    """``1:3,7`` from UIDs in the given order (COPYUID keeps source and target aligned)."""
    out: list[str] = []
    run: list[int] = []
    for uid in uids:
        if run and uid == run[-1] + 1:
            run.append(uid)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}:{run[-1]}")
        run = [uid]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}:{run[-1]}")
    return ",".join(out)


# -- FETCH -------------------------------------------------------------------------------

async def _fetch(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Fetch)
    sel = _selected(s)
    if cmd.vanished and not s.qresync:
        s.tagged(cmd.tag, "BAD", "VANISHED needs QRESYNC enabled")
        return
    items = cmd.items
    if cmd.changed_since is not None or any(item.name == "MODSEQ" for item in items):
        await s.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
        if not any(item.name == "MODSEQ" for item in items):
            items = (*items, _MODSEQ)
    pairs = resolve(s, cmd, cmd.sequence_set)
    if pairs is None:
        return
    if cmd.vanished and cmd.changed_since is not None:
        within = cmd.sequence_set.resolve(sel.uidnext - 1)
        gone = await vanished_since(s, sel, cmd.changed_since, within)
        if gone:
            s.untagged(b"VANISHED (EARLIER) " + uid_ranges(gone).encode())
    if cmd.changed_since is not None:
        since = cmd.changed_since
        pairs = [pair for pair in pairs if sel.infos[pair[1]].modseq > since]
    cmd = dataclasses.replace(cmd, items=items)
    mark_seen = sets_seen(cmd.items) and not sel.readonly
    wants_flags = any(item.name == "FLAGS" for item in cmd.items)
    body = needs_body(cmd.items)
    live = [pair for pair in pairs if pair[1] not in sel.vanished]
    missing = len(live) != len(pairs)
    size = 0
    limit = SUMMARY_BATCH if summary_answers(cmd.items) else BATCH_MESSAGES
    for part in _batches(sel, live, limit):
        raw = await _prefetch(s, sel, cmd.items, [uid for _, uid in part]) if body else {}
        seen = await _mark_seen(s, sel, [uid for _, uid in part]) if mark_seen else set()
        for seq, uid in part:
            items = cmd.items
            if uid in sel.vanished:
                missing = True
                continue
            if uid in seen and not wants_flags:
                items = (*items, _FLAGS)
            if uid in seen and s.condstore and not any(i.name == "MODSEQ" for i in items):
                items = (*items, _MODSEQ)
            data = await _fetch_one(s, sel, items, uid, cmd.uid, raw)
            if data is None:
                missing = True
                continue
            line = b"* %d FETCH " % seq + data
            s.out.append(line)
            size += len(line)
            if size > FLUSH_BYTES or (body and len(s.out) > 64):
                await s.flush()
                size = 0
    if missing:
        s.tagged(cmd.tag, "NO", "Some messages were expunged meanwhile", "EXPUNGEISSUED")
    else:
        s.tagged(cmd.tag, "OK", "Fetch completed")


async def _mark_seen(s: ImapSession, sel: SelectedFolder, uids: list[int]) -> set[int]:
    """Set \\Seen on those of ``uids`` without it, in one store call; return them (the
    ones gone meanwhile are marked vanished)."""
    changes = {uid: sel.infos[uid].flags | {SEEN} for uid in uids
               if uid not in sel.vanished and SEEN not in sel.infos[uid].flags}
    if not changes:
        return set()
    before = s.services.events.version(sel.mailbox)
    stored = await batch.set_flags_many(s.store, sel.mailbox, sel.name, changes)
    for uid in changes:
        if uid in stored:
            sel.remember(dataclasses.replace(sel.infos[uid], flags=stored[uid]))
        else:
            sel.vanished.add(uid)
    own_change(s, sel, before, bool(stored))
    if s.condstore and stored:
        await _refresh_modseqs(s, sel, stored)
    return set(stored)


async def _refresh_modseqs(s: ImapSession, sel: SelectedFolder, uids: Iterable[int]) -> None:
    """Learn the MODSEQs the store gave to messages this session just changed."""
    wanted = set(uids)
    for info in await s.store.messages(sel.mailbox, sel.name):
        if info.uid in wanted and info.uid in sel.infos:
            sel.infos[info.uid] = dataclasses.replace(sel.infos[info.uid], modseq=info.modseq)


def own_change(s: ImapSession, sel: SelectedFolder, before: int, changed: bool) -> None:
    """After a change this session made (and already applied to its view): if no other
    change of the mailbox can have come in between, the view stays current without
    listing the folder again. Versions come from one counter, so ``before + 1`` means
    the only change announced since ``before`` was this one."""
    after = s.services.events.version(sel.mailbox)
    if changed and before == sel.version and after == before + 1 and not sel.vanished:
        sel.version = after


def _batches(sel: SelectedFolder, pairs: list[tuple[int, int]], limit: int = BATCH_MESSAGES
             ) -> Iterable[list[tuple[int, int]]]:
    """Runs of at most ``limit`` messages and about ``BATCH_BYTES``."""
    part: list[tuple[int, int]] = []
    total = 0
    for pair in pairs:
        part.append(pair)
        total += sel.infos[pair[1]].size
        if len(part) >= limit or (limit == BATCH_MESSAGES and total >= BATCH_BYTES):
            yield part
            part, total = [], 0
    if part:
        yield part


def _cache_key(sel: SelectedFolder, uid: int) -> tuple[object, ...]:
    info = sel.infos[uid]
    return (sel.mailbox, sel.name, sel.uidvalidity, uid, info.size, info.internal_date)


async def _prefetch(s: ImapSession, sel: SelectedFolder, items: tuple[FetchAtt, ...],
                    uids: list[int]) -> dict[int, bytes]:
    """The bytes of those messages whose answer neither the parsed cache nor the store's
    summaries can give, in one go (the summaries too)."""
    cache = s.services.parsed
    wanted = [uid for uid in uids if cache.needs_raw(items, _cache_key(sel, uid))]
    if wanted and summary_answers(items):
        found = await batch.summaries(s.store, sel.mailbox, sel.name, wanted)
        for uid, summary in found.items():
            cache.fill(_cache_key(sel, uid), summary)
        wanted = [uid for uid in wanted if cache.needs_raw(items, _cache_key(sel, uid))]
    return await s.store.fetch_many(sel.mailbox, sel.name, wanted) if wanted else {}


async def _fetch_one(s: ImapSession, sel: SelectedFolder, items: tuple[FetchAtt, ...], uid: int,
                     with_uid: bool, prefetched: dict[int, bytes]) -> bytes | None:
    info = sel.infos[uid]

    async def load() -> bytes:
        if uid in prefetched:
            return prefetched[uid]
        return await s.store.fetch(sel.mailbox, sel.name, uid)  # raises if expunged

    try:
        return await fetch_data(items, uid=uid, size=info.size, flags=sel.flags(uid),
                                date=info.internal_date, load=load, with_uid=with_uid,
                                cache=s.services.parsed, key=_cache_key(sel, uid),
                                before_offload=s.flush, modseq=info.modseq)
    except NoSuchMessage:
        sel.vanished.add(uid)
        return None


# -- STORE -------------------------------------------------------------------------------

async def _store(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Store)
    sel = _selected(s)
    if sel.readonly:
        s.tagged(cmd.tag, "NO", "Mailbox is read-only", "READ-ONLY")
        return
    if cmd.unchanged_since is not None:
        await s.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    pairs = resolve(s, cmd, cmd.sequence_set)
    if pairs is None:
        return
    modified: list[tuple[int, int]] = []
    if cmd.unchanged_since is not None:  # RFC 7162 §3.1.3
        limit = cmd.unchanged_since
        modified = [(seq, uid) for seq, uid in pairs if uid not in sel.vanished
                    and sel.infos[uid].modseq > limit]
        skipped = {uid for _, uid in modified}
        pairs = [pair for pair in pairs if pair[1] not in skipped]
    given = frozenset(f for f in cmd.flags if f.lower() != RECENT.lower())
    lowered = {f.lower() for f in given}
    missing = False
    changes: dict[int, frozenset[str]] = {}
    for _seq, uid in pairs:
        if uid in sel.vanished:
            missing = True
            continue
        current = sel.infos[uid].flags
        if cmd.mode == "+":
            wanted = current | given
        elif cmd.mode == "-":
            wanted = frozenset(f for f in current if f.lower() not in lowered)
        else:
            wanted = given
        if {f.lower() for f in wanted} != {f.lower() for f in current}:
            changes[uid] = wanted
    if changes:
        before = s.services.events.version(sel.mailbox)
        late: list[int] = []  # changed by someone else since the view was taken
        if cmd.unchanged_since is not None:
            stored, late = await batch.set_flags_unchanged_since(
                s.store, sel.mailbox, sel.name, changes, cmd.unchanged_since)
            modified += [(sel.seq_of(uid) or 0, uid) for uid in late]
        else:
            stored = await batch.set_flags_many(s.store, sel.mailbox, sel.name, changes)
        for uid in changes:
            if uid in stored:
                sel.remember(dataclasses.replace(sel.infos[uid], flags=stored[uid]))
        own_change(s, sel, before, bool(stored))
        gone = changes.keys() - stored.keys() - set(late)
        pairs = [pair for pair in pairs if pair[1] not in late]
        missing |= bool(gone)
        if s.condstore and stored:
            await _refresh_modseqs(s, sel, stored)
    else:
        gone = set()
        stored = {}
    for seq, uid in pairs:
        if uid in sel.vanished or uid in gone:
            continue
        parts = [b"UID %d" % uid] if cmd.uid or s.qresync else []
        if s.condstore and (not cmd.silent or uid in stored):  # Dovecot's order
            parts.append(b"MODSEQ (%d)" % sel.infos[uid].modseq)
        if not cmd.silent:
            parts.append(b"FLAGS " + flag_list(sel.flags(uid)))
        if cmd.silent and uid not in stored:
            continue
        if not cmd.silent or s.condstore:
            s.out.append(b"* %d FETCH (%s)" % (seq, b" ".join(parts)))
    if modified:
        numbers = sorted(uid if cmd.uid else seq for seq, uid in modified)
        s.tagged(cmd.tag, "OK", "Conditional STORE failed",
                 f"MODIFIED {uid_ranges(numbers)}")
    elif missing:
        s.tagged(cmd.tag, "NO", "Some messages were expunged meanwhile", "EXPUNGEISSUED")
    else:
        s.tagged(cmd.tag, "OK", "Store completed")


# -- SEARCH ------------------------------------------------------------------------------

async def _search(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Search)
    if _uses_modseq(cmd.criteria):
        await s.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE-enabling command
    sel = _selected(s)
    candidates = [Candidate(seq=i, info=sel.infos[uid], recent=uid in sel.recent)
                  for i, uid in enumerate(sel.uids, 1)]

    async def load(uid: int) -> bytes:
        try:
            return await s.store.fetch(sel.mailbox, sel.name, uid)
        except NoSuchMessage:
            return b""

    try:
        found = await search(cmd.criteria, candidates, charset=cmd.charset, load=load)
    except BadCharset as exc:
        s.tagged(cmd.tag, "NO", str(exc), "BADCHARSET (" + " ".join(exc.supported) + ")")
        return
    except SearchError as exc:
        s.tagged(cmd.tag, "NO", str(exc))
        return
    numbers = [c.info.uid if cmd.uid else c.seq for c in found]
    tail = ""
    if found and _uses_modseq(cmd.criteria):  # RFC 7162 §3.1.5
        tail = f" (MODSEQ {max(c.info.modseq for c in found)})"
    s.untagged("SEARCH" + "".join(f" {n}" for n in numbers) + tail)
    s.tagged(cmd.tag, "OK", "Search completed")


def _uses_modseq(key: SearchKey) -> bool:
    return key.op == "MODSEQ" or any(_uses_modseq(child) for child in key.children)


# -- COPY / MOVE -------------------------------------------------------------------------

async def _copy_move(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, CopyMove)
    sel = _selected(s)
    move = cmd.name == "MOVE"
    if move and sel.readonly:
        s.tagged(cmd.tag, "NO", "Mailbox is read-only", "READ-ONLY")
        return
    try:
        target = folder_name(cmd.mailbox)
    except BadName as exc:
        s.tagged(cmd.tag, "NO", str(exc))
        return
    pairs = resolve(s, cmd, cmd.sequence_set)
    if pairs is None:
        return
    uids = [uid for _, uid in pairs if uid not in sel.vanished]
    quota = await s.services.quota(sel.mailbox) if s.services.quota else None
    try:
        status = await s.store.folder_status(sel.mailbox, target)
        if move:
            mapping = await s.store.move(sel.mailbox, sel.name, uids, target)
        else:
            mapping = await s.store.copy(sel.mailbox, sel.name, uids, target, quota_bytes=quota)
    except NoSuchFolder:  # RFC 3501: the client may CREATE it and try again
        s.tagged(cmd.tag, "NO", f"Mailbox does not exist: {cmd.mailbox}", "TRYCREATE")
        return
    done = [uid for uid in uids if uid in mapping]
    s.learn(sel.name, target, uids=[mapping[uid] for uid in done])
    code = None
    if done:
        code = (f"COPYUID {status.uidvalidity} {uid_set(done)} "
                f"{uid_set(mapping[uid] for uid in done)}")
    if move:
        if code:
            s.untagged(f"OK [{code}] Moved")
        s.out += sel.expunged(done, qresync=s.qresync)
        s.tagged(cmd.tag, "OK", "Move completed")
    else:
        s.tagged(cmd.tag, "OK", "Copy completed", code)


# -- EXPUNGE / CLOSE / UNSELECT / CHECK --------------------------------------------------

async def _expunge(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Expunge)
    sel = _selected(s)
    if sel.readonly:
        s.tagged(cmd.tag, "NO", "Mailbox is read-only", "READ-ONLY")
        return
    only = None
    if cmd.sequence_set is not None:
        pairs = resolve(s, cmd, cmd.sequence_set)
        if pairs is None:
            return
        only = [uid for _, uid in pairs]
    before = s.services.events.version(sel.mailbox)
    removed = await s.store.expunge(sel.mailbox, sel.name, only)
    s.out += sel.expunged(removed, qresync=s.qresync)
    own_change(s, sel, before, bool(removed))
    code = None
    if s.qresync:  # RFC 7162 §3.2.10: the client's new starting point
        status = await s.store.folder_status(sel.mailbox, sel.name)
        code = f"HIGHESTMODSEQ {status.highestmodseq}"
    s.tagged(cmd.tag, "OK", "Expunge completed", code)


async def _close(s: ImapSession, cmd: Command) -> None:
    sel = _selected(s)
    s.selected = None
    if cmd.name == "CLOSE" and not sel.readonly:
        deleted = [uid for uid in sel.uids if DELETED in sel.infos[uid].flags]
        if deleted:
            await s.store.expunge(sel.mailbox, sel.name, deleted)
    s.tagged(cmd.tag, "OK", f"{cmd.name.capitalize()} completed")


async def _check(s: ImapSession, cmd: Command) -> None:
    s.tagged(cmd.tag, "OK", "Check completed")


_FLAGS = FetchAtt("FLAGS")
_MODSEQ = FetchAtt("MODSEQ")

SELECTED: dict[str, Handler] = {
    "FETCH": _fetch,
    "STORE": _store,
    "SEARCH": _search,
    "COPY": _copy_move,
    "MOVE": _copy_move,
    "EXPUNGE": _expunge,
    "CLOSE": _close,
    "UNSELECT": _close,
    "CHECK": _check,
}
