"""A mail's HTML made safe to show: a complete document for the sandboxed body iframe.

Steps: ``<style>`` blocks are inlined into style attributes (css-inline, remote
stylesheets never loaded), then nh3 keeps an allow-list of tags and attributes, with our
own filter for style values and URLs. Images are decided on nh3's normalised output
(where a tag's attributes are all quoted and no raw ``<`` hides inside a value): remote
ones go through the image proxy or are blocked, tracking pixels go, ``cid:`` ones point
at the message's own parts. A second nh3 pass then checks the whole again, accepting as
image sources only the URLs we made and raster ``data:`` images.

The document works with the body iframe's CSP (``default-src 'none'; img-src 'self'
data:; style-src 'unsafe-inline'``): no script, no external style, links open a new tab.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

import css_inline
import nh3

__all__ = ["Sanitized", "html_to_text", "safe_style", "sanitize_html"]

MAX_HTML = 1_000_000  # characters of a mail's HTML we read; the rest is left out
PIXEL = 2  # an image this small (either side, in px) is a tracking pixel

TAGS = frozenset({
    "a", "abbr", "address", "b", "bdi", "bdo", "big", "blockquote", "br", "caption", "center",
    "cite", "code", "col", "colgroup", "dd", "del", "dfn", "div", "dl", "dt", "em", "font",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol",
    "p", "pre", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
})
# Dropped with everything inside (the rest of the unknown tags lose only the tag).
DROP_WITH_CONTENT = frozenset({
    "script", "style", "title", "svg", "math", "iframe", "object", "embed", "applet",
    "textarea", "select", "option", "template", "xmp", "noembed", "noframes", "head",
    "frameset", "frame", "audio", "video", "canvas", "plaintext", "datalist",
})
_COMMON = {"style", "align", "valign", "dir", "lang", "title", "width", "height", "bgcolor"}
ATTRIBUTES: dict[str, set[str]] = {
    "*": {"dir", "lang", "title", "style"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height", "border", "hspace", "vspace", "align",
            "data-blocked"},
    "font": {"color", "face", "size"},
    "table": _COMMON | {"border", "cellpadding", "cellspacing", "summary"},
    "td": _COMMON | {"colspan", "rowspan", "nowrap", "scope", "abbr"},
    "th": _COMMON | {"colspan", "rowspan", "nowrap", "scope", "abbr"},
    "tr": _COMMON,
    "thead": _COMMON, "tbody": _COMMON, "tfoot": _COMMON,
    "col": _COMMON | {"span"}, "colgroup": _COMMON | {"span"},
    "div": {"align"}, "p": {"align"}, "center": set(), "hr": {"align", "width", "size"},
    "h1": {"align"}, "h2": {"align"}, "h3": {"align"}, "h4": {"align"}, "h5": {"align"},
    "h6": {"align"},
    "ol": {"start", "type", "reversed"}, "ul": {"type"}, "li": {"value", "type"},
    "blockquote": {"cite"}, "q": {"cite"}, "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"}, "time": {"datetime"}, "caption": {"align"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto", "cid", "data"})
LINK_REL = "noopener noreferrer nofollow"

# CSS properties a style attribute may set; each value is checked by ``safe_style``.
CSS_PROPERTIES = frozenset({
    "color", "background-color", "background", "opacity",
    "font", "font-family", "font-size", "font-style", "font-weight", "font-variant",
    "text-align", "text-decoration", "text-decoration-line", "text-decoration-color",
    "text-decoration-style", "text-indent", "text-transform", "text-overflow",
    "letter-spacing", "word-spacing", "word-break", "word-wrap", "overflow-wrap",
    "line-height", "vertical-align", "white-space", "direction",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left",
    "border-color", "border-style", "border-width", "border-radius", "border-collapse",
    "border-spacing", "border-top-color", "border-right-color", "border-bottom-color",
    "border-left-color", "border-top-style", "border-right-style", "border-bottom-style",
    "border-left-style", "border-top-width", "border-right-width", "border-bottom-width",
    "border-left-width", "border-top-left-radius", "border-top-right-radius",
    "border-bottom-left-radius", "border-bottom-right-radius",
    "width", "height", "max-width", "min-width", "max-height", "min-height",
    "display", "visibility", "float", "clear", "overflow", "overflow-x", "overflow-y",
    "list-style", "list-style-type", "list-style-position",
    "table-layout", "caption-side", "empty-cells",
})
# Anything that loads, computes or hides a URL, or escapes to write one in disguise.
_CSS_BAD = re.compile(
    r"url|image|var\(|expression|attr\(|@import|import|behavior|binding|javascript|"
    r"vbscript|[\\<>{}]|/\*|\*/|&", re.IGNORECASE)
_CSS_PROPERTY = re.compile(r"^-?[a-z][a-z-]*$")

# ---------------------------------------------------------------- style attributes


def _declarations(style: str) -> list[tuple[str, str]]:
    """``prop: value; ...`` split at ``;`` outside quotes and parentheses."""
    out: list[tuple[str, str]] = []
    depth, quote, start = 0, "", 0
    for i, c in enumerate(style + ";"):
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == ";" and depth == 0:
            chunk = style[start:i]
            start = i + 1
            name, colon, value = chunk.partition(":")
            if colon:
                out.append((name.strip().lower(), value.strip()))
    return out


def safe_style(style: str) -> str | None:
    """The allowed declarations of a style attribute (None when none is left).

    A value that could load anything (``url(``, ``image-set``, ``@import``), compute
    anything (``var(``, ``expression(``, ``attr(``) or hide such a word behind a CSS
    escape (``\\75rl(``) or a comment drops its declaration; so does ``position``.
    """
    kept = []
    for name, value in _declarations(style):
        if not _CSS_PROPERTY.match(name) or name not in CSS_PROPERTIES or not value:
            continue
        if _CSS_BAD.search(value) or any(ord(c) < 32 or ord(c) == 127 for c in value):
            continue
        kept.append(f"{name}: {value}")
    return "; ".join(kept) if kept else None


# ---------------------------------------------------------------- the two nh3 passes


def _first_pass_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "style":
        return safe_style(value)
    if tag == "a" and attr == "href":
        return None if value.strip().lower().startswith(("data:", "cid:")) else value
    if tag == "img" and attr == "src":
        return value if _kept_src(value) else None
    return value


def _kept_src(value: str) -> bool:
    lower = value.strip().lower()
    return lower.startswith(("http://", "https://", "cid:")) or _raster_data(lower)


def _raster_data(lower: str) -> bool:
    return re.match(r"data:image/(png|jpeg|gif|webp);base64,[a-z0-9+/=\s]*$", lower) is not None


def _cleaner(attribute_filter: Callable[[str, str, str], str | None],
             relative: Callable[[str], str | None]) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(TAGS), clean_content_tags=set(DROP_WITH_CONTENT), attributes=ATTRIBUTES,
        attribute_filter=attribute_filter, strip_comments=True, link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}}, url_schemes=set(URL_SCHEMES),
        url_relative=relative)


_FIRST = _cleaner(_first_pass_filter, lambda _url: None)

# ---------------------------------------------------------------- images

# nh3's output: attributes always name="value", with & " < > escaped inside values.
_IMG = re.compile(r'<img((?: [a-z-]+="[^"]*")*)>')
_ATTR = re.compile(r' ([a-z-]+)="([^"]*)"')
_PX = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(px)?\s*$")


def _size(value: str | None) -> float | None:
    match = _PX.match(value or "")
    return float(match.group(1)) if match else None


def _pixel(attrs: dict[str, str]) -> bool:
    """Whether an image is a tracking pixel: tiny, or hidden by its style."""
    sizes = [_size(attrs.get("width")), _size(attrs.get("height"))]
    style = dict(_declarations(attrs.get("style", "")))
    sizes += [_size(style.get("width")), _size(style.get("height")),
              _size(style.get("max-width")), _size(style.get("max-height"))]
    if any(s is not None and s <= PIXEL for s in sizes):
        return True
    hidden = (style.get("display", "").lower() == "none"
              or style.get("visibility", "").lower() in ("hidden", "collapse")
              or _size(style.get("opacity")) == 0)
    return hidden


@dataclass(frozen=True, slots=True)
class Sanitized:
    """The safe document and how many remote images were blocked (0 when allowed)."""

    html: str
    remote_images: int


class _Images:
    """Rewrites each ``<img>`` of the first pass's output; remembers the URLs it made."""

    def __init__(self, allow: bool, image_url: Callable[[str], str],
                 cid_url: Callable[[str], str | None]) -> None:
        self.allow, self.image_url, self.cid_url = allow, image_url, cid_url
        self.made: set[str] = set()
        self.blocked = 0

    def __call__(self, match: re.Match[str]) -> str:
        attrs = {name: html.unescape(value) for name, value in _ATTR.findall(match.group(1))}
        if _pixel(attrs):
            return ""
        src = attrs.pop("src", "").strip()
        attrs.pop("data-blocked", None)
        lower = src.lower()
        if lower.startswith(("http://", "https://")):
            if self.allow:
                attrs["src"] = self._made(self.image_url(src))
            else:
                self.blocked += 1
                attrs["data-blocked"] = "remote"
        elif lower.startswith("cid:"):
            url = self.cid_url(_cid(src))
            if url is not None:
                attrs["src"] = self._made(url)
        elif _raster_data(lower):
            attrs["src"] = src
        body = "".join(f' {name}="{html.escape(value)}"' for name, value in attrs.items())
        return f"<img{body}>"

    def _made(self, url: str) -> str:
        self.made.add(url)
        return url

    def check(self, tag: str, attr: str, value: str) -> str | None:
        """The second pass's filter: only our own image URLs and raster data images."""
        if tag == "img" and attr == "src":
            return value if value in self.made or _raster_data(value.lower()) else None
        return _first_pass_filter(tag, attr, value)

    def relative(self, url: str) -> str | None:
        return url if url in self.made else None


def _cid(src: str) -> str:
    """``cid:`` URL → the Content-ID it names (percent-decoded, without ``<>``)."""
    from_url = src.strip()[4:]
    return re.sub(r"%([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), from_url).strip("<>")


# ---------------------------------------------------------------- the document

DEFAULT_STYLE = (
    "html{color-scheme:light}"
    "body{margin:0;padding:12px 16px;font:14px/1.5 system-ui,-apple-system,'Segoe UI',"
    "Roboto,Helvetica,Arial,sans-serif;color:#1f2328;background:#fff;"
    "overflow-wrap:anywhere;word-wrap:break-word}"
    "img{max-width:100%;height:auto}"
    "img[data-blocked]{display:inline-block;min-width:16px;min-height:16px;"
    "outline:1px dashed #b0b7bf;color:#6e7781}"
    "table{max-width:100%}"
    "pre{white-space:pre-wrap}"
    "blockquote{margin:0 0 0 .6em;padding-left:.8em;border-left:3px solid #d0d7de;"
    "color:#57606a}"
    "a{color:#0969da}"
)
_BODY_OPEN = re.compile(r"<body\b", re.IGNORECASE)
_STYLE_BLOCK = re.compile(r"<style\b.*?(?:</style|$)", re.IGNORECASE | re.DOTALL)
MAX_CSS_WORK = 5_000_000  # style rules times tags css-inline may match (~0.1 s a million)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_INLINER = css_inline.CSSInliner(
    inline_style_tags=True, keep_style_tags=False, keep_link_tags=False, keep_at_rules=False,
    load_remote_stylesheets=False)


def _inline(source: str) -> str:
    """``<style>`` blocks applied to the elements; the ``<body>`` made a ``<div>`` so its
    own look (background, font) survives the sanitiser, which drops ``<body>``."""
    rules = sum(block.count("{") for block in _STYLE_BLOCK.findall(source))
    # too costly to apply: left as they are, the sanitiser drops the style blocks
    too_costly = rules * len(_TAG.findall(source)) > MAX_CSS_WORK
    inlined = source if too_costly else _inline_styles(source)
    return _BODY_CLOSE.sub("</div>", _BODY_OPEN.sub("<div", inlined, count=1), count=1)


def _inline_styles(source: str) -> str:
    try:
        return _INLINER.inline(source)
    except (css_inline.InlineError, ValueError):
        return source  # the sanitiser drops the style blocks it could not apply


_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:-]*)")
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen",
                   "link", "meta", "param", "source", "track", "wbr", "basefont", "bgsound",
                   "frame", "image", "isindex", "menuitem"})
_SIBLING = frozenset({"p", "li", "dt", "dd", "tr", "td", "th", "option", "tbody", "thead",
                      "tfoot", "colgroup", "caption"})
_FORMATTING = frozenset({"a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small",
                         "strike", "strong", "tt", "u"})
MAX_NESTING = 1000  # elements open at once, as counted by ``_shallow``
MAX_REBUILD = 300_000  # tags times unclosed formatting elements, as counted by ``_shallow``


def _shallow(source: str) -> str:
    """``source`` cut where it could nest too deep or cost too much to parse.

    The HTML parsers below recurse with the depth of the tree (css-inline's crashes the
    process some 15,000 levels down) and rebuild every unclosed formatting element at each
    new block (``<b title=1>...<b title=500><p>x<p>x...``: quadratic). The count here
    never undercounts the tree they build: an end tag closes only the innermost element
    when it names it, a start tag closes only an innermost sibling of its kind.
    """
    stack: list[str] = []
    formatting = cost = 0
    for match in _TAG.finditer(source):
        name = match.group(2).lower()
        if match.group(1):
            if stack and stack[-1] == name:
                formatting -= stack.pop() in _FORMATTING
            continue
        if name in _VOID:
            continue
        if name in _SIBLING and stack and stack[-1] == name:
            stack.pop()
        if name == "tr" and (not stack or stack[-1] not in ("tbody", "thead", "tfoot")):
            stack.append("tbody")  # the parser adds it
        stack.append(name)
        formatting += name in _FORMATTING
        cost += formatting
        if len(stack) > MAX_NESTING or cost > MAX_REBUILD:
            return source[: match.start()]
    return source


def document(body: str) -> str:
    """A complete HTML document around an already safe ``body``."""
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            "<meta name=\"referrer\" content=\"no-referrer\">"
            f"<style>{DEFAULT_STYLE}</style></head>\n<body>{body}</body></html>\n")


def sanitize_html(source: str, *, allow_images: bool, image_url: Callable[[str], str],
                  cid_url: Callable[[str], str | None]) -> Sanitized:
    """``source`` (a mail's HTML) as a safe document for the body iframe.

    Remote images point at ``image_url(src)`` when ``allow_images``, else lose their
    source (``data-blocked``, counted); ``cid:`` images point at ``cid_url(content_id)``
    (dropped when it gives None); tracking pixels go always.
    """
    first = _FIRST.clean(_inline(_shallow(source[:MAX_HTML])))
    images = _Images(allow_images, image_url, cid_url)
    rewritten = _IMG.sub(images, first)
    second = _cleaner(images.check, images.relative).clean(rewritten)
    return Sanitized(document(second), images.blocked)


# ---------------------------------------------------------------- plain text from HTML

_BLOCKS = frozenset({
    "p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote",
    "pre", "hr", "dl", "dt", "dd", "ul", "ol", "center", "address", "caption",
})
_SKIP = frozenset({"script", "style", "title", "head", "template", "svg", "math"})


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.href: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag in _BLOCKS:
            self.out.append("\n")
        elif tag == "td" or tag == "th":
            self.out.append("\t")
        if tag == "li":
            self.out.append("* ")
        if tag == "a":
            self.href.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCKS:
            self.out.append("\n")
        if tag == "a" and self.href:
            href = self.href.pop()
            if href and href.startswith(("http://", "https://")) and \
                    href not in "".join(self.out[-3:]):
                self.out.append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(source: str) -> str:
    """A plain-text reading of a mail's HTML (for plain-text readers and replies)."""
    parser = _Text()
    parser.feed(_FIRST.clean(_shallow(source[:MAX_HTML])))
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
