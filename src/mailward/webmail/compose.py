"""Building the messages webmail writes: new mail, replies, forwards, drafts.

Pure functions over the stdlib ``email`` package (``policy.default``; header values that
still fail to parse fall back to their raw text): what a compose form starts with
(:func:`reply_form`, :func:`forward_form`, :func:`draft_form`) and the MIME message made
from a form (:func:`build`): a text part, an optional HTML alternative, attachments, and
for "forward as attachment" the original as a ``message/rfc822`` part.

A draft carries the state a form needs besides its headers (reply or forward of which
message, the identity) in an ``X-Mailward-Draft`` header; only drafts have it, never a
message that is sent. Attachment parts are named by their IMAP section number ("2", "3",
...: the parts of a ``multipart/mixed`` after the body), as the reader names them.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from urllib.parse import quote, unquote

from mailward.core.errors import InvalidInput
from mailward.core.normalize import normalize_address
from mailward.webmail.reading import Attachment
from mailward.webmail.sanitize import html_to_text

__all__ = ["DRAFT_HEADER", "ComposeForm", "Upload", "addresses", "build", "draft_form",
           "format_addresses", "forward_form", "forward_subject", "html_to_text", "reply_form",
           "reply_subject"]

DRAFT_HEADER = "X-Mailward-Draft"
#: building policy: CRLF, and 7-bit safe parts (quoted-printable or base64 as needed)
BUILD_POLICY = SMTP.clone(cte_type="7bit")
_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|fwd?|wg|tr)(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)

@dataclass(frozen=True, slots=True)
class Upload:
    """A file the user attached in the compose form."""

    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class ComposeForm:
    """What the compose page shows and posts back (``attachments``: parts of the draft
    ``draft_uid`` kept; ``forward``: the message to attach whole, "forward as
    attachment"; ``mode``/``source``: what was replied to or forwarded, flagged
    ``\\Answered``/``$Forwarded`` when the mail is sent)."""

    sender: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    text: str = ""
    html: str | None = None
    identity_id: int | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    forward: tuple[str, int] | None = None
    attachments: list[Attachment] = field(default_factory=list)
    draft_uid: int | None = None
    mode: str = "new"  # new | reply | replyall | forward | forward-attach
    source: tuple[str, int] | None = None


def parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=default)


def header(msg: EmailMessage, name: str) -> str:
    """A header's decoded value ("" if missing), its raw text if it does not parse."""
    try:
        value = msg.get(name)
    except Exception:  # malformed: show what is there
        found = [v for k, v in msg.raw_items() if k.lower() == name.lower()]
        return " ".join(str(found[0]).split()) if found else ""
    return " ".join(str(value).split()) if value is not None else ""


_EMPTY_ITEMS = re.compile(r"(?:,\s*)+,")


def addresses(text: str) -> list[tuple[str, str]]:
    """``(name, address)`` of a comma-separated address field as typed; InvalidInput
    naming the first that is not an address."""
    found = []
    flat = " ".join(text.replace(";", ",").split())  # no line breaks get into a header
    flat = _EMPTY_ITEMS.sub(",", flat).strip(", ")  # "a@x, , b@y" and trailing commas
    for name, address in getaddresses([flat] if flat else []):
        if not address and not name:  # what the parser could not read at all
            raise InvalidInput("not an email address: a recipient could not be read")
        try:
            found.append((name, normalize_address(address)))
        except InvalidInput:
            raise InvalidInput(f"not an email address: {(address or name)!r}") from None
    return found


def _header_addresses(msg: EmailMessage, *names: str) -> list[tuple[str, str]]:
    values = []
    for name in names:
        values += [header(msg, name)] if msg.get_all(name) else []
    found = []
    for display, address in getaddresses(values):
        try:
            found.append((display, normalize_address(address)))
        except InvalidInput:
            continue
    return found


def format_addresses(pairs: Iterable[tuple[str, str]]) -> str:
    """An address field's value: names quoted where needed."""
    shown = []
    for name, address in pairs:
        name = " ".join(name.split())
        if name and name != address:
            escaped = name.replace("\\", "\\\\").replace('"', '\\"')
            quoted = f'"{escaped}"' if re.search(r'[,;:<>@"()\[\]\\.]', name) else name
            shown.append(f"{quoted} <{address}>")
        else:
            shown.append(address)
    return ", ".join(shown)


def reply_subject(subject: str) -> str:
    return "Re: " + _PREFIX.sub("", subject)


def forward_subject(subject: str) -> str:
    return "Fwd: " + _PREFIX.sub("", subject)


def body_text(msg: EmailMessage) -> str:
    """The message's text: its text/plain body, else its HTML body as text."""
    for kinds, convert in ((("plain",), False), (("html",), True)):
        try:
            part = msg.get_body(preferencelist=kinds)
            if part is None:
                continue
            content = part.get_content()
        except Exception:  # undecodable part
            continue
        if isinstance(content, str):
            return html_to_text(content) if convert else content.replace("\r\n", "\n")
    return ""


def _when(msg: EmailMessage) -> str:
    try:
        sent = parsedate_to_datetime(header(msg, "date"))
    except (TypeError, ValueError):
        return header(msg, "date") or "an unknown date"
    return sent.strftime("%a, %d %b %Y at %H:%M")


def quoted(msg: EmailMessage) -> str:
    """"On <date>, <name> wrote:" and the original's text as "> " lines."""
    senders = _header_addresses(msg, "from")
    who = (senders[0][0] or senders[0][1]) if senders else "someone"
    lines = body_text(msg).rstrip("\n").split("\n")
    return f"On {_when(msg)}, {who} wrote:\n" + "\n".join(
        ">" + (" " + line if line and not line.startswith(">") else line) for line in lines)


def forwarded_block(msg: EmailMessage) -> str:
    """The header block and text of a message forwarded inline."""
    rows = [("From", header(msg, "from")), ("Date", header(msg, "date")),
            ("Subject", header(msg, "subject")), ("To", header(msg, "to")),
            ("Cc", header(msg, "cc"))]
    head = "\n".join(f"{name}: {value}" for name, value in rows if value)
    return f"---------- Forwarded message ----------\n{head}\n\n{body_text(msg)}"


def with_signature(text: str, signature: str | None) -> str:
    return f"{text}\n\n-- \n{signature.strip()}\n" if signature and signature.strip() else text


def _message_ids(value: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value)


def _first_id(value: str) -> str | None:
    found = _message_ids(value)
    return found[0] if found else None


def reply_form(original: bytes, own: set[str], *, all_: bool, sender: str,
               signature: str | None, identity_id: int | None) -> ComposeForm:
    """A reply (to the author, or to everyone but ``own`` addresses with ``all_``)."""
    msg = parse(original)
    authors = _header_addresses(msg, "reply-to") or _header_addresses(msg, "from")
    if authors and all(address in own for _, address in authors):  # replying to own mail
        authors = _header_addresses(msg, "to")
    to, cc = list(authors), []
    if all_:
        seen = {address for _, address in to}
        for name, address in _header_addresses(msg, "to"):
            if address not in own and address not in seen:
                to.append((name, address))
                seen.add(address)
        for name, address in _header_addresses(msg, "cc"):
            if address not in own and address not in seen:
                cc.append((name, address))
                seen.add(address)
    message_id = _first_id(header(msg, "message-id"))
    references = _message_ids(header(msg, "references")) or _message_ids(
        header(msg, "in-reply-to"))[:1]
    if message_id:
        references = [r for r in references if r != message_id] + [message_id]
    text = with_signature("", signature) + "\n\n" + quoted(msg) + "\n"
    return ComposeForm(sender=sender, to=format_addresses(to), cc=format_addresses(cc),
                       subject=reply_subject(header(msg, "subject")), text=text,
                       identity_id=identity_id, in_reply_to=message_id,
                       references=references[-20:], mode="replyall" if all_ else "reply")


def forward_form(original: bytes, *, attach: bool, sender: str, signature: str | None,
                 identity_id: int | None, source: tuple[str, int]) -> ComposeForm:
    """A forward: inline (header block and text) or the original attached whole."""
    msg = parse(original)
    text = with_signature("", signature)
    if not attach:
        text += "\n\n" + forwarded_block(msg) + "\n"
    return ComposeForm(sender=sender, subject=forward_subject(header(msg, "subject")),
                       text=text, identity_id=identity_id,
                       forward=source if attach else None,
                       mode="forward-attach" if attach else "forward", source=source)


def attachment_parts(msg: EmailMessage) -> list[tuple[str, EmailMessage]]:
    """The attachments of a message we built: (IMAP section, part)."""
    if not msg.is_multipart() or msg.get_content_type() != "multipart/mixed":
        return []
    parts = msg.get_payload()
    assert isinstance(parts, list)
    return [(str(number), part) for number, part in enumerate(parts, 1) if number > 1]


def describe(section: str, part: EmailMessage) -> Attachment:
    payload = part.get_payload(decode=True)
    if payload is None and part.get_content_type() == "message/rfc822":
        payload = part.as_bytes()
    name = part.get_filename() or ("message.eml" if part.get_content_maintype() == "message"
                                   else "attachment")
    return Attachment(section, name, part.get_content_type(), len(payload or b""), False, None)


def draft_state(form: ComposeForm, unparsed: dict[str, str] | None = None) -> str:
    """The draft's state header: mode, source, identity, and address fields as typed
    when they are not (yet) addresses (``unparsed``: field name → text)."""
    values = [f"mode={form.mode}"]
    for name, text in (unparsed or {}).items():
        values.append(f"typed-{name}={quote(text, safe='')}")
    if form.source:
        values.append(f"source={quote(form.source[0], safe='')}/{form.source[1]}")
    if form.identity_id is not None:
        values.append(f"identity={form.identity_id}")
    return "; ".join(values)


def draft_form(data: bytes, uid: int) -> ComposeForm:
    """Reopen a draft we saved: its fields, text, HTML and attachments."""
    msg = parse(data)
    state = dict(item.strip().partition("=")[::2]
                 for item in header(msg, DRAFT_HEADER).split(";") if "=" in item)
    source = None
    if "/" in state.get("source", ""):
        folder, _, number = state["source"].rpartition("/")
        if number.isdigit():
            source = (unquote(folder), int(number))
    identity = state.get("identity", "")
    text, html = "", None
    try:
        plain = msg.get_body(preferencelist=("plain",))
        rich = msg.get_body(preferencelist=("html",))
        text = str(plain.get_content()) if plain is not None else ""
        html = str(rich.get_content()) if rich is not None else None
    except Exception:  # a draft changed by another client: keep what can be read
        text = body_text(msg)
    in_reply_to = _first_id(header(msg, "in-reply-to"))
    def typed(name: str) -> str:
        kept = state.get(f"typed-{name}")
        return unquote(kept) if kept is not None else header(msg, name)

    return ComposeForm(
        sender=header(msg, "from"), to=typed("to"), cc=typed("cc"),
        bcc=typed("bcc"), subject=header(msg, "subject"),
        text=text.replace("\r\n", "\n"), html=html,
        identity_id=int(identity) if identity.isdigit() else None, in_reply_to=in_reply_to,
        references=_message_ids(header(msg, "references")),
        attachments=[describe(section, part) for section, part in attachment_parts(msg)],
        draft_uid=uid, mode=state.get("mode", "new"), source=source)


def _safe_name(name: str) -> str:
    return "".join(c for c in name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
                   if c.isprintable())[:200].strip()


def new_message_id(host: str) -> str:
    return f"<{secrets.token_hex(12)}@{host}>"


@dataclass(frozen=True, slots=True)
class Built:
    """A message made from a form: the draft/Sent copy (with Bcc) and its parts."""

    message: EmailMessage
    message_id: str
    recipients: list[str]  # To, Cc and Bcc addresses, each once
    from_address: str

    def with_bcc(self) -> bytes:
        return self.message.as_bytes(policy=BUILD_POLICY)

    def to_send(self) -> bytes:
        """The transmitted bytes: no Bcc header (the envelope carries those recipients)."""
        copy = parse(self.with_bcc())
        del copy["bcc"]
        return copy.as_bytes(policy=BUILD_POLICY)


def build(form: ComposeForm, *, from_header: str, reply_to: str | None, host: str,
          attachments: list[tuple[str, str, bytes]] | None = None,
          kept: list[EmailMessage] | None = None, forwarded: bytes | None = None,
          draft: bool = False, now: datetime | None = None) -> Built:
    """The message of ``form`` (From ``from_header``; ``attachments``: new files as
    (name, type, bytes); ``kept``: parts of the previous draft; ``forwarded``: the
    original attached whole). A draft may lack recipients; it keeps its state header."""
    senders = addresses(from_header)
    if len(senders) != 1:
        raise InvalidInput("a message needs exactly one sender address")
    unparsed: dict[str, str] = {}  # a draft keeps a half-typed address field as typed

    def parsed(name: str, text: str) -> list[tuple[str, str]]:
        try:
            return addresses(text)
        except InvalidInput:
            if not draft:
                raise
            unparsed[name] = text[:2000]
            return []

    to, cc, bcc = parsed("to", form.to), parsed("cc", form.cc), parsed("bcc", form.bcc)
    recipients = list(dict.fromkeys(address for _, address in to + cc + bcc))
    if not recipients and not draft:
        raise InvalidInput("add at least one recipient")
    if any(c in form.subject for c in "\r\n"):
        if not draft:
            raise InvalidInput("the subject must be one line")
        form = replace(form, subject=" ".join(form.subject.split()))
    msg = EmailMessage(policy=BUILD_POLICY)
    message_id = new_message_id(host)
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["From"] = format_addresses(senders)
    for name, pairs in (("To", to), ("Cc", cc), ("Bcc", bcc)):
        if pairs:
            msg[name] = format_addresses(pairs)
    if reply_to:
        msg["Reply-To"] = format_addresses(addresses(reply_to))
    msg["Subject"] = form.subject.strip()
    msg["Message-ID"] = message_id
    if form.in_reply_to and _message_ids(form.in_reply_to):
        msg["In-Reply-To"] = _message_ids(form.in_reply_to)[0]
    references = [r for ref in form.references for r in _message_ids(ref)]
    if references:
        msg["References"] = " ".join(references[-20:])
    if draft:
        msg[DRAFT_HEADER] = draft_state(form, unparsed)
    msg["MIME-Version"] = "1.0"
    text = form.text.replace("\r\n", "\n")
    msg.set_content(text if text.endswith("\n") else text + "\n")
    if form.html:
        msg.add_alternative(form.html, subtype="html")
    for part in kept or []:  # first: their sections stay as they were
        if msg.get_content_type() != "multipart/mixed":
            msg.make_mixed()
        msg.attach(part)
    for name, content_type, data in attachments or []:
        maintype, _, subtype = content_type.lower().partition("/")
        if maintype in ("message", "multipart") or not re.fullmatch(r"[\w.+-]+", maintype) \
                or not re.fullmatch(r"[\w.+-]+", subtype):
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(data, maintype=maintype, subtype=subtype,
                           filename=_safe_name(name) or "attachment")
    if forwarded is not None:
        original = parse(forwarded)
        name = re.sub(r"[^\w .,()-]+", "_", header(original, "subject"))[:80].strip()
        msg.add_attachment(original, filename=f"{name or 'message'}.eml")
    return Built(msg, message_id, recipients, senders[0][1])
