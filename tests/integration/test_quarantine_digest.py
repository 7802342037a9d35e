"""The quarantine digest and its release links, both backends: signed tokens (tampered,
expired), one digest per address listing only its new entries through the real queue,
two nodes racing, the retention purge, the delivery role running both, and the release
page over a real socket (GET shows a button and changes nothing; POST releases once)."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from api_server import running_server
from mail_helpers import eventually, mail_roles, queued_notices
from panel_client import Panel
from sqlalchemy import select, update

from mailward.app import Services
from mailward.config import Settings
from mailward.db import Database
from mailward.db.models import (
    QuarantinedMessage,
    QuarantineEntry,
    QueuedMessage,
    QueuedRecipient,
)
from mailward.directory import Actor
from mailward.filter.pipeline import Finding
from mailward.quarantine.digest import QuarantineDigester
from mailward.quarantine.links import (
    ExpiredToken,
    InvalidToken,
    check_token,
    link_secret,
    release_token,
)
from mailward.quarantine.service import Hold, Quarantine

SECRET = b"s3cret-key-for-tests"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ANN, BOB = "ann@acme.example", "bob@acme.example"


def spam(subject: str) -> bytes:
    return (f"From: Spammer <spam@bad.example>\r\nTo: {ANN}\r\nSubject: {subject}\r\n"
            "Message-ID: <x@bad.example>\r\n\r\nBuy now.\r\n").encode()


async def hold(settings: Settings, directory: Services, subject: str, *recipients: str) -> int:
    """Quarantine a message for ``recipients``; the message's id."""
    return await Quarantine(directory.db, settings).hold(
        sender="spam@bad.example", peer="192.0.2.7", data=spam(subject), score=12.5,
        findings=(Finding("content", 12.5, "looks like spam"),),
        holds=[Hold(r, "score 12.5") for r in recipients])


async def entries(directory: Services) -> list[QuarantineEntry]:
    async with directory.db.session() as session:
        return list(await session.scalars(select(QuarantineEntry).order_by(QuarantineEntry.id)))


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def tokens_in(message: EmailMessage) -> list[str]:
    links = re.findall(r"https?://\S+/quarantine/release\?t=\S+", text_of(message))
    return [parse_qs(urlsplit(link).query)["t"][0] for link in links]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Daily digests on (the shared test config turns them off)."""
    return settings.model_copy(update={"quarantine_digest_interval_seconds": 86400})


@pytest.fixture
async def seeded(directory: Services) -> Services:
    op = Actor.operator()
    await directory.accounts.create(op, "Acme")
    await directory.domains.create(op, "acme.example", account="Acme", hosting=True)
    return directory


# -- tokens ---------------------------------------------------------------------------------


def test_token_round_trip() -> None:
    token = release_token(SECRET, 42, NOW + timedelta(days=7))
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token) and len(token) < 80
    assert check_token(SECRET, token, NOW) == 42
    assert check_token(SECRET, token, NOW + timedelta(days=7, seconds=-1)) == 42


def test_tampered_and_malformed_tokens_are_refused() -> None:
    token = release_token(SECRET, 42, NOW + timedelta(days=7))
    other = release_token(SECRET, 43, NOW + timedelta(days=7))
    forged = other[:20] + token[20:]  # entry 43's payload start with entry 42's signature
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (forged, flipped):
        with pytest.raises(InvalidToken, match="signature"):
            check_token(SECRET, bad, NOW)
    with pytest.raises(InvalidToken, match="signature"):
        check_token(b"another secret", token, NOW)
    for bad in ("", "abc", token[:-4], token + "AAAA", "!" * len(token), "é" * 10, "A" * 500):
        with pytest.raises(InvalidToken):
            check_token(SECRET, bad, NOW)


def test_expired_token_is_refused() -> None:
    token = release_token(SECRET, 42, NOW)
    with pytest.raises(ExpiredToken, match="expired on 2026-12-01 08:00 UTC"):
        check_token(SECRET, token, NOW)


# -- digests ----------------------------------------------------------------------------


async def test_one_digest_per_recipient_with_only_its_new_entries(
        seeded: Services, settings: Settings) -> None:
    directory = seeded
    await hold(settings, directory, "Cheap watches", ANN, BOB)
    await hold(settings, directory, "You won", ANN)
    now = datetime.now(UTC)
    digester = QuarantineDigester(directory.db, settings, directory.spool, clock=lambda: now)
    assert await digester.run_once() == [ANN, BOB]
    found = await queued_notices(directory)
    assert sorted(r for r, _ in found) == [[ANN], [BOB]]
    by_recipient = {r[0]: m for r, m in found}
    ann = by_recipient[ANN]
    assert ann["To"] == ANN and ann["Auto-Submitted"] == "auto-generated"
    assert ann["From"].addresses[0].addr_spec == settings.notice_sender
    assert ann["Date"] and ann["Message-ID"]
    assert ann["Subject"] == f"Quarantine: 2 new messages held for {ANN}"
    text = text_of(ann)
    assert "Cheap watches" in text and "You won" in text and "spam@bad.example" in text
    assert "12.5" in text and "score 12.5" in text
    assert f"kept for {settings.quarantine_retention_days} days" in text
    assert f"{settings.web_url}/quarantine/release?t=" in text
    ann_ids = {e.id for e in await entries(directory) if e.recipient == ANN}
    secret = link_secret(settings)
    assert {check_token(secret, t, now) for t in tokens_in(ann)} == ann_ids
    bob = by_recipient[BOB]
    assert "Cheap watches" in text_of(bob) and "You won" not in text_of(bob)
    assert len(tokens_in(bob)) == 1
    assert all(e.digest_sent_at is not None for e in await entries(directory))

    # nothing new: nothing sent, not even after the interval
    assert await digester.run_once() == []
    later = now + timedelta(seconds=settings.quarantine_digest_interval_seconds)
    assert await digester.run_once(later) == []
    # a new entry waits for the address's next digest time, then is listed alone
    await hold(settings, directory, "Third one", ANN)
    assert await digester.run_once(now + timedelta(hours=1)) == []
    assert await digester.run_once(later + timedelta(minutes=1)) == [ANN]
    recipients, third = (await queued_notices(directory))[-1]
    assert recipients == [ANN] and len(await queued_notices(directory)) == 3
    assert "Third one" in text_of(third) and "Cheap watches" not in text_of(third)
    assert third["Subject"] == f"Quarantine: 1 new message held for {ANN}"


async def test_links_expire_with_their_message_or_after_a_week(
        seeded: Services, settings: Settings) -> None:
    directory = seeded
    await hold(settings, directory, "Soon gone", ANN)
    async with directory.db.session() as session:  # this one expires in two days
        await session.execute(update(QuarantinedMessage).values(
            expires_at=datetime.now(UTC) + timedelta(days=2)))
        await session.commit()
    await hold(settings, directory, "Kept long", ANN)
    now = datetime.now(UTC)
    await QuarantineDigester(directory.db, settings, directory.spool, clock=lambda: now).run_once()
    [(_, message)] = await queued_notices(directory)
    secret = link_secret(settings)
    tokens = tokens_in(message)
    assert len(tokens) == 2
    soon = now + timedelta(days=2, seconds=1)
    valid = [t for t in tokens if _valid(secret, t, soon)]
    assert len(valid) == 1  # the two-day message's link has expired with it
    assert not _valid(secret, valid[0], now + timedelta(days=7, seconds=1))


def _valid(secret: bytes, token: str, now: datetime) -> bool:
    try:
        check_token(secret, token, now)
    except ExpiredToken:
        return False
    return True


async def test_two_digesters_send_each_digest_once(seeded: Services, settings: Settings) -> None:
    directory = seeded
    for number in range(3):
        await hold(settings, directory, f"Spam {number}", ANN, BOB)
    other = Services(Database(settings.db_url), settings)  # a second node: own pool
    try:
        now = datetime.now(UTC)
        nodes = [QuarantineDigester(d.db, settings, d.spool, clock=lambda: now)
                 for d in (directory, other)]
        rounds = await asyncio.gather(*(node.run_once() for node in nodes))
        assert sorted(r for sent in rounds for r in sent) == [ANN, BOB]
        assert await asyncio.gather(*(node.run_once() for node in nodes)) == [[], []]
    finally:
        await other.db.dispose()
    found = await queued_notices(directory)
    assert sorted(r for r, _ in found) == [[ANN], [BOB]]
    assert all(len(tokens_in(message)) == 3 for _, message in found)


async def test_purge_deletes_expired_messages(seeded: Services, settings: Settings) -> None:
    directory = seeded
    await hold(settings, directory, "Old", ANN, BOB)
    await hold(settings, directory, "New", ANN)
    async with directory.db.session() as session:
        await session.execute(update(QuarantinedMessage)
                              .where(QuarantinedMessage.subject == "Old")
                              .values(expires_at=datetime.now(UTC) - timedelta(minutes=1)))
        await session.commit()
    now = datetime.now(UTC)
    # an expired message is neither listed in a digest ...
    digester = QuarantineDigester(directory.db, settings, directory.spool, clock=lambda: now)
    assert await digester.run_once() == [ANN]
    [(_, message)] = await queued_notices(directory)
    assert "New" in text_of(message) and "Old" not in text_of(message)
    # ... nor kept
    assert await Quarantine(directory.db, settings).purge(now) == 1
    assert [e.recipient for e in await entries(directory)] == [ANN]
    async with directory.db.session() as session:
        subjects = list(await session.scalars(select(QuarantinedMessage.subject)))
    assert subjects == ["New"]


async def test_the_delivery_role_purges_and_sends_digests(seeded: Services,
                                                          settings: Settings) -> None:
    directory = seeded
    await hold(settings, directory, "Expired", BOB)
    async with directory.db.session() as session:
        await session.execute(update(QuarantinedMessage).values(
            expires_at=datetime.now(UTC) - timedelta(minutes=1)))
        await session.commit()
    await hold(settings, directory, "Fresh", ANN)

    async def done() -> bool:
        rows = await entries(directory)
        return [(e.recipient, e.digest_sent_at is not None) for e in rows] == [(ANN, True)]

    async with mail_roles(settings.model_copy(update={"bind": "127.0.0.1", "port_mx": 0}),
                          frozenset({"delivery"})):
        await eventually(done)


# -- the release page -----------------------------------------------------------------------


@pytest.fixture
async def url(settings: Settings) -> AsyncIterator[str]:
    async with running_server(settings) as url:
        yield url


async def test_release_page_releases_once(seeded: Services, settings: Settings,
                                          url: str) -> None:
    directory = seeded
    await hold(settings, directory, "Invoice <urgent>", ANN, BOB)
    now = datetime.now(UTC)
    await QuarantineDigester(directory.db, settings, directory.spool, clock=lambda: now).run_once()
    ann = next(m for r, m in await queued_notices(directory) if r == [ANN])
    [token] = tokens_in(ann)
    [entry_id] = [e.id for e in await entries(directory) if e.recipient == ANN]

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        panel = Panel(http)
        page = await panel.get("/quarantine/release", t=token)
        assert "Release this message?" in page and "Invoice &lt;urgent&gt;" in page
        assert "spam@bad.example" in page and "12.5" in page
        assert re.search(r'<button type="submit">Release</button>', page)
        assert 'name="_csrf_token"' in page and html.escape(token) in page
        # GET changed nothing: a link scanner fetching it releases nothing
        assert {e.recipient: e.status for e in await entries(directory)} == {
            ANN: "held", BOB: "held"}
        # a POST without the CSRF token (a scanner that "submits" forms) is refused
        forged = await http.post("/quarantine/release", data={"t": token})
        assert forged.status_code == 403  # a page for the person, not the API's JSON
        assert forged.headers["content-type"].startswith("text/html")
        assert "This page has expired" in forged.text
        assert "open the link from the digest again" in forged.text

        done = await panel.post("/quarantine/release", {"t": token})
        assert "Released" in done and f"on its way to {ANN}" in done
        statuses = {e.recipient: (e.status, e.released_by) for e in await entries(directory)}
        assert statuses == {ANN: ("released", ANN), BOB: ("held", None)}
        async with directory.db.session() as session:
            queued = list(await session.scalars(
                select(QueuedRecipient.recipient).join(
                    QueuedMessage, QueuedMessage.id == QueuedRecipient.message_id)
                .where(QueuedMessage.origin == "release")))
        assert queued == [ANN]
        log = await directory.audit.search(Actor.operator(), action="quarantine.release")
        [item] = log.items  # who did it, from where
        assert item.actor == ANN and "digest link 127.0.0.1" in item.source

        # single use: a second POST, and the link itself, say so and release nothing more
        again = await panel.post("/quarantine/release", {"t": token})
        assert "Already released" in again and "only once" in again
        assert "Already released" in await panel.get("/quarantine/release", t=token)
        async with directory.db.session() as session:
            releases = list(await session.scalars(select(QueuedMessage.id).where(
                QueuedMessage.origin == "release")))
        assert len(releases) == 1

        # bad links: 400 pages with the reason, on GET and on POST
        secret = link_secret(settings)
        expired = release_token(secret, entry_id, now - timedelta(seconds=1))
        forged_token = release_token(b"not our secret", entry_id, now + timedelta(days=1))
        for bad, reason in ((expired, "expired"), (forged_token, "signature"),
                            ("garbage", "malformed"), ("", "malformed")):
            page = await panel.get("/quarantine/release", status=400, t=bad)
            assert "This link does not work" in page and reason in page
            page = await panel.post("/quarantine/release", {"t": bad}, status=400)
            assert reason in page
        # a valid link to a message deleted meanwhile
        gone = release_token(secret, 999_999, now + timedelta(days=1))
        page = await panel.get("/quarantine/release", status=404, t=gone)
        assert "no longer in the quarantine" in page


async def test_release_page_is_rate_limited(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        answers = [await http.get("/quarantine/release", params={"t": "x"})
                   for _ in range(31)]
        assert [a.status_code for a in answers] == [400] * 30 + [429]
        refused = answers[-1]  # a page saying when to come back
        assert refused.headers["content-type"].startswith("text/html")
        assert "Too many requests" in refused.text
        assert "try again in a minute" in refused.text and "ratelimit-reset" in refused.headers
        assert (await http.get("/tools/dns")).status_code == 200  # its own counter
