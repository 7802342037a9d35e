"""The webmail's HTML sanitiser and message reading over the hostile corpus (tests/hostile_mail):
whatever a message tries, what reaches the body iframe holds no script, no handler, no
foreign content, no loading CSS, no remote image (when blocked), no refresh or base."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailward.webmail.reading import (
    MessageView,
    message_part,
    read_message,
    safe_content_type,
    safe_filename,
)
from mailward.webmail.sanitize import safe_style, sanitize_html

CORPUS = sorted((Path(__file__).parents[1] / "hostile_mail").glob("*.eml"))
PART = "/mail/msg/part?part="
PROXY = "/mail/img?u="


def _view(path: Path, *, allow_images: bool) -> MessageView:
    return read_message(path.read_bytes(), folder="INBOX", uid=7, flags=frozenset(),
                        allow_images=allow_images, part_url=lambda part: PART + part,
                        image_url=lambda url: PROXY + url)


def _tags(doc: str) -> list[str]:
    return re.findall(r"<([a-zA-Z][a-zA-Z0-9-]*)", doc)


def _attrs(doc: str) -> list[tuple[str, str]]:
    """(name, value) of every attribute of every tag in the sanitised document."""
    return [(name.lower(), value) for tag in re.findall(r"<[a-zA-Z][^>]*>", doc)
            for name, value in re.findall(r'\s([^\s=>"]+)="([^"]*)"', tag)]


def _body(doc: str) -> str:
    return doc.split("<body>", 1)[1]


def test_corpus_is_there() -> None:
    assert len(CORPUS) >= 18
    readme = (CORPUS[0].parent / "README.md").read_text()
    for path in CORPUS:
        assert f"`{path.name}`" in readme


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
@pytest.mark.parametrize("allow_images", [False, True])
def test_nothing_dangerous_survives(path: Path, allow_images: bool) -> None:
    view = _view(path, allow_images=allow_images)
    if view.html is None:
        return
    doc = view.html
    assert doc.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in doc
    body = _body(doc)
    allowed_tags = {"a", "abbr", "b", "blockquote", "br", "caption", "center", "code", "dd",
                    "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5",
                    "h6", "hr", "i", "img", "ins", "li", "ol", "p", "pre", "q", "s",
                    "small", "span", "strike", "strong", "sub", "sup", "table", "tbody",
                    "td", "tfoot", "th", "thead", "tr", "u", "ul"}
    assert set(_tags(body)) <= allowed_tags, path.name
    lower = body.lower()
    for bad in ("<script", "<svg", "<math", "<iframe", "<object", "<embed", "<form",
                "<input", "<button", "<meta", "<base", "<link", "<style", "<noscript",
                "<template", "<textarea", "<select", "<frame", "<!--"):
        assert bad not in lower, (path.name, bad)
    for name, value in _attrs(body):
        assert not name.startswith("on"), (path.name, name)
        assert name not in ("srcset", "background", "formaction", "action", "srcdoc",
                            "xlink:href", "poster", "class", "id"), (path.name, name)
        plain = re.sub(r"[\s\x00-\x1f]", "", value.lower())
        assert "javascript:" not in plain and "vbscript:" not in plain, (path.name, value)
        if name == "href":
            assert plain.startswith(("https://", "http://", "mailto:")), (path.name, value)
        if name == "src":
            assert value.startswith((PART, PROXY if allow_images else PART,
                                     "data:image/png;base64,")), (path.name, value)
        if name == "style":
            for word in ("url", "expression", "var(", "image", "import", "\\", "behavior",
                         "binding", "position"):
                assert word not in value.lower(), (path.name, value)
        if name == "target":
            assert value == "_blank"
        if name == "rel":
            assert value == "noopener noreferrer nofollow"
    assert "127.0.0.1:9" not in " ".join(v for n, v in _attrs(body) if n != "title" and
                                         not v.startswith(PROXY)), path.name
    if not allow_images:
        assert view.remote_images == 0 or "data-blocked" in body
    else:
        assert view.remote_images == 0


def test_remote_images_blocked_or_proxied_and_pixels_dropped() -> None:
    path = next(p for p in CORPUS if p.name.startswith("16-"))
    blocked = _view(path, allow_images=False)
    assert blocked.remote_images == 2  # the remote image and the one with a srcset
    assert blocked.html is not None and "http" not in " ".join(
        v for n, v in _attrs(_body(blocked.html)) if n == "src")
    assert 'alt="A remote image"' in blocked.html and 'data-blocked="remote"' in blocked.html
    shown = _view(path, allow_images=True)
    assert shown.html is not None and shown.remote_images == 0
    srcs = [v for n, v in _attrs(_body(shown.html)) if n == "src"]
    assert f"{PROXY}http://127.0.0.1:9/pwn-16-remote.png" in srcs
    assert not any("pixel" in src or "srcset" in src or "poster" in src for src in srcs)
    logo = next(a for a in shown.attachments if a.content_id == "logo@example.org")
    assert srcs.count(PART + logo.part) == 2 and logo.inline


def test_newsletter_keeps_its_look() -> None:
    path = next(p for p in CORPUS if p.name.startswith("17-"))
    view = _view(path, allow_images=False)
    assert view.html is not None and view.text is not None
    assert "color: #b3261e; font-size: 28px" in view.html
    assert 'style="background-color: #f4f4f7; font-family: Georgia, serif"' in view.html
    assert "Winter sale: 20% off" in view.text  # the text/plain alternative, not derived
    assert view.attachments == []


def test_text_derived_when_only_html() -> None:
    path = next(p for p in CORPUS if p.name.startswith("13-"))
    view = _view(path, allow_images=False)
    assert view.text is not None and "a safe link <https://example.org/safe>" in view.text
    assert "<" not in view.text.replace("<https://example.org/safe>", "")


def test_attachments_served_safely() -> None:
    mime = next(p for p in CORPUS if p.name.startswith("14-")).read_bytes()
    types = {a.part: message_part(mime, a.part)[1] for a in
             _view(next(p for p in CORPUS if p.name.startswith("14-")),
                   allow_images=False).attachments}
    assert types and set(types.values()) == {"application/octet-stream"}
    names = {a.filename for a in _view(next(p for p in CORPUS if p.name.startswith("15-")),
                                       allow_images=False).attachments}
    assert "invoice.pdf.html" in names and "x.exe" in names and "passwd" in names
    assert "fdp.exe" in names  # the right-to-left override is gone
    assert "Résumé über alles.txt" in names  # RFC 2231 continuations decoded
    assert "_CON.txt" in names and "htaccess" in names and "part-11.bin" in names
    for name in names:
        assert "/" not in name and "\\" not in name and len(name) <= 120
        assert not any(ord(c) < 32 or c in "\u202e\u200f" for c in name)
        assert not name.startswith(".")
    assert any(n.endswith(".pdf") and n.startswith("AAAA") for n in names)


def test_safe_content_type() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 20
    assert safe_content_type("image/png", png) == "image/png"
    assert safe_content_type("image/png", b"<html><script>") == "application/octet-stream"
    for declared in ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml",
                     "application/javascript", "text/javascript", "application/xml",
                     "application/vnd.wap.xhtml+xml", "multipart/mixed", "x/unknown"):
        assert safe_content_type(declared, b"data") == "application/octet-stream", declared
    assert safe_content_type("text/csv", b"a,b", "utf-8") == "text/plain; charset=utf-8"
    assert safe_content_type("text/plain", b"+ADw-", "utf-7") == "text/plain"
    assert safe_content_type("application/pdf", b"%PDF") == "application/pdf"


def test_safe_filename() -> None:
    assert safe_filename("..\\..\\x.exe", "2", "application/octet-stream") == "x.exe"
    assert safe_filename("a\r\nb.txt", "2", "text/plain") == "a b.txt"
    assert safe_filename("", "3", "application/pdf") == "part-3.pdf"
    long = safe_filename("x" * 500 + ".docx", "2", "application/octet-stream")
    assert len(long) == 120 and long.endswith(".docx")


def test_safe_style() -> None:
    assert safe_style("color: red; font-size: 12px") == "color: red; font-size: 12px"
    for bad in ("background:url(x)", "background:\\75rl(x)", "width:expression(alert(1))",
                "color:var(--x)", "background-image:image-set('x' 1x)", "position:fixed",
                "behavior:url(x.htc)", "background:ur/**/l(x)", "content:attr(title)",
                "-moz-binding:url(x)", "x:@import 'y'"):
        assert safe_style(bad) is None, bad


def test_sanitize_html_directly() -> None:
    made: list[str] = []

    def proxy(url: str) -> str:
        made.append(url)
        return "/mail/img?u=1&s=2"

    result = sanitize_html(
        '<img src="https://a.example/x.png" width="300"><img src="cid:c1">'
        '<img src="http://t.example/p.gif" width="1" height="1">'
        '<a href="https://l.example/">l</a><meta http-equiv="refresh" content="0;url=x">',
        allow_images=True, image_url=proxy, cid_url=lambda cid: f"/p/{cid}")
    assert made == ["https://a.example/x.png"]  # the pixel is never fetched
    assert '<img width="300" src="/mail/img?u=1&amp;s=2">' in result.html
    assert '<img src="/p/c1">' in result.html
    assert 'target="_blank" rel="noopener noreferrer nofollow"' in result.html
    assert "refresh" not in result.html and result.remote_images == 0


@pytest.mark.parametrize("pattern", ["<div>", "<b><div></b>", "<table><tr><td>",
                                     "<b><i><u><s><p>"])
def test_deep_html_is_cut_not_crashing(pattern: str) -> None:
    """css-inline's parser crashes the process some 15,000 levels deep; nesting is cut."""
    source = pattern * (400_000 // len(pattern)) + "<p>tail</p>"
    result = sanitize_html(source, allow_images=False, image_url=str, cid_url=lambda c: None)
    depth = deepest = 0
    for closing, _name in re.findall(r"<(/?)(div|b|i|u|s|p|table|tbody|tr|td)\b",
                                     _body(result.html)):
        depth += -1 if closing else 1
        deepest = max(deepest, depth)
    assert deepest <= 1100
    assert "tail" not in result.html


def test_formatting_rebuild_is_bounded() -> None:
    """Unclosed formatting elements are rebuilt at each block: the input is cut early."""
    source = "".join(f"<b title={i}>" for i in range(900)) + "<p>x" * 200_000 + "END"
    result = sanitize_html(source, allow_images=False, image_url=str, cid_url=lambda c: None)
    assert "END" not in result.html and result.html.count("<p>") < 1000


def _multipart(n: int, *, nested: bool) -> bytes:
    head = "From: a@example.org\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=b0\r\n"
    parts = []
    for i in range(n):
        if nested:
            parts.append(f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n")
        else:
            parts.append("--b0\r\nContent-Type: application/octet-stream\r\n"
                         f"Content-Disposition: attachment; filename=f{i}.bin\r\n\r\nx\r\n")
    tail = f"--b{n}\r\nContent-Type: text/plain\r\n\r\nbottom\r\n" if nested else "--b0--\r\n"
    return (head + "\r\n" + "".join(parts) + tail).encode()


def test_part_walk_is_bounded() -> None:
    wide = read_message(_multipart(5000, nested=False), folder="INBOX", uid=1,
                        flags=frozenset(), allow_images=False, part_url=str, image_url=str)
    assert len(wide.attachments) == 200
    assert wide.attachments[-1].part == "200" and wide.attachments[0].filename == "f0.bin"
    assert message_part(_multipart(5000, nested=False), "17")[0] == "f16.bin"
    deep = read_message(_multipart(3000, nested=True), folder="INBOX", uid=1,
                        flags=frozenset(), allow_images=False, part_url=str, image_url=str)
    assert deep.text is None and max(a.part.count(".") for a in deep.attachments) < 20
