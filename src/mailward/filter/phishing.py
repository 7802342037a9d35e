"""Phishing signals: domains that imitate the recipient's own domain or a well-known brand
(``brands.BRAND_DOMAINS``), and links whose text names another host than they lead to.

``PhishingCheck`` reads the pipeline's one parse and gives at most one finding of each kind,
its reason naming what was found (and how many more):

- ``phishing-homograph``: a From or link domain written with look-alike Unicode letters
  (an IDN, ``xn--`` labels decoded) whose skeleton is a protected domain's, e.g.
  ``paypal.com`` with a Cyrillic ``a`` (U+0430);
- ``phishing-lookalike``: the From domain (of the address, or one shown in the display
  name) a small edit away from a protected one: ``paypa1.com`` for ``paypal.com``;
- ``phishing-lookalike-link``: the same for the domain of a link;
- ``phishing-link-impersonation``: an HTML link whose text names a protected domain
  (``https://paypal.com/login``) but whose target is on another one;
- ``phishing-link-mismatch``: the same for a link whose text names any other host (a URL
  starting ``http(s)://`` or ``www.``) — weak evidence: newsletters' click tracking does it.

Domains are compared by their registrable label (``publicsuffixlist``: ``paypal`` of
``www.paypal.co.uk``), through a skeleton: Unicode confusables mapped to the ASCII letter
they imitate (the Unicode consortium's confusables table, as the ``confusable_homoglyphs``
package ships it, loaded on the first non-ASCII domain), accents dropped, then ``rn``→``m``,
``vv``→``w``, ``0``→``o``, ``1``→``l``. A domain is a lookalike when its skeleton equals a
protected label's, or is within Damerau-Levenshtein (optimal string alignment) distance 1 of
a protected label of at least ``EDIT_MIN`` characters (2 from ``EDIT_TWO``): shorter names
have too many innocent neighbours. Never flagged: the protected domain itself and its
subdomains, the same label under another suffix (brands own many: ``amazon.de``), and one
protected domain for another.

Benign link cases: text and target on the same registrable domain (a subdomain, a tracking
redirect of the sender's own domain), and, for a text naming an unprotected host, a target
whose URL carries that host (a redirect to it) or a text naming the From domain itself.

Work is bounded: ``MAX_TEXT`` characters of each text part, ``MAX_ANCHORS`` HTML links,
``MAX_HOSTS`` link hosts and ``MAX_DOMAINS`` distinct domains per message; brand matches are
cached per label.
"""

from __future__ import annotations

import asyncio
import codecs
import html
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from email.message import Message
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from mailward.filter.brands import BRAND_DOMAINS
from mailward.filter.features import header_text
from mailward.filter.parsed import ParsedMessage
from mailward.filter.pipeline import FilterInput, Finding, parsed_of

__all__ = ["EDIT_MIN", "EDIT_TWO", "SCORES", "PhishingCheck", "findings_in", "lookalike",
           "osa_distance", "skeleton"]

SCORES = {
    "phishing-homograph": 6.0,
    "phishing-lookalike": 4.0,
    "phishing-lookalike-link": 2.5,
    "phishing-link-impersonation": 4.0,
    "phishing-link-mismatch": 1.0,
}
EDIT_MIN = 6  # a protected label this long is compared by edit distance 1
EDIT_TWO = 10  # ... and this long by distance 2
MAX_TEXT = 200_000  # characters of each text part read for links
MAX_ANCHORS = 200  # HTML links read per message
MAX_DOMAINS = 30  # distinct link domains compared per message
MAX_HOSTS = 1000  # link hosts collected per message (before they are told apart)
MAX_FROM = 5  # domains taken from the From header

_PSL = PublicSuffixList()
_ASCII_FOLDS = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"))
_HOST = r"(?:[\w](?:[\w-]{0,62}\w)?\.)+(?:xn--[a-z0-9-]{1,59}|[^\W\d_]{2,63})"
_NAMED_HOST = re.compile(rf"(?<![\w.-])({_HOST})(?![\w-])", re.I)
_URL = re.compile(r"""(?i)\bhttps?://([^/\s"'<>()\[\]?#\\]{1,255})""")
_ANCHOR = re.compile(r"(?i)<a\s[^<>]{0,2000}>")  # cannot run past the next < or >
_HREF = re.compile(r"""(?i)\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_ANGLED = re.compile(r"<\s*([^<>\s\"]+@[^<>\s\"]+?)\s*>")  # From: Name <address>
_BARE = re.compile(r"[^\s<>\",;:()]+@[^\s<>\",;:()]+")  # From: address
_TAG = re.compile(r"<[^<>]{0,2000}>")
_SHOWN = re.compile(rf"(?i)^\s*(https?://)?(www\.)?({_HOST})(?:[:/?#]\S*)?\s*$")
_ANCHOR_TEXT = 1000  # characters after <a ...> searched for </a>


# -- domains -------------------------------------------------------------------------------

@lru_cache(maxsize=8192)
def _ascii_host(host: str) -> str:
    """A host lower-case, without user, port and trailing dot, IDN labels as ``xn--``."""
    host = host.rsplit("@", 1)[-1].split(":", 1)[0].strip().strip(".").lower()
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    return host


@lru_cache(maxsize=8192)
def _registrable(host: str) -> str:
    """The registrable domain of an ASCII host ("" for none: a suffix, an IP, junk)."""
    if not host or "." not in host or host.replace(".", "").isdigit():
        return ""
    try:
        return _PSL.privatesuffix(host) or ""
    except Exception:  # a malformed host
        return ""


def _label(registrable: str) -> str:
    return registrable.split(".", 1)[0]


def _unicode_label(label: str) -> str:
    """A label with its ``xn--`` form decoded (as it is when that fails)."""
    if label.startswith("xn--"):
        try:
            return codecs.decode(label[4:].encode("ascii"), "punycode")
        except (UnicodeError, ValueError):
            return label
    return label


def _shown(registrable: str) -> str:
    """A registrable domain as a mail client shows it: ``xn--`` labels decoded."""
    return ".".join(_unicode_label(part) for part in registrable.split("."))


@lru_cache(maxsize=1)
def _confusable_ascii() -> dict[str, str]:
    """Each Unicode character that imitates an ASCII letter or digit -> that character,
    from the confusables table (loaded on first use: most mail has ASCII domains only)."""
    # imported here: its table takes about 18 MB, loaded only once a domain needs it
    from confusable_homoglyphs import confusables  # type: ignore[import-untyped]

    table: dict[str, str] = {}
    for char, glyphs in confusables.confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in glyphs:
            target = glyph.get("c", "")
            if len(target) == 1 and target.isascii() and target.isalnum():
                table[char] = target.lower()
                break
    return table


@lru_cache(maxsize=8192)
def skeleton(label: str) -> str:
    """What a label looks like: confusable letters as the ASCII they imitate, accents
    dropped, lower-case, then ``rn``→``m``, ``vv``→``w``, ``0``→``o``, ``1``→``l``."""
    text = label.lower()
    if not text.isascii():
        table = _confusable_ascii()
        text = "".join(table.get(c, c) for c in text)
        text = "".join(c for c in unicodedata.normalize("NFKD", text)
                       if not unicodedata.combining(c)).lower()
    for old, new in _ASCII_FOLDS:
        text = text.replace(old, new)
    return text


def osa_distance(a: str, b: str, cap: int = 3) -> int:
    """Damerau-Levenshtein distance (optimal string alignment) of ``a`` and ``b``, or
    ``cap`` when it is at least that."""
    if abs(len(a) - len(b)) >= cap:
        return cap
    before: list[int] = []
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        above, row = row, [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = ca != cb
            row[j] = min(above[j] + 1, row[j - 1] + 1, above[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], before[j - 2] + 1)
        if min(row) >= cap:
            return cap
        before = above
    return min(row[-1], cap)


def _limit(label: str) -> int:
    """The largest edit distance at which a protected label's lookalikes are taken."""
    return 2 if len(label) >= EDIT_TWO else 1 if len(label) >= EDIT_MIN else 0


def _deletions(text: str, depth: int) -> set[str]:
    found = {text}
    for _ in range(depth):
        found |= {word[:i] + word[i + 1:] for word in found for i in range(len(word))}
    return found


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: its matches are cached
class _Protected:
    """Protected registrable domains, indexed by skeleton and by deletion variants."""

    domains: frozenset[str]
    by_skeleton: dict[str, tuple[str, ...]] = field(default_factory=dict)
    by_variant: dict[str, tuple[str, ...]] = field(default_factory=dict)
    depth: int = 0  # the largest edit distance any of them is compared at

    @classmethod
    def of(cls, domains: Iterable[str]) -> _Protected:
        kept = frozenset(d for d in domains if d)
        by_skeleton: dict[str, list[str]] = {}
        by_variant: dict[str, list[str]] = {}
        for domain in sorted(kept):
            shape = skeleton(_unicode_label(_label(domain)))
            by_skeleton.setdefault(shape, []).append(domain)
            for variant in _deletions(shape, _limit(shape)):
                by_variant.setdefault(variant, []).append(domain)
        return cls(kept, {k: tuple(v) for k, v in by_skeleton.items()},
                   {k: tuple(v) for k, v in by_variant.items()},
                   max((_limit(shape) for shape in by_skeleton), default=0))

    def match(self, registrable: str) -> str:
        """The protected domain ``registrable`` imitates ("" when none)."""
        if not registrable or registrable in self.domains:
            return ""
        label = _label(registrable)
        shape = skeleton(_unicode_label(label))
        best, distance = "", 3
        candidates = set(self.by_skeleton.get(shape, ()))
        depth = min(self.depth, 2 if len(shape) >= EDIT_TWO - 1 else 1)
        for variant in _deletions(shape, depth) if depth else ():
            candidates.update(self.by_variant.get(variant, ()))
        for domain in sorted(candidates):
            theirs = _label(domain)
            if theirs == label:  # the same name under another suffix: theirs too, often
                continue
            found = osa_distance(shape, skeleton(_unicode_label(theirs)))
            if (found == 0 or found <= _limit(theirs)) and found < distance:
                best, distance = domain, found
        return best


_BRANDS = _Protected.of(BRAND_DOMAINS)


@lru_cache(maxsize=4096)
def _brand_match(registrable: str) -> str:
    return _BRANDS.match(registrable)


@lru_cache(maxsize=8192)
def _own_match(own: _Protected, registrable: str) -> str:
    return own.match(registrable)


def lookalike(registrable: str, own: _Protected | None = None) -> str:
    """The protected domain (the recipients' own in ``own``, else a brand) that
    ``registrable`` imitates, "" when none."""
    if registrable in _BRANDS.domains or (own is not None and registrable in own.domains):
        return ""
    return (_own_match(own, registrable) if own is not None else "") or \
        _brand_match(registrable)


# -- what the message names ----------------------------------------------------------------

def _from_domains(msg: Message) -> list[tuple[str, str]]:
    """``(registrable, where)`` of the From address and of domains its display name shows."""
    found: list[tuple[str, str]] = []
    # the raw values: 8-bit (UTF-8) ones stay readable, where get_all gives Header objects
    values = [value for name, value in msg.raw_items() if name.lower() == "from"]
    for value in values[:2]:
        text = header_text(value if isinstance(value, str) else str(value))
        angle = _ANGLED.search(text)
        bare = None if angle is not None else _BARE.search(text)
        address = angle.group(1) if angle is not None else bare.group(0) if bare else ""
        name = text[:angle.start()] if angle is not None else ""
        if address:
            found.append((_registrable(_ascii_host(address)), "From domain"))
        for shown in _NAMED_HOST.findall(name)[:MAX_FROM]:
            found.append((_registrable(_ascii_host(shown)), "From display name domain"))
    return [(domain, where) for domain, where in found if domain][:MAX_FROM]


@dataclass(slots=True)
class _Links:
    hosts: list[str] = field(default_factory=list)  # link hosts, ASCII, in order
    anchors: list[tuple[str, str]] = field(default_factory=list)  # (shown text, href)


def _text(parsed: ParsedMessage, part: Message) -> str:
    payload = parsed.decoded(part)
    if payload is None:
        return ""
    try:
        return payload[:MAX_TEXT * 2].decode(part.get_content_charset() or "latin-1",
                                             "replace")[:MAX_TEXT]
    except LookupError:  # an unknown charset name
        return payload[:MAX_TEXT].decode("latin-1")


def _anchors(markup: str) -> Iterator[tuple[str, str]]:
    """``(visible text, href)`` of the first ``MAX_ANCHORS`` links of an HTML text."""
    for count, found in enumerate(_ANCHOR.finditer(markup)):
        if count >= MAX_ANCHORS:
            return
        attribute = _HREF.search(found.group(0))
        if attribute is None:
            continue
        href = html.unescape(next((g for g in attribute.groups() if g is not None), ""))
        end = markup.find("</a", found.end(), found.end() + _ANCHOR_TEXT)
        shown = markup[found.end():end] if end >= 0 else ""
        if "." not in shown:  # names no host: not read further
            shown = ""
        yield " ".join(html.unescape(_TAG.sub("", shown)).split()), href.strip()


def _links(parsed: ParsedMessage) -> _Links:
    links = _Links()
    for part in parsed.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        text = _text(parsed, part)
        if part.get_content_subtype() == "html":
            for shown, href in _anchors(text):
                links.anchors.append((shown, href))
                if (target := _URL.match(href)) is not None:
                    links.hosts.append(_ascii_host(target.group(1)))
        else:
            for count, url in enumerate(_URL.finditer(text)):
                if count >= MAX_HOSTS:
                    break
                links.hosts.append(_ascii_host(url.group(1)))
        if len(links.anchors) >= MAX_ANCHORS or len(links.hosts) >= MAX_HOSTS:
            break
    return links


# -- the findings --------------------------------------------------------------------------

class _Found:
    """One finding per kind: its first reason and how many more of the kind there were."""

    def __init__(self) -> None:
        self.first: dict[str, str] = {}
        self.more: dict[str, int] = {}

    def add(self, kind: str, reason: str) -> None:
        if kind in self.first:
            self.more[kind] = self.more.get(kind, 0) + 1
        else:
            self.first[kind] = reason

    def findings(self) -> list[Finding]:
        return [Finding(kind, SCORES[kind],
                        reason + (f" (and {self.more[kind]} more)" if kind in self.more else ""))
                for kind, reason in self.first.items()]


def _imitation(found: _Found, kind: str, what: str, registrable: str,
               own: _Protected) -> None:
    target = lookalike(registrable, own)
    if not target:
        return
    shown = _shown(registrable)
    if shown != registrable:  # an IDN: the homograph is the finding
        found.add("phishing-homograph",
                  f"{what} {shown} ({registrable}) imitates {target}")
    else:
        found.add(kind, f"{what} {registrable} looks like {target}")


def _mismatch(found: _Found, shown: str, href: str, own: _Protected, sender: str) -> None:
    named = _SHOWN.match(shown)
    target = _URL.match(href)
    if named is None or target is None:
        return
    text_domain = _registrable(_ascii_host(named.group(3)))
    href_host = _ascii_host(target.group(1))
    href_domain = _registrable(href_host) or href_host  # an IP stays itself
    if not text_domain or not href_domain or text_domain == href_domain:
        return
    protected = text_domain in own.domains or text_domain in _BRANDS.domains
    if protected and text_domain != sender:
        found.add("phishing-link-impersonation",
                  f"link text names {text_domain} but leads to {href_domain}")
        return
    if not (named.group(1) or named.group(2)):  # a bare host name: only protected ones
        return
    if text_domain == sender or text_domain in href.lower():  # a redirect to it
        return
    found.add("phishing-link-mismatch",
              f"link text names {text_domain} but leads to {href_domain}")


def _own(recipients: Sequence[str]) -> _Protected:
    """The recipients' own registrable domains, protected (one object per set of them)."""
    return _own_of(frozenset(_registrable(_ascii_host(r.rsplit("@", 1)[-1]))
                             for r in recipients if "@" in r))


@lru_cache(maxsize=1024)
def _own_of(domains: frozenset[str]) -> _Protected:
    return _Protected.of(domains)


def findings_in(parsed: ParsedMessage, recipients: Sequence[str] = ()) -> list[Finding]:
    """The phishing findings of a parsed message for these recipients (their domains are
    protected along with the brands)."""
    msg = parsed.root
    if msg is None:
        return []
    own = _own(recipients)
    found = _Found()
    senders = _from_domains(msg)
    sender = senders[0][0] if senders and senders[0][1] == "From domain" else ""
    for registrable, where in senders:
        _imitation(found, "phishing-lookalike", where, registrable, own)
    links = _links(parsed)
    seen: set[str] = {registrable for registrable, _ in senders}
    for host in links.hosts:
        registrable = _registrable(host)
        if not registrable or registrable in seen:
            continue
        seen.add(registrable)
        if len(seen) > MAX_DOMAINS:
            break
        _imitation(found, "phishing-lookalike-link", "link to", registrable, own)
    for shown, href in links.anchors:
        _mismatch(found, shown, href, own, sender)
    return found.findings()


class PhishingCheck:
    """Pipeline check for lookalike domains and deceptive links (CPU work: the pipeline
    runs ``blocking`` in a worker thread within its time budget)."""

    name = "phishing"

    def blocking(self, message: FilterInput) -> Sequence[Finding]:
        return findings_in(parsed_of(message), message.recipients)

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        return await asyncio.to_thread(self.blocking, message)
