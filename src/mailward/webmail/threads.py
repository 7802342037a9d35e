"""Conversation grouping for webmail (pure, no I/O).

Messages are joined when one names another through ``In-Reply-To`` or ``References``
(or two name the same parent, present or not). As a fallback a reply or forward
(``Re:``, ``Fwd:``, ``AW:``, ``SV:`` … with any ``[list]`` tags stripped) joins the latest
earlier message of the same normalised subject, but only within :data:`SUBJECT_WINDOW`,
and never on an empty or generic subject (:data:`GENERIC_SUBJECTS`).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["GENERIC_SUBJECTS", "SUBJECT_WINDOW", "ThreadItem", "group", "message_ids",
           "normalize_subject"]

#: How far back a reply may reach by subject alone.
SUBJECT_WINDOW = timedelta(days=14)
#: Subjects too common to join messages by (compared after normalising).
GENERIC_SUBJECTS = frozenset({
    "", "(no subject)", "no subject", "(kein betreff)", "kein betreff", "hi", "hello", "hey",
    "hallo", "test", "question", "info", "update", "fyi", "thanks", "thank you", "re",
    "fwd", "fw", "invoice", "meeting", "document", "documents", "important",
})

_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|sv|wg|vs|antw|rif|tr|ref|odp|res)\s*(?:\[\d+\]|\(\d+\)|\^\d+)?"
    r"\s*[:\uff1a]|\[[^\]]{0,60}\])\s*", re.IGNORECASE)
_REPLY_PREFIX = re.compile(r"^\s*(?:\[[^\]]{0,60}\]\s*)*(?:re|fwd?|aw|sv|wg|vs|antw|rif|tr|"
                           r"ref|odp|res)\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:\uff1a]", re.IGNORECASE)
_TRAILER = re.compile(r"\s*\((?:fwd|fw)\)\s*$", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
_MSGID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True, slots=True)
class ThreadItem:
    """One message as the grouping sees it; ``key`` is the caller's (e.g. folder and UID)."""

    key: Hashable
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    date: datetime | None  # timezone-aware


def message_ids(text: str | None) -> list[str]:
    """The ``<id>`` values in a Message-ID / In-Reply-To / References value, in order."""
    return _MSGID.findall(text) if text else []


def normalize_subject(subject: str) -> tuple[str, bool]:
    """The subject without reply/forward prefixes and list tags, lower-cased with runs of
    white space made one; and whether it was marked as a reply or forward."""
    reply = _REPLY_PREFIX.match(subject) is not None
    text = subject
    while True:
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    text = _TRAILER.sub("", text)
    return _SPACES.sub(" ", text).strip().casefold(), reply


def group(items: Iterable[ThreadItem], *, window: timedelta = SUBJECT_WINDOW,
          ) -> list[list[ThreadItem]]:
    """The conversations among ``items``: each oldest first (undated last), the
    conversations newest first by their newest message."""
    found = list(items)
    parent = list(range(len(found)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(a: int, b: int) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    # by identifiers: a message and every id it names share a conversation
    by_id: dict[str, int] = {}
    for i, item in enumerate(found):
        own = _ids(item)
        for ident in own:
            if ident in by_id:
                join(by_id[ident], i)
            else:
                by_id[ident] = i
    # by subject: a reply joins the latest earlier message of its subject in the window
    dated = sorted((i for i, item in enumerate(found) if item.date is not None),
                   key=lambda i: (found[i].date, i))
    latest: dict[str, int] = {}
    for i in dated:
        item = found[i]
        base, reply = normalize_subject(item.subject)
        if base in GENERIC_SUBJECTS:
            continue
        previous = latest.get(base)
        if reply and previous is not None:
            earlier = found[previous].date
            assert earlier is not None and item.date is not None
            if item.date - earlier <= window:
                join(previous, i)
        latest[base] = i
    groups: dict[int, list[ThreadItem]] = {}
    for i, item in enumerate(found):
        groups.setdefault(root(i), []).append(item)
    result = [sorted(members, key=_oldest_first) for members in groups.values()]
    result.sort(key=_newest, reverse=True)
    return result


def _ids(item: ThreadItem) -> list[str]:
    """The message's own id first, then the ids it names (each once)."""
    names = [item.message_id or "", *item.references, item.in_reply_to or ""]
    seen: list[str] = []
    for name in names:
        for ident in message_ids(name) or ([name.strip()] if name.strip() else []):
            if ident not in seen:
                seen.append(ident)
    return seen


def _oldest_first(item: ThreadItem) -> tuple[bool, float]:
    return (item.date is None, item.date.timestamp() if item.date else 0.0)


def _newest(members: list[ThreadItem]) -> float:
    dates = [m.date.timestamp() for m in members if m.date is not None]
    return max(dates) if dates else float("-inf")
