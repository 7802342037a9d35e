"""The selected folder as one session sees it: sequence numbers, flags, \\Recent.

The store knows UIDs; IMAP clients also address messages by sequence number, which
only change when the session *tells* the client about an expunge. So the session keeps
its own view (``uids`` in sequence order, flags per UID) and :meth:`SelectedFolder.sync`
compares it with the store, yielding the untagged responses that bring the client up
to date (RFC 3501 §7.3.1, §7.4.1, §5.2).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from mailward.store import RECENT, MailStore, MessageInfo
from mailward.store.modseq import uid_ranges


class RecentClaims:
    """Which messages already counted as \\Recent for some session of this process.

    RFC 3501 gives \\Recent to the first session that sees a message; a message whose
    first sighting is unknown (after a restart) is treated as recent once.
    """

    def __init__(self) -> None:
        self._highest: dict[tuple[str, str, int], int] = {}

    def claim(self, mailbox: str, folder: str, uidvalidity: int, uids: list[int],
              *, take: bool) -> set[int]:
        """The UIDs among ``uids`` that are recent to the caller; ``take`` claims them."""
        key = (mailbox, folder, uidvalidity)
        floor = self._highest.get(key, 0)
        recent = {uid for uid in uids if uid > floor}
        if take and uids and uids[-1] > floor:
            self._highest[key] = uids[-1]
        return recent

    def peek(self, mailbox: str, folder: str, uidvalidity: int, uids: list[int]) -> int:
        """How many of ``uids`` no session has claimed yet (for STATUS RECENT)."""
        floor = self._highest.get((mailbox, folder, uidvalidity), 0)
        return sum(1 for uid in uids if uid > floor)


@dataclass
class SelectedFolder:
    """One session's view of its selected folder."""

    mailbox: str
    name: str
    readonly: bool
    uidvalidity: int
    uidnext: int
    uids: list[int] = field(default_factory=list)
    infos: dict[int, MessageInfo] = field(default_factory=dict)
    recent: set[int] = field(default_factory=set)
    version: int = -1
    #: UIDs the store no longer has but the client has not been told about yet.
    vanished: set[int] = field(default_factory=set)

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def flags(self, uid: int) -> frozenset[str]:
        flags = self.infos[uid].flags
        return flags | {RECENT} if uid in self.recent else flags

    def keywords(self) -> list[str]:
        distinct = {info.flags for info in self.infos.values()}  # stores share flag sets
        return sorted({f for flags in distinct for f in flags if not f.startswith("\\")})

    def remember(self, info: MessageInfo) -> None:
        """Record flags this session itself just stored (no echo at the next sync)."""
        if info.uid in self.infos:
            self.infos[info.uid] = info

    def forget(self, uids: list[int]) -> list[int]:
        """Drop expunged UIDs; return the EXPUNGE sequence numbers to send, in order."""
        seqs: list[int] = []
        for uid in sorted(uids, reverse=True):  # highest first: earlier numbers stay valid
            seq = self.seq_of(uid)
            if seq is None:
                continue
            seqs.append(seq)
            del self.uids[seq - 1]
            self.infos.pop(uid, None)
            self.recent.discard(uid)
            self.vanished.discard(uid)
        return seqs

    async def load(self, store: MailStore, claims: RecentClaims) -> None:
        """Fill the view at SELECT/EXAMINE time."""
        infos = await store.messages(self.mailbox, self.name)
        self.uids = [info.uid for info in infos]
        self.infos = {info.uid: info for info in infos}
        self.recent = claims.claim(self.mailbox, self.name, self.uidvalidity, self.uids,
                                   take=not self.readonly)

    def expunged(self, uids: list[int], *, qresync: bool) -> list[bytes]:
        """Forget expunged UIDs; the responses that tell the client: ``EXPUNGE`` per
        message, or one ``VANISHED`` once QRESYNC is enabled (RFC 7162 §3.2.10)."""
        if not qresync:
            return [b"* %d EXPUNGE" % seq for seq in self.forget(uids)]
        told = [uid for uid in uids if self.seq_of(uid) is not None]
        self.forget(told)
        return [b"* VANISHED " + uid_ranges(told).encode()] if told else []

    def flags_line(self, uid: int, *, condstore: bool, qresync: bool) -> bytes:
        """The unsolicited ``FETCH`` of a message's flags (with its UID once QRESYNC is
        enabled, with its MODSEQ once CONDSTORE is)."""
        parts = [b"UID %d" % uid] if qresync else []
        parts.append(b"FLAGS " + flag_list(self.flags(uid)))
        if condstore:
            parts.append(b"MODSEQ (%d)" % self.infos[uid].modseq)
        return b"* %d FETCH (%s)" % (self.seq_of(uid) or 0, b" ".join(parts))

    async def sync(self, store: MailStore, claims: RecentClaims, *,
                   expunge_allowed: bool, condstore: bool = False,
                   qresync: bool = False) -> list[bytes]:
        """Untagged responses for what changed in the store since the last look."""
        infos = await store.messages(self.mailbox, self.name)
        current = {info.uid: info for info in infos}
        out: list[bytes] = []
        gone = [uid for uid in self.uids if uid not in current]
        if gone:
            if expunge_allowed:
                out += self.expunged(gone, qresync=qresync)
            else:
                self.vanished.update(gone)
        known = self.infos
        for uid in self.uids:
            new = current.get(uid)
            if new is None:
                continue
            was = known[uid]
            old = was.flags
            flags_moved = new.flags is not old and new.flags != old
            if flags_moved or new.modseq != was.modseq:
                self.infos[uid] = new
                if flags_moved or condstore:  # CONDSTORE: a change is told with its MODSEQ
                    out.append(self.flags_line(uid, condstore=condstore, qresync=qresync))
        highest = self.uids[-1] if self.uids else 0
        added = [info for info in infos if info.uid > highest]
        if added:
            new_uids = [info.uid for info in added]
            self.uids += new_uids
            self.infos.update((info.uid, info) for info in added)
            self.recent |= claims.claim(self.mailbox, self.name, self.uidvalidity,
                                        new_uids, take=not self.readonly)
            self.uidnext = max(self.uidnext, new_uids[-1] + 1)
            out.append(b"* %d EXISTS" % self.exists)
            out.append(b"* %d RECENT" % len(self.recent))
        return out


_ORDER = {f: i for i, f in enumerate(
    ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent"))}


def flag_list(flags: frozenset[str] | set[str]) -> bytes:
    """``(\\Seen \\Recent $Label)``: system flags in Dovecot's order, then keywords."""
    ordered = sorted(flags, key=lambda f: (_ORDER.get(f, len(_ORDER)), f.lower()))
    return ("(" + " ".join(ordered) + ")").encode("utf-8")
