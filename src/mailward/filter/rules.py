"""Heuristic rules for what the content model misses: dangerous attachments (executables,
also inside zip archives or behind a double extension; macro-enabled Office documents),
missing or malformed Date / Message-ID, dates far from the time of receipt, a From
display name that shows another domain's address, and GTUBE, the standard test string that
any spam filter treats as certain spam (operators send it to see the filter act).

Each rule is a finding with a fixed score and a reason; ``RulesCheck`` is the pipeline
check. Parsing is lenient: a message that cannot be parsed yields no findings here (the
content model and the SMTP layer deal with it).
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from mailward.filter.features import EXECUTABLE, header_text
from mailward.filter.parsed import ParsedMessage, parse
from mailward.filter.pipeline import FilterInput, Finding, parsed_of

__all__ = ["SCORES", "RulesCheck", "findings_in", "findings_of"]

SCORES = {
    "executable-attachment": 9.0,  # with the content model's doubt: quarantine
    "executable-in-archive": 9.0,
    "double-extension": 4.0,  # on top of the executable finding
    "macro-document": 5.0,
    "missing-date": 1.0,
    "missing-message-id": 1.5,
    "malformed-message-id": 1.0,
    "date-in-future": 2.0,
    "date-long-ago": 1.0,
    "from-name-foreign-address": 2.5,
    "gtube": 1000.0,  # as SpamAssassin: above any threshold
}
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
MACRO_EXTENSIONS = frozenset(("docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppam",
                              "sldm"))
OFFICE_ZIPS = frozenset(("docx", "xlsx", "pptx", "docm", "xlsm", "pptm"))
MAX_ARCHIVE = 20 * 1024 * 1024  # zip attachments bigger than this are not opened
FUTURE = timedelta(days=1)
LONG_AGO = timedelta(days=30)
_MESSAGE_ID = re.compile(r"^\s*<[^<>@\s]+@[^<>@\s]+>\s*$")
_ADDRESS = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")  # the end of the header


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[1].lower() if "." in name else ""


def _attachments(parsed: ParsedMessage) -> Iterator[tuple[str, Message]]:
    for part in parsed.walk():
        # (no Content-Disposition and no "name" in Content-Type: no file name can be there,
        # and looking costs two header scans and parameter parses per part)
        if part.is_multipart() or (part.get("content-disposition") is None and "name" not in
                                   str(part.get("content-type", "")).lower()):
            continue
        name = part.get_filename()
        if name:
            yield header_text(str(name)).strip().strip('"'), part


def _archive_names(parsed: ParsedMessage, part: Message) -> list[str]:
    payload = parsed.decoded(part)
    if not isinstance(payload, bytes) or len(payload) > MAX_ARCHIVE:
        return []
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError, RuntimeError):
        return []


def _attachment_findings(parsed: ParsedMessage) -> Iterator[tuple[str, str]]:
    for name, part in _attachments(parsed):
        extension = _extension(name)
        if extension in EXECUTABLE:
            yield "executable-attachment", f"executable attachment {name!r}"
            inner = _extension(name[: -len(extension) - 1])
            if inner and inner not in EXECUTABLE:
                yield "double-extension", f"{name!r} hides an executable behind .{inner}"
        elif extension in MACRO_EXTENSIONS:
            yield "macro-document", f"macro-enabled document {name!r}"
        elif extension == "zip" or extension in OFFICE_ZIPS:
            names = _archive_names(parsed, part)
            if extension in OFFICE_ZIPS:
                if any(n.lower().endswith("vbaproject.bin") for n in names):
                    yield "macro-document", f"{name!r} contains macros"
                continue
            bad = [n for n in names if _extension(n) in EXECUTABLE]
            if bad:
                yield "executable-in-archive", f"{name!r} contains executable {bad[0]!r}"


def _header_findings(msg: Message, received: datetime) -> Iterator[tuple[str, str]]:
    date = msg.get("Date")
    if date is None:
        yield "missing-date", "no Date header"
    else:
        try:
            sent = parsedate_to_datetime(str(date))
        except (TypeError, ValueError, IndexError):
            sent = None
        if sent is not None:
            if sent.tzinfo is None:
                sent = sent.replace(tzinfo=UTC)
            if sent - received > FUTURE:
                yield "date-in-future", f"dated {sent:%Y-%m-%d}, in the future"
            elif received - sent > LONG_AGO:
                yield "date-long-ago", f"dated {sent:%Y-%m-%d}, long before it arrived"
    message_id = msg.get("Message-ID")
    if message_id is None:
        yield "missing-message-id", "no Message-ID header"
    elif not _MESSAGE_ID.match(str(message_id)):
        yield "malformed-message-id", "the Message-ID is not <left@right>"
    sender = header_text(str(msg.get("From", "")))
    [(name, address)] = getaddresses([sender])[:1] or [("", "")]
    shown = _ADDRESS.search(name)
    if shown and "@" in address:
        domain = address.rsplit("@", 1)[1].lower()
        if shown.group(1).lower() != domain:
            yield ("from-name-foreign-address",
                   f"From shows {shown.group(0)!r} but is {address!r}")


def _gtube_findings(parsed: ParsedMessage) -> Iterator[tuple[str, str]]:
    """GTUBE in the body: as written, or in a text part's decoded content."""
    data = parsed.data
    blank = _BLANK_LINE.search(data)
    if (blank is not None and data.find(GTUBE, blank.end()) >= 0) or any(
            GTUBE in (parsed.decoded(part) or b"") for part in parsed.walk()
            if part.get_content_maintype() == "text" and not part.is_multipart()):
        yield "gtube", "the GTUBE test string: a test of the spam filter"


def findings_of(data: bytes, received: datetime | None = None) -> list[Finding]:
    """Every rule that fires for ``data`` (received at ``received``, default now)."""
    return findings_in(parse(data), received)


def findings_in(parsed: ParsedMessage, received: datetime | None = None) -> list[Finding]:
    """Every rule that fires for a parsed message (received at ``received``, default now)."""
    msg = parsed.root
    if msg is None:
        return []
    when = received or datetime.now(UTC)
    fired = [*_gtube_findings(parsed), *_attachment_findings(parsed),
             *_header_findings(msg, when)]
    seen: set[str] = set()
    found = []
    for rule, reason in fired:
        if rule not in seen:  # one finding per rule (the first reason)
            seen.add(rule)
            found.append(Finding(f"rule:{rule}", SCORES[rule], reason))
    return found


class RulesCheck:
    """Pipeline check running the heuristic rules (CPU work: the pipeline runs ``blocking``
    in a worker thread within its time budget)."""

    name = "rules"

    def blocking(self, message: FilterInput) -> Sequence[Finding]:
        return findings_in(parsed_of(message))

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        return await asyncio.to_thread(self.blocking, message)
