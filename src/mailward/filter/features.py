"""Message bytes -> sparse hashed features for the content model.

Every feature is a namespaced string (``"b:free"``, ``"h:no-date"``, ``"ld:example.com"``)
hashed with CRC-32 (stable across processes, unlike ``hash()``) into ``N_BUCKETS`` buckets;
present features have value 1.0, except a long body's n-grams, which share a fixed L2 weight
(``WORD_NORM``: cross-validation on the training corpus halved 1-AUC with it, since one long
newsletter no longer piles up hundreds of mildly spammy words). The features aim at what spam
looks like in general: wording of the subject and the text body (unigrams and bigrams; HTML
read as text; shouting, money, "!!", obfuscated words), the shape of the headers (which
sender-side headers, mailer family, reply-to, relay hops, the layout of the Date, the
Message-ID and the sender's local part), how the message was built (its MIME structure,
charsets, 8-bit text under no or an ASCII charset, encoded subjects), HTML tricks (hidden,
tiny or white text, forms, scripts) and the links (IP, port or user-info hosts, redirects,
density).
Malformed messages never raise: whatever cannot be parsed or decoded is read from the raw
bytes instead.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr
from html.parser import HTMLParser

from mailward.filter.parsed import ParsedMessage, parse, parse_message

__all__ = ["extract", "features_of", "header_text", "parse_message", "tokens"]

BITS = 20
N_BUCKETS = 1 << BITS
MASK = N_BUCKETS - 1
MAX_TOKENS = 2000  # body tokens per message
MAX_SUBJECT_TOKENS = 50
MAX_TEXT = 200_000  # characters of body text looked at
MAX_PARTS = 50
WORD_NORM = 100.0  # body n-grams weigh min(1, sqrt(WORD_NORM / n)) (0: all weigh 1)

Features = dict[int, float]
MAX_STRUCTURE = 8  # content types in the MIME structure feature

_TOKEN = re.compile(r"[\w$€£#][\w$€£#'-]{0,23}")
_DIGIT_RUN = re.compile(r"\d+")
# Lower-case text. "w(?<=\bw)ww" is "\bwww" with every branch opening on a literal, so re
# skips ahead on {h, f, w} instead of trying each position (about five times faster).
_URL = re.compile(r"""(?:https?://|ftp://|w(?<=\bw)ww\.)([^/\s"'<>()\[\]?#]+)""")
_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_HTML_DROP = re.compile(
    r"<!--.*?(?:-->|$)|<(script|style)\b.*?(?:</\1\s*>|$)", re.I | re.S
)
# [^<>] rather than [^>]: an unclosed "<x" must not make the scan quadratic.
_HTML_BLOCK = re.compile(r"</?(?:br|p|div|tr|td|th|li|table|h\d|hr|blockquote)\b[^<>]*>", re.I)
_HTML_INLINE = re.compile(r"<(?!/?(?:a|img)\b)/?[a-z!?][^<>]*>", re.I)
# Whatever "<" is left that does not open a complete <a ...>, </a> or <img ...> tag is
# escaped: html.parser is quadratic on unclosed tags ("<b<b<b...": 30 s for 200 kB).
_HTML_STRAY = re.compile(r"<(?!/?(?:a|img)\b[^<>]*>)", re.I)
_ESCAPED = re.compile("[\udc80-\udcff]")
_IP = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
# Shape of the wording (original case): shouted words, words mixing letters and digits
# ("v1agra") and words spelt out with separators ("F.R.E.E"); money, percentages and "!!"
# are counted with str.count (an alternation of them all is several times slower).
_MIXED = re.compile(r"[a-zA-Z]\d+[a-zA-Z]")
_SPACED = re.compile(r"(?:\b[a-zA-Z][.*_-]){3,}[a-zA-Z]\b")
_NO_DIGITS = str.maketrans("", "", "0123456789")
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LETTERS = _UPPER + _UPPER.lower()
SHAPE_TEXT = 8_000  # characters of body text (and markup) the shapes are read from
# HTML tricks, read from the raw markup (lower-cased): hidden or tiny or white text, forms,
# scripts, frames and comments splitting a word. Plain substrings first, regexes only where
# needed and only when a cheap test says they may match.
HTML_MARKERS = (
    ("hidden", ("display:none", "display: none", "visibility:hidden", "visibility: hidden")),
    ("form", ("<form",)),
    ("script", ("<script", "onload=", "onclick=", "onmouseover=")),
    ("frame", ("<iframe", "<frame", "<object", "<embed")),
)
# (each starts with a literal: re then skips ahead to it instead of trying every position)
_TINY = (re.compile(r"font-size:\s*[0-3](?:\.\d+)?(?:px|pt)\b"),
         re.compile(r"size=[\"']?[-+]?[01]\b"))
_WHITE = re.compile(r"color[=:]\s*[\"']?(?:#fff\b|#ffffff\b|white\b)")
_SPLIT = re.compile(r"<!--[^<>]{0,40}-->\w")
# Header names that describe how a message was written and sent, not where it was read.
SHAPE_HEADERS = (
    "in-reply-to", "references", "user-agent", "x-mailer", "x-priority", "x-msmail-priority",
    "x-mimeole", "organization", "reply-to", "cc", "precedence", "list-id", "sender",
    "errors-to", "importance", "thread-index", "x-originating-ip", "mime-version",
    "content-transfer-encoding", "mail-followup-to", "x-accept-language",
)
_AGENT = re.compile(r"[a-z][a-z -]{0,30}")
_MSGID_SHAPE = (re.compile(r"[a-z]+"), re.compile(r"\d+"))
EXECUTABLE = frozenset((
    "exe", "scr", "pif", "com", "bat", "cmd", "vbs", "vbe", "js", "jse",
    "wsf", "wsh", "hta", "cpl", "msi", "jar", "lnk", "reg", "ps1", "dll",
))


def bucket(name: str) -> int:
    """The stable bucket of a named feature."""
    return zlib.crc32(name.encode("utf-8", "surrogatepass")) & MASK


BIAS = bucket("bias")


def _level(value: float, edges: tuple[float, ...]) -> int:
    """Index of the first edge ``value`` is below (coarse bins for counts and ratios)."""
    for i, edge in enumerate(edges):
        if value < edge:
            return i
    return len(edges)


def _domain(host: str) -> str:
    """Host of a URL (no user, no port), lower-case, trailing dots dropped."""
    host = host.rsplit("@", 1)[-1].split(":", 1)[0].strip(".").lower()
    return host


def _registered(host: str) -> str:
    """A rough registered domain: the last two labels (three under two-letter ccSLDs)."""
    labels = host.split(".")
    if len(labels) > 2 and len(labels[-1]) == 2 and len(labels[-2]) <= 3:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


class _HtmlText(HTMLParser):
    """HTML -> text; also collects hrefs and anchors whose text names another domain."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hrefs: list[str] = []
        self.mismatched = 0
        self.images = 0
        self._skip = 0
        self._href: str | None = None
        self._anchor: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "a":
            href = next((v for k, v in attrs if k == "href" and v), None)
            if href:
                self.hrefs.append(href)
            self._href, self._anchor = href, []
        elif tag == "img":
            self.images += 1
        elif tag in ("br", "p", "div", "tr", "td", "li"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "a" and self._href is not None:
            shown = _URL.search("".join(self._anchor).lower())
            linked = _URL.search(self._href.lower())
            if shown and linked:
                a = _registered(_domain(shown.group(1)))
                b = _registered(_domain(linked.group(1)))
                if a != b:
                    self.mismatched += 1
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.parts.append(data)
        if self._href is not None:
            self._anchor.append(data)


def _html_to_text(html: str) -> _HtmlText:
    """Text, links and images of an HTML part.

    A linear regex pre-pass drops comments, scripts, styles and every tag but ``<a>`` and
    ``<img>`` (block tags become spaces, inline ones nothing, so ``F<b>RE</b>E`` stays one
    word) and escapes stray ``<``; html.parser then reads the rest (entities, links), about
    three times faster than on the original and never quadratic.
    """
    parser = _HtmlText()
    html = _HTML_DROP.sub("", html[:MAX_TEXT])
    html = _HTML_BLOCK.sub(" ", html)
    html = _HTML_INLINE.sub("", html)
    html = _HTML_STRAY.sub("&lt;", html)
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient, but never let markup break scoring
        pass
    return parser


def _decode(parsed: ParsedMessage, part: Message) -> str:
    """A text part's content; undecodable bytes become replacement characters."""
    payload = parsed.decoded(part)
    if payload is None:
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    try:
        return payload.decode(part.get_content_charset() or "latin-1", "replace")
    except Exception:  # unknown charset name
        return payload.decode("latin-1")


def _read_headers(msg: Message) -> tuple[dict[str, str], int]:
    """First value of each header (by lower-case name) as raw text; the Received count."""
    headers: dict[str, str] = {}
    received = 0
    for name, value in msg.raw_items():
        name = name.lower()
        if name == "received":
            received += 1
        headers.setdefault(name, value if isinstance(value, str) else str(value))
    return headers, received


def header_text(value: str) -> str:
    """A header's text with RFC 2047 encoded words decoded; raw text when they are broken."""
    if _ESCAPED.search(value):  # raw 8-bit header bytes: most likely UTF-8
        try:
            raw = value.encode("ascii", "surrogateescape")
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                value = raw.decode("latin-1")
        except UnicodeError:
            pass
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:
        return value


class _Builder:
    """Collects feature names and hashes them."""

    __slots__ = ("features",)

    def __init__(self) -> None:
        self.features: Features = {BIAS: 1.0}

    def add(self, name: str) -> None:
        self.features[zlib.crc32(name.encode("utf-8", "surrogatepass")) & MASK] = 1.0

    def words(self, prefix: str, words: list[str], norm: float = 0.0) -> None:
        """Unigrams and bigrams of already normalised tokens.

        With ``norm``, each weighs ``min(1, sqrt(norm / distinct n-grams))``: a long text
        counts no more than a text of ``norm`` n-grams in total (L2), not one per word.
        The buckets are those of the names ``prefix + a`` and ``prefix + a + " " + b``, with
        CRC-32 carried on (``crc32(tail, crc32(head))`` is the CRC of ``head + tail``)
        rather than every name built and encoded.
        """
        if not words:  # as ever: bucket 0, the CRC of no name (the shipped model knows it)
            self.features[0] = 1.0
            return
        crc32 = zlib.crc32
        start = crc32(prefix.encode("utf-8", "surrogatepass"))
        spaced = ("\n " + "\n ".join(words)).encode("utf-8", "surrogatepass").split(b"\n")
        del spaced[0]  # b" word" for each word
        unigrams = [crc32(word[1:], start) for word in spaced]
        buckets = dict.fromkeys([crc & MASK for crc in unigrams], 1.0)
        del spaced[0]  # the second word on, each after the one before (the last starts none)
        buckets.update(dict.fromkeys(
            [crc32(word, crc) & MASK for crc, word in zip(unigrams, spaced, strict=False)], 1.0))
        if norm and len(buckets) > norm:
            buckets = dict.fromkeys(buckets, math.sqrt(norm / len(buckets)))
        self.features.update(buckets)


def tokens(text: str, limit: int) -> list[str]:
    """Lower-case word tokens; digit runs become ``#`` and long words are cut at 24."""
    return _lower_tokens(text[:MAX_TEXT].lower(), limit)


def _lower_tokens(text: str, limit: int) -> list[str]:
    """``tokens`` of lower-case text, reading no further than the first ``limit`` need.

    A prefix is scanned first: once it holds more than ``limit`` tokens, its first ``limit``
    ended before the next one began, so they are those of the whole text.
    """
    text = text[:MAX_TEXT]
    size = 16 * limit
    while size < len(text):
        found = _TOKEN.findall(_DIGIT_RUN.sub("#", text[:size]))
        if len(found) > limit:
            return found[:limit]
        size *= 4
    return _TOKEN.findall(_DIGIT_RUN.sub("#", text))[:limit]


def extract(data: bytes) -> Features:
    """Sparse hashed features (bucket -> 1.0) of one raw message; never raises."""
    return features_of(parse(data))


def features_of(parsed: ParsedMessage) -> Features:
    """The features of a parsed message (computed once, then kept with it); never raises."""
    found = parsed.memo.get("features")
    if found is None:
        out = _Builder()
        try:
            _extract(parsed, out)
        except Exception:  # last resort: the raw bytes as text
            text = parsed.data[:MAX_TEXT].decode("latin-1").lower()
            out.add("h:unparsable")
            out.words("b:", tokens(text, MAX_TOKENS))
        found = parsed.memo["features"] = out.features
    return found


def _extract(parsed: ParsedMessage, out: _Builder) -> None:
    add = out.add
    msg, data = parsed.root, parsed.data
    if msg is None:
        add("h:unparsable")
        text = data[:MAX_TEXT].decode("latin-1")
        out.words("b:", tokens(text, MAX_TOKENS))
        return

    # --- headers
    headers, received = _read_headers(msg)

    def header(name: str) -> str:
        return header_text(headers.get(name, "")).strip()

    subject = header("subject")
    if not subject:
        add("h:no-subject")
    if not header("date"):
        add("h:no-date")
    if not header("message-id"):
        add("h:no-message-id")
    from_domain = _from_features(header("from"), add)
    message_id = header("message-id")
    if from_domain and "@" in message_id:
        mid_domain = _registered(_domain(message_id.strip(" <>\t")))
        add("h:msgid-from-same" if mid_domain == from_domain else "h:msgid-from-differ")
    if header("list-unsubscribe"):
        add("h:list-unsubscribe")
    recipients = headers.get("to", "").count("@") + headers.get("cc", "").count("@")
    add(f"h:rcpts:{_level(recipients, (1, 2, 4, 10, 30))}")
    if parsed.defects:
        add("h:defects")
    _header_shape(headers, received, from_domain, add)

    letters = [c for c in subject if c.isalpha()]
    if letters:
        caps = sum(c.isupper() for c in letters) / len(letters)
        add(f"s:caps:{_level(caps, (0.2, 0.5, 0.8))}")
    add(f"s:bang:{min(subject.count('!'), 3)}")
    if "$" in subject:
        add("s:dollar")
    if "   " in subject.strip():
        add("s:space-run")
    raw_subject = headers.get("subject", "")  # how it was written: encoded words, raw 8-bit
    if "=?" in raw_subject:
        add("s:encoded")
    if _ESCAPED.search(raw_subject):
        add("s:8bit")
    _wording_shape(subject, "s", add)
    out.words("s:", tokens(subject, MAX_SUBJECT_TOKENS))

    # --- body
    texts: list[str] = []
    hrefs: list[str] = []
    has_plain = has_html = False
    images = mismatched = attachments = markup = 0
    structure: list[str] = []  # content types in walk order, containers included
    nonascii = 0  # characters of the text parts that are not ASCII
    for count, part in enumerate(msg.walk()):
        if count >= MAX_PARTS:
            add("m:many-parts")
            break
        ctype = part.get_content_type()
        if count < MAX_STRUCTURE:
            structure.append(ctype)
        if part.is_multipart():
            continue
        filename = disposition = None
        # (no Content-Disposition and no "name" in Content-Type: neither can be there, and
        # looking costs two more header scans and a parameter parse)
        if part.get("content-disposition") is not None or "name" in str(
                part.get("content-type", "")).lower():
            try:
                filename = part.get_filename()
            except Exception:
                filename = None
            try:
                disposition = part.get_content_disposition()
            except Exception:
                disposition = None
        if filename or disposition == "attachment":
            attachments += 1
            name = filename or ""
            if "." in name and name.rsplit(".", 1)[1].lower().strip() in EXECUTABLE:
                add("m:exe-attachment")
            add(f"m:attach-type:{ctype}")
            continue
        if ctype not in ("text/plain", "text/html"):
            if ctype.startswith("image/"):
                images += 1
            continue
        try:
            charset = (part.get_content_charset() or "none").lower()
        except Exception:
            charset = "bad"
        add(f"m:charset:{charset[:20]}")
        encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
        if encoding in ("base64", "quoted-printable"):
            add(f"m:{ctype[5:]}-{encoding}")
        text = _decode(parsed, part)[:MAX_TEXT]
        if not text.isascii():
            nonascii += len(text) - len(text.encode("ascii", "ignore"))
            if charset in ("us-ascii", "none"):
                add("m:8bit-undeclared")
        if ctype == "text/html":
            has_html = True
            markup += len(text)
            _html_tricks(text, add)
            html = _html_to_text(text)
            hrefs.extend(html.hrefs)
            images += html.images
            mismatched += html.mismatched
            text = "".join(html.parts)
        else:
            has_plain = True
        texts.append(text)

    add("ms:" + ",".join(structure))
    total = sum(map(len, texts))
    if total:
        add(f"m:nonascii:{_level(nonascii / total, (0.001, 0.01, 0.05, 0.2))}")
    if has_html and not has_plain:
        add("m:html-only")
    if not texts:
        add("m:no-text")
    add(f"m:attachments:{min(attachments, 3)}")
    add(f"m:images:{_level(images, (1, 2, 5))}")
    if mismatched:
        add("l:text-href-mismatch")

    body = " ".join(texts)
    lowered = body[:MAX_TEXT].lower()
    words = _lower_tokens(lowered, MAX_TOKENS)
    add(f"m:words:{_level(len(words), (10, 50, 200, 1000))}")
    if images and len(words) < 50:
        add("m:images-few-words")
    if markup:
        add(f"m:text-share:{_level(len(lowered) / markup, (0.05, 0.15, 0.3, 0.6))}")
    _wording_shape(body[:SHAPE_TEXT], "b", add)  # the first SHAPE_TEXT characters
    out.words("b:", words, WORD_NORM)
    _link_features(lowered, hrefs, add, from_domain, len(words))


def _header_shape(headers: dict[str, str], received: int, from_domain: str,
                  add: Callable[[str], None]) -> None:
    """Which sender-side headers are there, their rough values, and relay hops."""
    for name in SHAPE_HEADERS:
        if name in headers:
            add("hn:" + name)
    add(f"h:received:{_level(received, (1, 2, 3, 5, 8))}")
    agent = headers.get("x-mailer") or headers.get("user-agent")
    if agent:
        family = _AGENT.search(agent.lower())
        add("xm:" + (family.group(0).strip() if family else "?"))
    precedence = headers.get("precedence", "").strip().lower()
    if precedence:
        add("h:precedence:" + precedence[:10])
    priority = headers.get("x-priority", "").strip()
    if priority:
        add("h:priority:" + priority[:1])
    to = headers.get("to", "")
    if not to.strip():
        add("h:no-to")
    elif "@" not in to:
        add("h:to-no-address")
    reply_to = headers.get("reply-to", "")
    address = _ADDRESS.search(reply_to) if from_domain and "@" in reply_to else None
    if address:
        same = _registered(_domain(address.group(0).lower())) == from_domain
        add("h:replyto-same" if same else "h:replyto-differ")
    message_id = headers.get("message-id", "").strip(" <>\t\r\n").lower()
    if "@" in message_id:
        local = message_id.rsplit("@", 1)[0][:40]
        add("h:msgid-shape:" + _shape(local)[:16])
    date = headers.get("date", "").strip().lower()
    if date:  # "a, 9 a 9 9:9:9 -9" is the common layout; spamware writes others
        add("h:date-shape:" + _shape(date)[:40])


def _shape(text: str) -> str:
    """Letter runs become "a", digit runs "9": the layout a program writes a value in."""
    return _MSGID_SHAPE[1].sub("9", _MSGID_SHAPE[0].sub("a", text))


def _wording_shape(text: str, prefix: str, add: Callable[[str], None]) -> None:
    """Shouting, money, percentages, "!!" runs and (in a subject) obfuscated words."""
    found = {
        "money": text.count("$") + text.count("€") + text.count("£"),
        "pct": text.count("%"),
        "bangs": text.count("!!"),
    }
    if prefix == "s":  # too slow for a whole body; the body's words are tokens anyway
        found["mixed"] = len(_MIXED.findall(text))
        found["spaced"] = len(_SPACED.findall(text))
    for kind, n in found.items():
        if n:
            add(f"{prefix}:{kind}:{_level(n, (2, 5, 15))}")
    ascii_text = text.encode("ascii", "ignore")
    letters = len(ascii_text) - len(ascii_text.translate(None, _LETTERS))
    if letters >= 20:  # share of capitals (the subject's is read by letter above)
        upper = len(ascii_text) - len(ascii_text.translate(None, _UPPER))
        add(f"{prefix}:upper:{_level(upper / letters, (0.05, 0.1, 0.2, 0.4))}")


def _html_tricks(html: str, add: Callable[[str], None]) -> None:
    """Hidden, tiny or white text, forms, scripts, frames, comments splitting words."""
    html = html[:SHAPE_TEXT].lower()
    for name, markers in HTML_MARKERS:
        if any(marker in html for marker in markers):
            add("m:html-" + name)
    if any(pattern.search(html) for pattern in _TINY):
        add("m:html-tiny")
    if ("#fff" in html or "white" in html) and _WHITE.search(html):
        add("m:html-white")
    if "<!--" in html and any(html[m.start() - 1:m.start()].isalnum()
                              for m in _SPLIT.finditer(html)):
        add("m:html-split")


def _from_features(value: str, add: Callable[[str], None]) -> str:
    """Features of the From header; returns the sender's registered domain ("" if none)."""
    if not value:
        add("h:no-from")
        return ""
    name, address = parseaddr(value)
    address = address.lower()
    domain = ""
    if "@" not in address:
        add("h:from-invalid")
    else:
        domain = _registered(_domain(address))
        add("fd:" + domain)
        local = address.rsplit("@", 1)[0][:40]
        if local:  # "john.smith" -> "a.a", "promo4711" -> "a9": its layout, not the name
            add("h:from-shape:" + _shape(local)[:16])
    shown = _ADDRESS.search(name or "")
    if shown and shown.group(0).lower() != address:
        add("h:from-name-other-address")
    return domain


def _link_features(lowered: str, hrefs: list[str], add: Callable[[str], None],
                   from_domain: str = "", words: int = 0) -> None:
    """Link counts and shapes, and each linked domain as a token (body lower-cased)."""
    hosts: list[str] = []
    for found in _URL.finditer(lowered):
        hosts.append(found.group(1))
    for href in hrefs:
        href = href.strip().lower()
        match = _URL.match(href)
        if match:
            hosts.append(match.group(1))
            if "http" in href[8:] or "%2f" in href:
                add("l:redirect")
        elif href.startswith("mailto:"):
            add("l:mailto")
    add(f"l:urls:{_level(len(hosts), (1, 2, 5, 15))}")
    if hosts and words:
        add(f"l:density:{_level(len(hosts) / words, (0.005, 0.02, 0.05, 0.1))}")
    seen: set[str] = set()
    registered: set[str] = set()
    for raw in hosts:
        if raw in seen:
            continue
        seen.add(raw)
        if "@" in raw:
            add("l:userinfo")
        if ":" in raw.rsplit("@", 1)[-1]:
            add("l:port")
        host = _domain(raw)
        if "%" in host or "&#" in host:
            add("l:encoded-host")
        if _IP.match(host):
            add("l:ip-literal")
            continue
        if len(host) > 30:
            add("l:long-domain")
        if host.count(".") >= 4:
            add("l:deep-subdomain")
        if "xn--" in host:
            add("l:punycode")
        if len(host) - len(host.translate(_NO_DIGITS)) >= 5:
            add("l:digit-host")
        domain = _registered(host)
        registered.add(domain)
        add("ld:" + domain)
        tld = host.rsplit(".", 1)[-1]
        add("lt:" + tld)
    add(f"l:domains:{_level(len(registered), (1, 2, 4, 8))}")

    if from_domain and registered:
        add("l:from-domain" if from_domain in registered else "l:not-from-domain")
