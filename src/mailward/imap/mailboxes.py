"""Authenticated-state commands (RFC 3501 §6.3): folders, LIST, STATUS, APPEND, QUOTA.

Folder names travel in modified UTF-7 (RFC 3501 §5.1.3) with ``/`` as the hierarchy
separator; the store holds them as Unicode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from mailward.imap.listing import SEPARATOR, SPECIAL_USE, list_folders
from mailward.imap.parse import (
    Append,
    Command,
    GetQuota,
    GetQuotaRoot,
    ListCommand,
    MailboxCommand,
    Qresync,
    Rename,
    Status,
)
from mailward.imap.respond import imap_string
from mailward.imap.selected import SelectedFolder, flag_list
from mailward.store import (
    INBOX,
    RECENT,
    SEEN,
    SYSTEM_FLAGS,
    FolderExists,
    MailStore,
    NoSuchFolder,
    batch,
)
from mailward.store.maildir.names import mutf7_decode, mutf7_encode
from mailward.store.modseq import expunged_in, uid_ranges

if TYPE_CHECKING:
    from mailward.imap.session import ImapSession

Handler = Callable[["ImapSession", Command], Awaitable[None]]
PERMANENT_FLAGS = "(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)"


class BadName(ValueError):
    """A mailbox name that is not valid modified UTF-7."""


def folder_name(wire: str) -> str:
    """The store's folder name for a name sent by the client."""
    if wire.upper() == INBOX:
        return INBOX
    if wire.isascii():
        try:
            wire = mutf7_decode(wire)
        except ValueError as exc:
            raise BadName(f"Invalid mailbox name: {exc}") from None
    name = wire.rstrip(SEPARATOR)
    return INBOX if name.upper() == INBOX else name


def wire_name(folder: str) -> bytes:
    return imap_string(mutf7_encode(folder))


async def ensure_special_folders(store: MailStore, mailbox: str) -> None:
    """Create (and subscribe) Drafts, Sent, Trash and Junk if missing (RFC 6154)."""
    present = {f.name for f in await store.folders(mailbox)}
    missing = [name for name in SPECIAL_USE if name not in present]
    for name in missing:
        try:
            await store.create_folder(mailbox, name)
        except FolderExists:
            continue
        await store.subscribe(mailbox, name)
    if missing and INBOX not in await store.subscriptions(mailbox):
        await store.subscribe(mailbox, INBOX)


async def _named(s: ImapSession, tag: str, wire: str) -> str | None:
    try:
        return folder_name(wire)
    except BadName as exc:
        s.tagged(tag, "NO", str(exc))
        return None


# -- SELECT / EXAMINE ------------------------------------------------------------------

async def _select(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, MailboxCommand) and s.user is not None
    if s.selected is not None:  # RFC 7162 §3.2.11 (as Dovecot: with or without QRESYNC)
        s.untagged("OK [CLOSED] Previous mailbox closed")
    s.selected = None  # a failed SELECT leaves no folder selected (RFC 3501 §6.3.1)
    folder = await _named(s, cmd.tag, cmd.mailbox)
    if folder is None:
        return
    if cmd.qresync is not None and not s.qresync:
        s.tagged(cmd.tag, "BAD", "QRESYNC must be enabled first (ENABLE QRESYNC)")
        return
    if cmd.condstore or cmd.qresync is not None:
        await s.enable_condstore()
    version = s.services.events.version(s.user)
    status = await s.store.folder_status(s.user, folder)
    readonly = cmd.name == "EXAMINE"
    sel = SelectedFolder(s.user, folder, readonly, status.uidvalidity, status.uidnext)
    await sel.load(s.store, s.services.claims)
    sel.version = version
    if sel.uids:
        sel.uidnext = max(sel.uidnext, sel.uids[-1] + 1)
    flags = sorted(SYSTEM_FLAGS) + sel.keywords()
    s.untagged(b"FLAGS " + flag_list(set(flags)))
    s.untagged(f"OK [PERMANENTFLAGS {'()' if readonly else PERMANENT_FLAGS}] Limited")
    s.untagged(b"%d EXISTS" % sel.exists)
    s.untagged(b"%d RECENT" % len(sel.recent))
    unseen = next((i for i, uid in enumerate(sel.uids, 1)
                   if SEEN not in sel.infos[uid].flags), None)
    if unseen is not None:
        s.untagged(f"OK [UNSEEN {unseen}] First unseen")
    s.untagged(f"OK [UIDVALIDITY {sel.uidvalidity}] UIDs valid")
    s.untagged(f"OK [UIDNEXT {sel.uidnext}] Predicted next UID")
    if s.condstore:
        s.untagged(f"OK [HIGHESTMODSEQ {status.highestmodseq}] Highest")
    if cmd.qresync is not None and cmd.qresync.uidvalidity == sel.uidvalidity:
        await _resync(s, sel, cmd.qresync)
    s.selected = sel
    mode = "READ-ONLY" if readonly else "READ-WRITE"
    s.tagged(cmd.tag, "OK", f"{cmd.name} completed", mode)


async def _resync(s: ImapSession, sel: SelectedFolder, params: Qresync) -> None:
    """RFC 7162 §3.2.5: what changed since the client's modseq, among the UIDs it knows."""
    known = params.known_uids.resolve(sel.uidnext - 1) if params.known_uids else None
    gone = await vanished_since(s, sel, params.modseq, known)
    if gone:
        s.untagged(b"VANISHED (EARLIER) " + uid_ranges(gone).encode())
    for seq, uid in enumerate(sel.uids, 1):
        if sel.infos[uid].modseq <= params.modseq:
            continue
        if known is not None and not any(lo <= uid <= hi for lo, hi in known):
            continue
        s.untagged(b"%d FETCH (UID %d FLAGS %s MODSEQ (%d))"
                   % (seq, uid, flag_list(sel.flags(uid)), sel.infos[uid].modseq))


async def vanished_since(s: ImapSession, sel: SelectedFolder, modseq: int,
                         within: list[tuple[int, int]] | None) -> list[int]:
    """UIDs expunged after ``modseq`` within the ``within`` UID ranges (all if ``None``);
    when the store no longer remembers that far back, every UID of those ranges below
    UIDNEXT that does not exist now (RFC 7162 §3.2.5.2 allows it)."""
    spans = within if within is not None else [(1, sel.uidnext - 1)]
    found = await batch.vanished(s.store, sel.mailbox, sel.name, modseq)
    if found is None:
        return expunged_in(spans, set(sel.infos))
    return [uid for uid in found if any(lo <= uid <= hi for lo, hi in spans)]


# -- CREATE / DELETE / RENAME / SUBSCRIBE ----------------------------------------------

async def _create(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, MailboxCommand) and s.user is not None
    folder = await _named(s, cmd.tag, cmd.mailbox)
    if folder is None:
        return
    if folder == INBOX:
        raise FolderExists("INBOX always exists")
    await s.store.create_folder(s.user, folder)
    s.tagged(cmd.tag, "OK", "Create completed")


async def _delete(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, MailboxCommand) and s.user is not None
    folder = await _named(s, cmd.tag, cmd.mailbox)
    if folder is None:
        return
    await s.store.delete_folder(s.user, folder)
    if s.selected is not None and s.selected.name == folder:
        s.selected = None
    s.tagged(cmd.tag, "OK", "Delete completed")


async def _rename(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Rename) and s.user is not None
    old = await _named(s, cmd.tag, cmd.old)
    new = await _named(s, cmd.tag, cmd.new) if old is not None else None
    if old is None or new is None:
        return
    if old == INBOX:  # RFC 3501: move INBOX's messages into the new folder
        await s.store.create_folder(s.user, new)
        uids = [m.uid for m in await s.store.messages(s.user, INBOX)]
        await s.store.move(s.user, INBOX, uids, new)
    else:
        await s.store.rename_folder(s.user, old, new)
    if s.selected is not None and s.selected.name in (old, new) and old != INBOX:
        s.selected = None
    s.tagged(cmd.tag, "OK", "Rename completed")


async def _subscribe(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, MailboxCommand) and s.user is not None
    folder = await _named(s, cmd.tag, cmd.mailbox)
    if folder is None:
        return
    if cmd.name == "SUBSCRIBE":
        await s.store.subscribe(s.user, folder)
    else:
        await s.store.unsubscribe(s.user, folder)
    s.tagged(cmd.tag, "OK", f"{cmd.name.capitalize()} completed")


# -- LIST / LSUB / STATUS --------------------------------------------------------------

async def _list(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, ListCommand) and s.user is not None
    kind = cmd.name
    if kind == "LIST" and not cmd.pattern and not cmd.select_options:
        s.untagged(b'LIST (\\Noselect) "/" ""')
        s.tagged(cmd.tag, "OK", "List completed")
        return
    try:
        reference = mutf7_decode(cmd.reference) if cmd.reference.isascii() else cmd.reference
        pattern = mutf7_decode(cmd.pattern) if cmd.pattern.isascii() else cmd.pattern
    except ValueError as exc:
        s.tagged(cmd.tag, "NO", f"Invalid mailbox name: {exc}")
        return
    statuses = {f.name: f for f in await s.store.folders(s.user)}
    returns = set(cmd.return_options)
    entries = list_folders(
        reference, pattern, list(statuses), subscriptions=await s.store.subscriptions(s.user),
        lsub=kind == "LSUB", select_subscribed="SUBSCRIBED" in cmd.select_options,
        return_subscribed="SUBSCRIBED" in returns,
        return_children=True,
        return_special_use=kind == "LIST",
    )
    for entry in entries:
        attrs = " ".join(entry.attributes)
        s.untagged(f"{kind} ({attrs}) \"{SEPARATOR}\" ".encode() + wire_name(entry.name))
        if cmd.return_status and entry.name in statuses and "\\Noselect" not in entry.attributes:
            s.untagged(await _status_line(s, entry.name, cmd.return_status))
    s.tagged(cmd.tag, "OK", f"{kind.capitalize()} completed")


async def _status_line(s: ImapSession, folder: str, items: tuple[str, ...]) -> bytes:
    assert s.user is not None
    status = await s.store.folder_status(s.user, folder)
    infos = None
    if {"RECENT", "SIZE", "DELETED"} & set(items):
        infos = await s.store.messages(s.user, folder)
    values: list[str] = []
    for item in items:
        if item == "MESSAGES":
            value = status.exists
        elif item == "UIDNEXT":
            value = status.uidnext
        elif item == "UIDVALIDITY":
            value = status.uidvalidity
        elif item == "UNSEEN":
            value = status.unseen
        elif item == "RECENT":
            assert infos is not None
            value = s.services.claims.peek(s.user, folder, status.uidvalidity,
                                           [m.uid for m in infos])
        elif item == "SIZE":
            value = sum(m.size for m in infos or ())
        elif item == "DELETED":
            value = sum(1 for m in infos or () if "\\Deleted" in m.flags)
        elif item == "HIGHESTMODSEQ":
            value = status.highestmodseq
        else:  # APPENDLIMIT: not offered
            continue
        values.append(f"{item} {value}")
    return b"STATUS " + wire_name(folder) + b" (" + " ".join(values).encode() + b")"


async def _status(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Status) and s.user is not None
    folder = await _named(s, cmd.tag, cmd.mailbox)
    if folder is None:
        return
    s.untagged(await _status_line(s, folder, cmd.items))
    s.tagged(cmd.tag, "OK", "Status completed")


# -- APPEND ------------------------------------------------------------------------------

async def _append(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, Append) and s.user is not None
    folder = await _named(s, cmd.tag, cmd.mailbox)
    if folder is None:
        return
    if not cmd.message:
        s.tagged(cmd.tag, "NO", "Empty message")
        return
    flags = frozenset(f for f in cmd.flags if f.lower() != RECENT.lower())
    quota = await s.services.quota(s.user) if s.services.quota else None
    try:
        stored = await s.store.deliver(s.user, cmd.message, folder=folder, flags=flags,
                                       quota_bytes=quota, internal_date=cmd.date_time)
    except NoSuchFolder:  # RFC 3501: the client may CREATE it and try again
        s.tagged(cmd.tag, "NO", f"Mailbox does not exist: {cmd.mailbox}", "TRYCREATE")
        return
    s.learn(None, folder, data=cmd.message)
    s.tagged(cmd.tag, "OK", "Append completed",
             f"APPENDUID {stored.uidvalidity} {stored.uid}")


# -- NAMESPACE / QUOTA -------------------------------------------------------------------

async def _namespace(s: ImapSession, cmd: Command) -> None:
    s.untagged(f'NAMESPACE (("" "{SEPARATOR}")) NIL NIL')
    s.tagged(cmd.tag, "OK", "Namespace completed")


async def _quota_line(s: ImapSession) -> bytes | None:
    assert s.user is not None
    limit = await s.services.quota(s.user) if s.services.quota else None
    if limit is None:
        return None
    used = await s.store.usage(s.user)
    return b'QUOTA "" (STORAGE %d %d)' % ((used + 1023) // 1024, limit // 1024)


async def _getquotaroot(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, GetQuotaRoot) and s.user is not None
    folder = await _named(s, cmd.tag, cmd.mailbox)
    if folder is None:
        return
    await s.store.folder_status(s.user, folder)
    s.untagged(b"QUOTAROOT " + wire_name(folder) + b' ""')
    line = await _quota_line(s)
    if line is not None:
        s.untagged(line)
    s.tagged(cmd.tag, "OK", "Getquotaroot completed")


async def _getquota(s: ImapSession, cmd: Command) -> None:
    assert isinstance(cmd, GetQuota)
    if cmd.root != "":
        s.tagged(cmd.tag, "NO", "No such quota root (the only one is \"\")", "NONEXISTENT")
        return
    line = await _quota_line(s)
    if line is not None:
        s.untagged(line)
    s.tagged(cmd.tag, "OK", "Getquota completed")


AUTHENTICATED: dict[str, Handler] = {
    "SELECT": _select,
    "EXAMINE": _select,
    "CREATE": _create,
    "DELETE": _delete,
    "RENAME": _rename,
    "SUBSCRIBE": _subscribe,
    "UNSUBSCRIBE": _subscribe,
    "LIST": _list,
    "LSUB": _list,
    "STATUS": _status,
    "APPEND": _append,
    "NAMESPACE": _namespace,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _getquotaroot,
}
