"""Spam-filter training from what IMAP users file into and out of their Junk folder.

Copying or moving a message into the ``\\Junk`` folder (RFC 6154), or appending one
there, reports it as spam; copying or moving one out of Junk into any folder but
``\\Trash`` reports it as ham. The session collects these :class:`Lesson` s while a
command runs and hands them to the :class:`SpamReporter` only after the command's
answer is sent (see :meth:`mailward.imap.session.ImapSession.report_pending`), so a slow
or failing reporter never delays or fails an IMAP command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from mailward.imap.listing import SPECIAL_USE
from mailward.store import MailStore, StoreError

log = logging.getLogger(__name__)

JUNK = "\\Junk"
TRASH = "\\Trash"
BATCH_MESSAGES = 100  # messages read from the store in one go for reporting
REPORT_TIMEOUT = 60.0  # per message: a stuck filter must not hold the session for ever


class SpamReporter(Protocol):
    async def report(self, mailbox: str, data: bytes, spam: bool) -> None:
        """Teach the filter that ``data`` (a raw message of ``mailbox``) is spam or ham."""
        ...


def verdict(source: str | None, target: str) -> bool | None:
    """What filing messages from folder ``source`` (``None``: APPEND) into ``target``
    teaches: ``True`` spam, ``False`` ham, ``None`` nothing."""
    into = SPECIAL_USE.get(target)
    out_of = SPECIAL_USE.get(source) if source is not None else None
    if into == JUNK:
        return None if out_of == JUNK else True  # Junk → Junk teaches nothing
    if out_of == JUNK and into != TRASH:
        return False
    return None


@dataclass(frozen=True, slots=True)
class Lesson:
    """Messages to report once the command is answered: where they are now (``uids`` in
    ``folder`` of ``mailbox``), or their bytes when already at hand (APPEND)."""

    mailbox: str
    folder: str
    spam: bool
    uids: tuple[int, ...] = ()
    data: bytes | None = None


async def report(reporter: SpamReporter, store: MailStore, lessons: Iterable[Lesson]) -> None:
    """Report every message of ``lessons``; errors are logged, never raised."""
    for lesson in lessons:
        if lesson.data is not None:
            await _report_one(reporter, lesson.mailbox, lesson.data, lesson.spam)
        uids = list(lesson.uids)
        for start in range(0, len(uids), BATCH_MESSAGES):
            batch = uids[start:start + BATCH_MESSAGES]
            try:
                raw = await store.fetch_many(lesson.mailbox, lesson.folder, batch)
            except StoreError as exc:  # e.g. the folder was deleted meanwhile
                log.warning("Cannot read messages of %s/%s to report as %s: %s",
                            lesson.mailbox, lesson.folder, _kind(lesson.spam), exc)
                break
            except Exception:
                log.exception("Cannot read messages of %s/%s to report as %s",
                              lesson.mailbox, lesson.folder, _kind(lesson.spam))
                break
            for uid in batch:  # UIDs expunged meanwhile are left out
                if uid in raw:
                    await _report_one(reporter, lesson.mailbox, raw[uid], lesson.spam)


async def _report_one(reporter: SpamReporter, mailbox: str, data: bytes, spam: bool) -> None:
    try:
        async with asyncio.timeout(REPORT_TIMEOUT):
            await reporter.report(mailbox, data, spam)
    except Exception:
        log.exception("Reporting a message of %s as %s failed", mailbox, _kind(spam))


def _kind(spam: bool) -> str:
    return "spam" if spam else "ham"
