"""Mod-sequences (RFC 7162): what both backends keep of expunged messages.

Every change to a folder (a delivery, a copy or move into it, a flag change, an expunge)
takes the folder's next mod-sequence. Live messages carry theirs
(:attr:`~mailward.store.interface.MessageInfo.modseq`); expunged ones are remembered as
:class:`Vanished`: groups ``(modseq, uids)``, one per expunging operation, bounded to
:data:`VANISHED_LIMIT` UIDs. The oldest groups are dropped past the limit and ``floor``
rises to the newest dropped modseq: a client that last synced before ``floor`` is told
every UID it may know that no longer exists (RFC 7162 §3.2.5.2 allows that), not only the
ones expunged since.

Text form (the Maildir log's records and the PostgreSQL ``store_folders.vanished``
column): ``<modseq> <uid-set>`` lines with ``uid-set`` as in IMAP (``3:5,9``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

VANISHED_LIMIT = 20_000  # expunged UIDs remembered per folder


def uid_ranges(uids: Iterable[int]) -> str:
    """``1:3,7`` for ascending distinct UIDs (sorted here)."""
    out: list[str] = []
    ordered = sorted(set(uids))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(out)


def parse_ranges(text: str) -> list[int]:
    """The UIDs of a ``uid_ranges`` text; ``ValueError`` if malformed."""
    uids: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        first, last = int(lo), int(hi or lo)
        if first <= 0 or last < first or last - first > 1 << 24:
            raise ValueError(f"bad UID range {part!r}")
        uids.extend(range(first, last + 1))
    return uids


@dataclass(slots=True)
class Vanished:
    """Expunged UIDs by the modseq that expunged them, and the pruning ``floor``."""

    groups: list[tuple[int, list[int]]] = field(default_factory=list)
    floor: int = 0

    @property
    def count(self) -> int:
        return sum(len(uids) for _, uids in self.groups)

    def add(self, modseq: int, uids: Iterable[int], limit: int | None = None) -> None:
        chosen = sorted(set(uids))
        if not chosen:
            return
        self.groups.append((modseq, chosen))
        self.prune(limit)

    def prune(self, limit: int | None = None) -> None:
        """Drop the oldest groups past ``limit`` (default :data:`VANISHED_LIMIT`) UIDs,
        raising ``floor``."""
        limit = VANISHED_LIMIT if limit is None else limit
        total = self.count
        while total > limit and self.groups:
            dropped, gone = self.groups.pop(0)
            total -= len(gone)
            self.floor = max(self.floor, dropped)

    def since(self, modseq: int) -> list[int] | None:
        """UIDs expunged after ``modseq``; ``None`` when that is not known any more."""
        if modseq < self.floor:
            return None
        return sorted({uid for seq, uids in self.groups if seq > modseq for uid in uids})

    def to_text(self) -> str:
        lines = [f"F{self.floor}"] if self.floor else []
        lines += [f"{seq} {uid_ranges(uids)}" for seq, uids in self.groups]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str | None) -> Vanished:
        """Parse ``to_text``; an unreadable line raises the floor past it (never wrong,
        only less precise)."""
        found = cls()
        for line in (text or "").splitlines():
            try:
                if line.startswith("F"):
                    found.floor = max(found.floor, int(line[1:]))
                    continue
                seq, _, ranges = line.partition(" ")
                found.groups.append((int(seq), parse_ranges(ranges)))
            except ValueError:
                found.floor = max([found.floor, *(seq for seq, _ in found.groups)])
        return found


def expunged_in(known: Iterable[tuple[int, int]], live: set[int]) -> list[int]:
    """The full answer when the precise one is gone: every UID in the ``known`` ranges
    (inclusive ``(low, high)``) that is not ``live``."""
    out: set[int] = set()
    for lo, hi in known:
        out.update(uid for uid in range(lo, hi + 1) if uid not in live)
    return sorted(out)
