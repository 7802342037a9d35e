"""Delivery status notifications (RFC 3464, RFC 3461, RFC 6522): pure builders, no I/O.

``build_dsn`` returns a whole ``multipart/report; report-type=delivery-status`` message
as CRLF bytes, built with the stdlib ``email`` package so that the stdlib parses it back
(the ``message/delivery-status`` part as a list of header blocks).

Header values are reduced to one line (controls become spaces), so a remote server's
reply cannot inject fields. Report fields stay ASCII: other characters are written as
``\\x{HHHH}`` (RFC 6533), non-ASCII addresses get the ``utf-8`` type. Only ``To:`` may
carry raw UTF-8, for an SMTPUTF8 sender.

The original is attached byte for byte (line endings made CRLF), never re-serialised, or
only its header block (``text/rfc822-headers``) for RET=HDRS, when it is over
``max_full_size``, or when that block is malformed (not header fields, or not UTF-8).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import textwrap
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email.generator import BytesGenerator
from email.message import Message, MIMEPart
from email.utils import format_datetime
from io import BytesIO
from typing import Any, Literal

Action = Literal["failed", "delayed", "delivered", "relayed", "expanded"]

ACTIONS: frozenset[str] = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
_NOTIFY_FOR_ACTION = {"failed": "FAILURE", "delayed": "DELAY", "delivered": "SUCCESS",
                      "relayed": "SUCCESS", "expanded": "SUCCESS"}

SUBJECT_FAILED = "Undelivered Mail Returned to Sender"
SUBJECT_DELAYED = "Delayed Mail (still being retried)"
SUBJECT_SUCCESS = "Successful Mail Delivery Report"

_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_FIELD_LINE = re.compile(rb"^[!-9;-~]+[ \t]*:")
_NEWLINE = re.compile(rb"\r\n|\r|\n")
_ADDR_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
_MAX_VALUE = 900  # characters kept of one field value (lines stay under 998 octets)
_WIDTH = 76

_STATUS_TEXT = {
    "5.1.1": "the mailbox does not exist",
    "5.1.2": "the destination domain does not exist or accepts no mail",
    "5.2.2": "the mailbox is full",
    "4.2.2": "the mailbox is full",
    "5.3.4": "the message is too big for the destination",
    "5.4.6": "the message was caught in a mail forwarding loop",
    "5.4.7": "the message could not be delivered in time",
    "4.4.7": "the message could not be delivered in time",
    "5.7.1": "the destination refused the message",
}


@dataclass(frozen=True)
class DsnRecipient:
    """One recipient's line of a DSN (RFC 3464 §2.3)."""

    final_recipient: str
    action: Action
    status: str
    original_recipient: str | None = None
    remote_mta: str | None = None
    diagnostic: str | None = None
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None


def should_notify(notify: tuple[str, ...], action: str) -> bool:
    """Whether RCPT ``NOTIFY=`` asks for a DSN for ``action`` (RFC 3461 §4.1).

    No NOTIFY means failures and delays are reported, successes are not; ``NEVER``
    suppresses everything; otherwise only the listed conditions are reported.
    """
    condition = _NOTIFY_FOR_ACTION.get(action)
    if condition is None:
        raise ValueError(f"unknown DSN action {action!r}")
    wanted = {word.strip().upper() for word in notify if word.strip()}
    if not wanted:
        return condition in ("FAILURE", "DELAY")
    if "NEVER" in wanted:
        return False
    return condition in wanted


def build_dsn(
    *,
    reporting_mta: str,
    sender: str,
    recipients: Sequence[DsnRecipient],
    original: bytes,
    arrival_date: datetime,
    envid: str | None = None,
    ret: str | None = None,
    postmaster: str | None = None,
    max_full_size: int = 256 * 1024,
    now: datetime | None = None,
) -> bytes:
    """Build the DSN for ``recipients`` of ``original``, to be sent to ``sender``.

    Raises ``ValueError`` for the null sender (a DSN is never sent to ``<>``), for an
    empty recipient list, an unknown action or a malformed status code.
    """
    if not sender:
        raise ValueError("a DSN is never sent to the null sender")
    if not recipients:
        raise ValueError("a DSN needs at least one recipient")
    for rcpt in recipients:
        if rcpt.action not in ACTIONS:
            raise ValueError(f"unknown DSN action {rcpt.action!r}")
        if not _STATUS.match(rcpt.status):
            raise ValueError(f"malformed status code {rcpt.status!r}")
    now = _utc(now) if now is not None else datetime.now(UTC)
    mta = _host(reporting_mta) or "localhost"
    sender_line = _oneline(sender)
    policy: email_policy.EmailPolicy[Any] = (
        email_policy.SMTPUTF8 if not sender_line.isascii() else email_policy.SMTP)
    # Values are folded here; the policy must not refold (it would RFC 2047-encode them).
    policy = policy.clone(refold_source="none")
    actions = {r.action for r in recipients}

    # A MIMEPart: EmailMessage differs only in set_content() adding MIME-Version, which is
    # set below; and the parts attached are MIMEParts (typeshed's attach() wants the same class).
    outer = MIMEPart(policy=policy)
    _set(outer, "From", f"Mail Delivery System <MAILER-DAEMON@{mta}>")
    _set(outer, "To", f"<{sender_line}>")
    _set(outer, "Subject", _subject(actions))
    _set(outer, "Date", format_datetime(now))
    _set(outer, "Message-ID", f"<{now:%Y%m%d%H%M%S}.{secrets.token_hex(8)}@{mta}>")
    _set(outer, "Auto-Submitted", "auto-replied")
    _set(outer, "MIME-Version", "1.0")
    outer["Content-Type"] = "multipart/report; report-type=delivery-status"

    notice = MIMEPart(policy=policy)
    notice.set_content(_human_text(mta, recipients, postmaster or f"postmaster@{mta}"))
    _set(notice, "Content-Description", "Notification")
    outer.attach(notice)
    outer.attach(_status_part(policy, mta, recipients, arrival_date, envid, now))
    data = _NEWLINE.sub(b"\r\n", original)
    placeholder = f"X-Mailward-Placeholder: {secrets.token_hex(16)}"
    returned, body = _original_part(policy, data, len(original), ret, max_full_size)
    returned.set_payload(placeholder)
    outer.attach(returned)
    # The boundary must not occur in the attached bytes, which the generator never sees.
    boundary = f"=_{secrets.token_hex(16)}"
    while f"--{boundary}".encode() in data:  # pragma: no cover - 2**-128
        boundary = f"=_{secrets.token_hex(16)}"
    outer.set_boundary(boundary)

    out = BytesIO()
    BytesGenerator(out, policy=policy).flatten(outer)
    head, found, tail = out.getvalue().partition(placeholder.encode("ascii"))
    if not found:  # pragma: no cover - the generator writes such payloads verbatim
        raise AssertionError("placeholder for the returned message not found")
    return head + body + tail


# --- the parts ------------------------------------------------------------------------


def _status_part(policy: email_policy.EmailPolicy[Any], mta: str,
                 recipients: Sequence[DsnRecipient], arrival_date: datetime,
                 envid: str | None, now: datetime) -> MIMEPart:
    """The ``message/delivery-status`` part: per-message block, then per-recipient ones."""
    head = Message(policy=policy)
    _set(head, "Reporting-MTA", f"dns; {mta}")
    if envid:
        _set(head, "Original-Envelope-Id", _ascii(envid))
    _set(head, "Arrival-Date", format_datetime(_utc(arrival_date)))
    blocks: list[Message | str] = [head]
    for rcpt in recipients:
        block = Message(policy=policy)
        if rcpt.original_recipient:
            _set(block, "Original-Recipient",
                 _typed_address(rcpt.original_recipient, typed=True))
        _set(block, "Final-Recipient", _typed_address(rcpt.final_recipient))
        _set(block, "Action", rcpt.action)
        _set(block, "Status", rcpt.status)
        if rcpt.remote_mta and (host := _host(rcpt.remote_mta)):
            _set(block, "Remote-MTA", f"dns; {host}")
        if rcpt.diagnostic and (diagnostic := _ascii(rcpt.diagnostic)):
            _set(block, "Diagnostic-Code", f"smtp; {diagnostic}")
        _set(block, "Last-Attempt-Date", format_datetime(_utc(rcpt.last_attempt or now)))
        if rcpt.action == "delayed" and rcpt.will_retry_until is not None:
            _set(block, "Will-Retry-Until", format_datetime(_utc(rcpt.will_retry_until)))
        blocks.append(block)
    part = MIMEPart(policy=policy)
    part["Content-Type"] = "message/delivery-status"
    _set(part, "Content-Description", "Delivery report")
    part.set_payload(blocks)
    return part


def _original_part(
    policy: email_policy.EmailPolicy[Any], data: bytes, size: int, ret: str | None,
    max_full_size: int,
) -> tuple[MIMEPart, bytes]:
    """The returned-message part (without payload) and the bytes to put in it.

    ``data`` is the original with CRLF line endings, ``size`` its size as received.
    The caller splices the bytes in after generation, so they are never decoded or
    re-serialised.
    """
    end = data.find(b"\r\n\r\n")
    if data.startswith(b"\r\n"):
        header_block = b""
    elif end < 0:
        header_block = data if data.endswith(b"\r\n") or not data else data + b"\r\n"
    else:
        header_block = data[: end + 2]
    full = ((ret or "").strip().upper() != "HDRS" and size <= max_full_size
            and _well_formed(header_block))
    part = MIMEPart(policy=policy)
    if full:
        part["Content-Type"] = "message/rfc822"
        _set(part, "Content-Description", "Undelivered Message")
        payload = data
    else:
        part["Content-Type"] = "text/rfc822-headers"
        _set(part, "Content-Description", "Undelivered Message Headers")
        payload = _cut(header_block, max_full_size)
    if not payload.isascii():
        _set(part, "Content-Transfer-Encoding", "8bit")
    return part, payload


def _well_formed(header_block: bytes) -> bool:
    """Header fields only (continuations allowed), in UTF-8 (RFC 6532) or ASCII."""
    if not header_block:
        return False
    try:
        header_block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    lines = header_block[:-2].split(b"\r\n")
    if lines[0][:1] in (b" ", b"\t"):
        return False
    return all(line[:1] in (b" ", b"\t") or _FIELD_LINE.match(line) for line in lines)


def _cut(block: bytes, limit: int) -> bytes:
    """``block`` cut to at most ``limit`` bytes at a line boundary."""
    if len(block) <= limit:
        return block
    end = block.rfind(b"\r\n", 0, max(limit - 1, 0))
    return block[: end + 2] if end >= 0 else b""


def _subject(actions: AbstractSet[str]) -> str:
    if "failed" in actions:
        return SUBJECT_FAILED
    if "delayed" in actions:
        return SUBJECT_DELAYED
    return SUBJECT_SUCCESS


def _human_text(mta: str, recipients: Sequence[DsnRecipient], postmaster: str) -> str:
    """The friendly first part, in English."""
    failed = [r for r in recipients if r.action == "failed"]
    delayed = [r for r in recipients if r.action == "delayed"]
    done = [r for r in recipients if r.action not in ("failed", "delayed")]
    paragraphs = [f"This is the mail system at host {mta}."]
    if failed:
        paragraphs.append(
            "I'm sorry to have to inform you that your message could not be delivered "
            "to one or more recipients. The mail system has given up on them and will "
            "not try again. The message (or its headers) is attached below."
        )
    if delayed:
        paragraphs.append(
            "This is only a warning about a delay, not an error: your message has not "
            "been delivered yet to one or more recipients. The mail system will keep "
            "trying; you do not need to send the message again."
        )
    if done:
        paragraphs.append("Your message was delivered to one or more of its recipients.")
    paragraphs.append(
        f"For further assistance, please send mail to {_oneline(postmaster)}. If you do "
        "so, please include this report. You can delete your own text from the attached "
        "returned message."
    )
    lines: list[str] = []
    for text in paragraphs:
        lines.extend(textwrap.wrap(text, _WIDTH))
        lines.append("")
    lines.append("                   The mail system")
    for title, group in (
        ("Delivery failed permanently for:", failed),
        ("Delivery is delayed (still being retried) for:", delayed),
        ("Delivered successfully to:", done),
    ):
        if not group:
            continue
        lines.extend(["", title])
        for rcpt in group:
            lines.append("")
            lines.extend(textwrap.wrap(f"<{_oneline(rcpt.final_recipient)}>: "
                                       f"{_explain(rcpt)}", _WIDTH,
                                       subsequent_indent="    ", break_on_hyphens=False))
    return "\n".join(lines) + "\n"


def _explain(rcpt: DsnRecipient) -> str:
    """One recipient's outcome in words."""
    server = _host(rcpt.remote_mta) if rcpt.remote_mta else ""
    diagnostic = _ascii(rcpt.diagnostic) if rcpt.diagnostic else ""
    meaning = _STATUS_TEXT.get(rcpt.status)
    if rcpt.action == "relayed":
        text = "relayed to a system that does not send delivery notifications"
    elif rcpt.action == "expanded":
        text = "delivered to a list or alias that forwards to other addresses"
    elif rcpt.action == "delivered":
        text = "delivered"
    else:
        text = f"status {rcpt.status}" + (f" ({meaning})" if meaning else "")
    if server and diagnostic:
        text += f"; host {server} said: {diagnostic}"
    elif server or diagnostic:
        text += f"; last tried host {server}" if server else f": {diagnostic}"
    if rcpt.action == "delayed":
        until = rcpt.will_retry_until
        text += ". The mail system will keep trying" + (
            f" until {format_datetime(_utc(until))}." if until is not None else ".")
    return text


# --- value helpers --------------------------------------------------------------------


def _set(msg: Message, name: str, value: str) -> None:
    """Add a header field as given, folded at spaces (never RFC 2047-encoded)."""
    msg.set_raw(name, _fold(name, value))


def _fold(name: str, value: str, width: int = 78) -> str:
    """Fold a one-line ``value`` at spaces so lines stay under ``width`` where possible."""
    lines: list[str] = []
    current = ""
    used = len(name) + 2
    for word in value.split(" "):
        if current and used + len(current) + 1 + len(word) > width:
            lines.append(current)
            current, used = word, 1
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return "\r\n ".join(lines)


def _oneline(value: str) -> str:
    """``value`` as one line: controls become spaces, runs of blanks collapse."""
    value = _CONTROL.sub(" ", _SURROGATE.sub("\ufffd", value))
    return " ".join(value.split())


def _ascii(value: str) -> str:
    """``value`` as one ASCII line; other characters become ``\\x{HHHH}`` (RFC 6533)."""
    out: list[str] = []
    size = 0
    for char in _oneline(value):
        piece = char if char.isascii() else f"\\x{{{ord(char):04X}}}"
        size += len(piece)
        if size > _MAX_VALUE:
            break
        out.append(piece)
    return "".join(out)


def _typed_address(address: str, *, typed: bool = False) -> str:
    """An address with its type: ``rfc822; a@b``, or ``utf-8; ...`` when not ASCII.

    With ``typed`` the value may already carry its type (an ORCPT such as ``rfc822;a@b``),
    which is kept.
    """
    line = _oneline(address)
    kind, sep, rest = line.partition(";")
    kind = kind.strip()
    if typed and sep and _ADDR_TYPE.match(kind):
        if not rest.isascii() and kind.lower() == "rfc822":
            kind = "utf-8"
        return f"{kind};{_ascii(rest)}"
    if line.isascii():
        return f"rfc822; {_ascii(line)}"
    return f"utf-8; {_ascii(line)}"


def _host(host: str) -> str:
    """A host name for a ``dns;`` field: its first word, IDNA A-labels when possible."""
    name = _oneline(host).split(" ")[0]
    with contextlib.suppress(UnicodeError):
        name = name.encode("idna").decode("ascii") if not name.isascii() else name
    return _ascii(name)


def _utc(moment: datetime) -> datetime:
    """An aware datetime; naive ones are taken to be UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
