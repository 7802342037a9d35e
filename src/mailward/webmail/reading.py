"""Reading a message in webmail: headers, the text and sanitised HTML bodies, attachments.

Messages are parsed with the standard library's ``email`` (``policy.default``), bounded:
at most ``MAX_VIEW_BYTES`` of a message are read for a view; the parser never sees more
than ``MAX_MULTIPARTS`` multiparts and ``MAX_PARTS`` parts (:func:`bounded`); parts are
listed ``MAX_DEPTH`` deep, ``MAX_TEXT`` characters of each body decoded. A header that
does not parse falls back to its raw text; charsets decode leniently. Parts carry IMAP part numbers
("1", "2.1"), as the IMAP server's BODYSTRUCTURE numbers them (a message/rfc822 part is
one part; what it holds is not listed).

``attachment`` gives a part's bytes with a safe file name and a content type a browser
cannot run (no HTML, SVG, XML or script types; images only when their bytes are one);
the web layer adds ``Content-Disposition: attachment``, ``nosniff`` and a sandbox CSP.
"""

from __future__ import annotations

import asyncio
import bisect
import codecs
import email
import email.header
import email.utils
import mimetypes
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.policy import default as default_policy

from mailward.config import Settings
from mailward.core.errors import InvalidInput, NotFound
from mailward.store import MailStore
from mailward.webmail.images import ImageProxy, sniff_image
from mailward.webmail.sanitize import html_to_text, sanitize_html

__all__ = ["Attachment", "MessageView", "Reader", "read_message", "safe_content_type",
           "safe_filename"]

MAX_VIEW_BYTES = 32 * 1024 * 1024  # of a message, read for a view
MAX_PARTS = 200  # leaf parts listed (the email package needs ~5 ms a part)
MAX_MULTIPARTS = 50  # multipart containers read (so also their depth)
MAX_DEPTH = 20
MAX_TEXT = 2_000_000  # characters of each body
MAX_FILENAME = 120  # characters of an attachment's file name
_PART_ID = re.compile(r"^[1-9][0-9]{0,5}(\.[1-9][0-9]{0,5}){0,19}$")
_MSG_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A part besides the bodies: ``part`` is its IMAP part number; ``content_type`` as
    declared (lower case, no parameters); ``size`` its decoded size (estimated)."""

    part: str
    filename: str
    content_type: str
    size: int
    inline: bool
    content_id: str | None


@dataclass(frozen=True, slots=True)
class MessageView:
    """A message to show: headers decoded, ``html`` a complete sanitised document for the
    body iframe (None when the message has no HTML body), ``text`` the plain text
    (derived from the HTML when the message has none)."""

    folder: str
    uid: int
    subject: str
    sender: str
    sender_address: str
    to: list[str]
    cc: list[str]
    reply_to: list[str]
    date: datetime | None
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    text: str | None
    html: str | None
    remote_images: int
    attachments: list[Attachment]
    flags: frozenset[str]


# ---------------------------------------------------------------- headers


def _clean(text: str) -> str:
    """No lone surrogates (undecodable 8-bit), no control characters, one line."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = re.sub(r"[\r\n\t]+", " ", text)
    return "".join(c for c in text if unicodedata.category(c) != "Cc").strip()


def _raw(msg: Message, name: str) -> str | None:
    for key, value in msg.raw_items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _decoded_raw(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:  # malformed encoded words: the raw text
        return value


def header(msg: Message, name: str) -> str | None:
    """A header's decoded value; its raw text when it does not parse."""
    try:
        value = msg.get(name)
        return None if value is None else _clean(str(value))
    except Exception:  # the email package raises many kinds on bad input
        raw = _raw(msg, name)
        return None if raw is None else _clean(_decoded_raw(raw))


def _quote(name: str) -> str:
    if re.search(r'[()<>\[\]:;@\\,."]', name):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


def addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) pairs of an address header; broken ones skipped."""
    pairs: list[tuple[str, str]] = []
    try:
        value = msg.get(name)
        if value is None:
            return []
        pairs = [(a.display_name, a.addr_spec) for a in getattr(value, "addresses", ())]
    except Exception:  # fall back to the lenient old parser
        raw = _raw(msg, name)
        pairs = email.utils.getaddresses([_decoded_raw(raw)]) if raw else []
    out = []
    for display, address in pairs:
        display, address = _clean(display), _clean(address)
        if address in ("", "<>") or "@" not in address:
            continue
        out.append((display, address))
    return out


def _formatted(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{_quote(d)} <{a}>" if d else a for d, a in pairs]


def _date(msg: Message) -> datetime | None:
    try:
        value = msg.get("Date")
        when = getattr(value, "datetime", None)
    except Exception:
        raw = _raw(msg, "Date")
        try:
            when = email.utils.parsedate_to_datetime(raw) if raw else None
        except (TypeError, ValueError):
            when = None
    if when is None:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _ids(value: str | None) -> list[str]:
    return _MSG_ID.findall(value or "")


# ---------------------------------------------------------------- parts


@dataclass(slots=True)
class _Leaf:
    part: str
    msg: Message
    in_alternative: bool
    in_related: bool


def _maintype(msg: Message) -> str:
    try:
        return msg.get_content_maintype()
    except Exception:
        return "text"


def _type(msg: Message) -> str:
    try:
        return msg.get_content_type().lower()
    except Exception:
        return "application/octet-stream"


def leaves(msg: Message) -> list[_Leaf]:
    """The message's leaf parts in order, with their IMAP part numbers (bounded)."""
    out: list[_Leaf] = []

    def walk(node: Message, prefix: str, depth: int, alt: bool, related: bool) -> None:
        subtype = _type(node)
        if _maintype(node) == "multipart" and node.is_multipart() and depth < MAX_DEPTH:
            payload = node.get_payload()
            children = payload if isinstance(payload, list) else []
            for i, child in enumerate(children, 1):
                if len(out) >= MAX_PARTS:
                    return
                walk(child, f"{prefix}.{i}" if prefix else str(i), depth + 1,
                     alt or subtype == "multipart/alternative",
                     related or subtype == "multipart/related")
        else:
            out.append(_Leaf(prefix or "1", node, alt, related))

    walk(msg, "", 0, False, False)
    return out


def _disposition(msg: Message) -> str | None:
    try:
        return msg.get_content_disposition()
    except Exception:
        return None


def _filename(msg: Message) -> str | None:
    try:
        name = msg.get_filename()
    except Exception:
        name = None
    if name is None:
        try:
            param = msg.get_param("name")
        except Exception:
            param = None
        if isinstance(param, tuple):
            param = email.utils.collapse_rfc2231_value(param)
        name = str(param) if param else None
    return name


def _is_body(leaf: _Leaf) -> bool:
    return (_type(leaf.msg) in ("text/plain", "text/html")
            and _disposition(leaf.msg) != "attachment" and not _filename(leaf.msg))


def _charset(msg: Message) -> str:
    try:
        charset = msg.get_content_charset() or "utf-8"
        codecs.lookup(charset)
    except Exception:  # unknown or malformed charset
        return "utf-8"
    return "utf-8" if charset in ("us-ascii", "ascii", "utf-7", "x-unknown") else charset


def payload(msg: Message) -> bytes:
    """A leaf's decoded bytes (an enclosed message as its bytes)."""
    try:
        if _type(msg) == "message/rfc822" or _maintype(msg) == "multipart":
            inner = msg.get_payload()
            if isinstance(inner, list):
                return b"".join(part.as_bytes(policy=default_policy) for part in inner
                                if isinstance(part, Message))
        data = msg.get_payload(decode=True)
    except Exception:  # a broken encoding: the raw payload
        data = None
    if isinstance(data, bytes):
        return data
    raw = msg.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _text(msg: Message) -> str:
    data = payload(msg)[: MAX_TEXT * 4]
    charset = _charset(msg)
    for name, errors in ((charset, "strict"), ("utf-8", "strict"), (charset, "replace")):
        try:
            return data.decode(name, errors)[:MAX_TEXT]
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1")[:MAX_TEXT]


def _size(msg: Message) -> int:
    raw = msg.get_payload()
    if not isinstance(raw, str):
        return len(payload(msg))
    encoding = str(msg.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding == "base64":
        text = re.sub(r"\s+", "", raw)
        return len(text) * 3 // 4 - (len(text) - len(text.rstrip("=")))
    return len(raw)


def _content_id(msg: Message) -> str | None:
    raw = header(msg, "Content-ID")
    cid = (raw or "").strip().strip("<>").strip()
    return cid or None


# ---------------------------------------------------------------- file names and types

_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)


def safe_filename(name: str | None, part: str, content_type: str) -> str:
    """A file name safe to offer: no path, no control or direction characters, no
    characters Windows refuses, not hidden, at most ``MAX_FILENAME`` characters (the
    extension kept); ``part-N.ext`` when nothing is left."""
    text = unicodedata.normalize("NFC", _clean(name or ""))
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp",
                                                                      "Cs", "Co", "Cn"))
    text = re.sub(r'[<>:"|?*]', "_", text)
    text = re.sub(r"\s+", " ", text).strip(" .")
    if _WINDOWS_RESERVED.match(text):
        text = "_" + text
    if len(text) > MAX_FILENAME:
        stem, dot, ext = text.rpartition(".")
        ext = ext if dot and stem and 0 < len(ext) <= 10 else ""
        text = text[: MAX_FILENAME - len(ext) - 1].rstrip(" .") + ("." + ext if ext else "")
    if not text:
        ext = mimetypes.guess_extension(content_type) or ".bin"
        text = f"part-{part}{ext}"
    return text


_RASTER = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif",
                     "image/bmp", "image/x-icon"})
_APPLICATION = frozenset({
    "application/pdf", "application/zip", "application/x-zip-compressed", "application/gzip",
    "application/x-gzip", "application/x-tar", "application/x-7z-compressed",
    "application/x-rar-compressed", "application/vnd.rar", "application/msword",
    "application/rtf", "application/octet-stream", "application/pkcs7-signature",
    "application/pgp-signature", "application/pgp-encrypted", "application/pgp-keys",
    "application/ics", "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
})
_TEXT_CHARSETS = re.compile(
    r"^(utf-8|us-ascii|iso-8859-[0-9]{1,2}|windows-125[0-8]|koi8-[ru]|gb2312|gbk|gb18030|"
    r"big5|shift_jis|euc-jp|euc-kr)$")


def safe_content_type(declared: str, data: bytes, charset: str | None = None) -> str:
    """The type to serve a part's ``data`` with: one a browser shows or saves but never
    runs. Text is served as ``text/plain``; an image only when its bytes are one; HTML,
    SVG, XML, script and unknown types as ``application/octet-stream``."""
    declared = declared.lower().split(";")[0].strip()
    if declared.startswith("image/"):
        sniffed = sniff_image(data)
        return sniffed if sniffed in _RASTER else "application/octet-stream"
    if declared in ("text/html", "application/xhtml+xml", "text/xml", "application/xml",
                    "text/javascript", "application/javascript", "application/ecmascript",
                    "text/ecmascript", "application/x-javascript", "text/css"):
        return "application/octet-stream"
    if declared.startswith("text/"):
        if charset and _TEXT_CHARSETS.match(charset.lower()):
            return f"text/plain; charset={charset.lower()}"
        return "text/plain"
    if re.match(r"^(audio|video)/[a-z0-9][a-z0-9.+-]*$", declared) and "xml" not in declared:
        return declared
    if declared in _APPLICATION:
        return declared
    if re.match(r"^application/vnd\.[a-z0-9.-]+$", declared) and \
            not re.search(r"xml|html|script|svg|wap", declared):
        return declared
    if re.match(r"^application/vnd\.openxmlformats-officedocument\.[a-z.]+$", declared):
        return declared  # .docx, .xlsx, .pptx: zip containers, "+xml" only in the name
    return "application/octet-stream"


# ---------------------------------------------------------------- the view


_BOUNDARY = re.compile(rb'(?i)boundary\s*=\s*"?([^";\r\n]{1,200})')


def bounded(data: bytes) -> bytes:
    """``data`` cut before its ``MAX_MULTIPARTS + 1``-th multipart declaration and its
    ``MAX_PARTS + MAX_MULTIPARTS + 1``-th boundary line: the ``email`` parser's time grows with the
    parts and its stack with their depth, so it never sees more."""
    cut = len(data)
    boundaries: list[bytes] = []
    for count, match in enumerate(_BOUNDARY.finditer(data)):
        if count == MAX_MULTIPARTS:
            cut = data.rfind(b"\n", 0, match.start()) + 1
            break
        boundaries.append(re.escape(match.group(1).strip()))
    if boundaries:
        lines = re.compile(rb"(?m)^--(?:" + b"|".join(set(boundaries)) + rb")")
        for count, match in enumerate(lines.finditer(data, 0, cut)):
            if count == MAX_PARTS + MAX_MULTIPARTS:
                cut = match.start()
                break
    return data[:cut]


def parse(data: bytes) -> EmailMessage:
    """The message as the ``email`` package reads it (policy.default), :func:`bounded`."""
    msg = email.message_from_bytes(bounded(data), policy=default_policy)
    assert isinstance(msg, EmailMessage)
    return msg


def read_message(data: bytes, *, folder: str, uid: int, flags: frozenset[str],
                 allow_images: bool, part_url: Callable[[str], str],
                 image_url: Callable[[str], str]) -> MessageView:
    """A :class:`MessageView` of the message ``data`` (pure: no store, no network)."""
    msg = parse(data[:MAX_VIEW_BYTES])
    parts = leaves(msg)
    html_leaf = next((p for p in parts if _is_body(p) and _type(p.msg) == "text/html"), None)
    text_leaf = next((p for p in parts if _is_body(p) and _type(p.msg) == "text/plain"), None)
    if html_leaf and text_leaf and not html_leaf.in_alternative and \
            parts.index(text_leaf) < parts.index(html_leaf):
        html_leaf = None  # a plain body first, an inline HTML part later: show the text
    by_cid: dict[str, str] = {}
    attachments = []
    for leaf in parts:
        if leaf is html_leaf or leaf is text_leaf:
            continue
        declared = _type(leaf.msg)
        cid = _content_id(leaf.msg)
        if cid:
            by_cid.setdefault(cid, leaf.part)
            by_cid.setdefault(cid.lower(), leaf.part)
        inline = _disposition(leaf.msg) == "inline" or (cid is not None and leaf.in_related)
        attachments.append(Attachment(
            leaf.part, safe_filename(_filename(leaf.msg), leaf.part, declared), declared,
            _size(leaf.msg), inline, cid))

    def cid_url(cid: str) -> str | None:
        part = by_cid.get(cid) or by_cid.get(cid.lower())
        return part_url(part) if part else None

    html: str | None = None
    remote = 0
    text = _text(text_leaf.msg) if text_leaf else None
    if html_leaf is not None:
        source = _text(html_leaf.msg)
        clean = sanitize_html(source, allow_images=allow_images, image_url=image_url,
                              cid_url=cid_url)
        html, remote = clean.html, clean.remote_images
        if text is None:
            text = html_to_text(source)
    senders = addresses(msg, "From") or addresses(msg, "Sender")
    sender_name, sender_address = senders[0] if senders else ("", "")
    refs = _ids(header(msg, "References"))
    in_reply_to = _ids(header(msg, "In-Reply-To"))
    message_ids = _ids(header(msg, "Message-ID"))
    return MessageView(
        folder=folder, uid=uid, subject=header(msg, "Subject") or "",
        sender=sender_name or sender_address, sender_address=sender_address,
        to=_formatted(addresses(msg, "To")), cc=_formatted(addresses(msg, "Cc")),
        reply_to=_formatted(addresses(msg, "Reply-To")), date=_date(msg),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None, references=refs,
        text=text, html=html, remote_images=remote, attachments=attachments, flags=flags)


def message_part(data: bytes, part: str) -> tuple[str, str, bytes]:
    """A leaf part of ``data`` by IMAP part number: (safe file name, safe type, bytes)."""
    if not _PART_ID.match(part):
        raise InvalidInput(f"{part!r} is not a part number")
    msg = parse(data)
    for leaf in leaves(msg):
        if leaf.part == part:
            declared = _type(leaf.msg)
            body = payload(leaf.msg)
            name = safe_filename(_filename(leaf.msg), part, declared)
            try:
                charset = leaf.msg.get_content_charset()
            except Exception:
                charset = None
            return name, safe_content_type(declared, body, charset), body
    raise NotFound(f"the message has no part {part}")


class Reader:
    """Reads messages of the logged-in mailbox for the webmail pages."""

    def __init__(self, store: MailStore, settings: Settings) -> None:
        self.store = store
        self.images = ImageProxy(settings)

    async def _flags(self, mailbox: str, folder: str, uid: int) -> frozenset[str]:
        infos = await self.store.messages(mailbox, folder)
        at = bisect.bisect_left([info.uid for info in infos], uid)
        return infos[at].flags if at < len(infos) and infos[at].uid == uid else frozenset()

    async def view(self, mailbox: str, folder: str, uid: int, *, allow_images: bool,
                   part_url: Callable[[str], str]) -> MessageView:
        """Message ``uid`` of ``folder`` to show; ``part_url(part)`` is the URL of a part
        (``cid:`` images); remote images go through the image proxy when allowed.

        Raises the store's ``NoSuchFolder``/``NoSuchMessage`` when it is not there.
        """
        data = await self.store.fetch(mailbox, folder, uid)
        flags = await self._flags(mailbox, folder, uid)
        return await asyncio.to_thread(
            read_message, data, folder=folder, uid=uid, flags=flags,
            allow_images=allow_images, part_url=part_url, image_url=self.images.url_for)

    async def attachment(self, mailbox: str, folder: str, uid: int, part: str
                         ) -> tuple[str, str, bytes]:
        """Part ``part`` of a message: (safe file name, safe content type, bytes)."""
        if not _PART_ID.match(part):
            raise InvalidInput(f"{part!r} is not a part number")
        data = await self.store.fetch(mailbox, folder, uid)
        return await asyncio.to_thread(message_part, data, part)
