"""Webmail's Reader over a real mail store (Maildir and PostgreSQL): views with headers,
bodies, flags and attachments; attachment downloads with safe names and types; the
mailbox and folder scoping of the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from store_helpers import (
    empty_store_db,
    pg_or_maildir_fixture,  # noqa: F401 - the fixture pg_or_maildir
)

from mailward.config import Settings, load_settings
from mailward.core.errors import InvalidInput, NotFound
from mailward.store import FLAGGED, INBOX, SEEN, MaildirStore, MailStore, NoSuchMessage
from mailward.store.postgres import PostgresStore
from mailward.webmail.images import ImageProxy
from mailward.webmail.reading import Reader

ANN = "ann@example.com"
BOB = "bob@example.com"
CORPUS = Path(__file__).parents[1] / "hostile_mail"
REMOTE = "https://images.example.org/banner.png"
MESSAGE = f"""From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <jorg@example.org>
To: Ann <ann@example.com>, "Smith, Bob" <bob@example.com>
Cc: carol@example.net
Reply-To: lists@example.org
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and a report
Date: Mon, 07 Dec 2026 09:30:00 +0100
Message-ID: <m1@example.org>
In-Reply-To: <m0@example.org>
References: <root@example.org> <m0@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe, see the report.
--alt
Content-Type: text/html; charset=utf-8

<p onclick="x()">Gr&uuml;&szlig;e, <b>see</b> the report.<img src="{REMOTE}" alt="banner"></p>
<script>alert(1)</script>
--alt--
--mix
Content-Type: text/html; name="report.html"
Content-Disposition: attachment; filename="../report.html"
Content-Transfer-Encoding: base64

PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==
--mix--
""".replace("\n", "\r\n").encode()


@pytest.fixture
async def store(pg_or_maildir: str | None, tmp_path: Path) -> AsyncIterator[MailStore]:
    if pg_or_maildir is None:
        yield MaildirStore(tmp_path / "mail")
        return
    db = await empty_store_db(pg_or_maildir)
    try:
        yield PostgresStore(db)
    finally:
        await db.dispose()


@pytest.fixture
def reader_settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


def part_url(part: str) -> str:
    return f"/mail/msg/part?f=INBOX&uid=1&part={part}"


async def test_view_and_download(store: MailStore, reader_settings: Settings) -> None:
    stored = await store.deliver(ANN, MESSAGE, flags=frozenset({SEEN, FLAGGED}))
    reader = Reader(store, reader_settings)
    view = await reader.view(ANN, INBOX, stored.uid, allow_images=False, part_url=part_url)
    assert view.subject == "Grüße and a report"
    assert (view.sender, view.sender_address) == ("Jörg Müller", "jorg@example.org")
    assert view.to == ["Ann <ann@example.com>", '"Smith, Bob" <bob@example.com>']
    assert view.cc == ["carol@example.net"] and view.reply_to == ["lists@example.org"]
    assert view.date is not None and view.date.isoformat() == "2026-12-07T09:30:00+01:00"
    assert view.message_id == "<m1@example.org>" and view.in_reply_to == "<m0@example.org>"
    assert view.references == ["<root@example.org>", "<m0@example.org>"]
    assert view.flags == frozenset({SEEN, FLAGGED})
    assert view.text == "Grüße, see the report."  # Latin-1 quoted-printable decoded
    assert view.html is not None and "Grüße, <b>see</b> the report." in view.html
    assert "onclick" not in view.html and "<script" not in view.html
    assert view.remote_images == 1 and REMOTE not in view.html
    [attachment] = view.attachments
    assert (attachment.part, attachment.filename, attachment.content_type) == \
        ("2", "report.html", "text/html")
    assert not attachment.inline and attachment.size == 25

    shown = await reader.view(ANN, INBOX, stored.uid, allow_images=True, part_url=part_url)
    assert shown.remote_images == 0 and shown.html is not None
    proxied = ImageProxy(reader_settings).url_for(REMOTE)
    assert f'src="{proxied.replace("&", "&amp;")}"' in shown.html
    query = parse_qs(urlsplit(proxied).query)
    assert ImageProxy(reader_settings).verify(query["u"][0], query["s"][0])

    name, ctype, data = await reader.attachment(ANN, INBOX, stored.uid, "2")
    assert (name, ctype, data) == ("report.html", "application/octet-stream",
                                   b"<script>alert(1)</script>")
    name, ctype, data = await reader.attachment(ANN, INBOX, stored.uid, "1.1")
    assert ctype == "text/plain; charset=iso-8859-1" and data == "Grüße, see the report.".encode(
        "latin-1")
    with pytest.raises(NotFound):
        await reader.attachment(ANN, INBOX, stored.uid, "3")
    for bad in ("", "0", "1..2", "../1", "1.0", "1;2"):
        with pytest.raises(InvalidInput):
            await reader.attachment(ANN, INBOX, stored.uid, bad)


async def test_scoped_to_the_mailbox(store: MailStore, reader_settings: Settings) -> None:
    stored = await store.deliver(ANN, MESSAGE)
    await store.deliver(BOB, b"From: x@example.org\r\nSubject: bob's\r\n\r\nhi\r\n")
    reader = Reader(store, reader_settings)
    with pytest.raises(NoSuchMessage):
        await reader.view(ANN, INBOX, stored.uid + 1, allow_images=False, part_url=part_url)
    view = await reader.view(BOB, INBOX, stored.uid, allow_images=False, part_url=part_url)
    assert view.subject == "bob's" and view.text == "hi\r\n" and view.html is None
    assert view.sender_address == "x@example.org" and view.attachments == []


async def test_hostile_corpus_through_the_store(store: MailStore,
                                                reader_settings: Settings) -> None:
    reader = Reader(store, reader_settings)
    for path in sorted(CORPUS.glob("*.eml")):
        stored = await store.deliver(ANN, path.read_bytes())
        view = await reader.view(ANN, INBOX, stored.uid, allow_images=False, part_url=part_url)
        assert view.html is None or "<script" not in view.html.lower(), path.name
        for attachment in view.attachments:
            _name, ctype, _data = await reader.attachment(ANN, INBOX, stored.uid,
                                                          attachment.part)
            assert "html" not in ctype and "svg" not in ctype and "xml" not in ctype
