"""Webmail sender identities and settings on both backends: only addresses the mailbox may
send as, one default (the mailbox itself when none is saved), signatures kept as given;
settings validated and kept per mailbox."""

from __future__ import annotations

import pytest

from mailward.app import Services
from mailward.core.errors import InvalidInput, NotFound
from mailward.db import AddressList
from mailward.directory import Actor
from mailward.webmail.identities import Identities, Identity, IdentityIn
from mailward.webmail.prefs import MailPrefs, Prefs

OP = Actor.operator()
A, B = "a@acme.example", "b@acme.example"
PASSWORD = "Mailbox-pass-77"


@pytest.fixture
async def services(directory: Services) -> Services:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, [
        f"{A}|{PASSWORD}", f"{B}|{PASSWORD}",
        "team@acme.example|a@acme.example,b@acme.example|relay",
        "sales@acme.example|b@acme.example|relay",
    ], AddressList.NO_FILTER)
    return directory


async def test_identities_only_for_addresses_the_mailbox_may_send_as(
        services: Services) -> None:
    ids = Identities(services)
    assert await ids.default(A) == Identity(None, A, "", None, "", None, True)
    assert await ids.list(A) == []
    html = '<p onclick="x()">Ann <script>alert(1)</script></p>'
    team = await ids.save(A, IdentityIn("Team@ACME.example", "  The\r\nTeam ", "Reply@Example.ORG",
                                        "-- \r\nThe team", html))
    assert (team.address, team.name, team.reply_to) == ("team@acme.example", "The Team",
                                                        "reply@example.org")
    assert (team.signature_text, team.signature_html) == ("-- \nThe team", html)  # as given
    assert team.default  # the only one
    for bad in (IdentityIn("sales@acme.example"),  # a forwarder to someone else
                IdentityIn(B), IdentityIn("stranger@example.org"), IdentityIn("not valid"),
                IdentityIn(A, reply_to="nope"), IdentityIn(A, "n" * 201),
                IdentityIn(A, signature_text="s" * (10 * 1024 + 1)),
                IdentityIn(A, signature_html="é" * (5 * 1024 + 1))):  # bytes count
        with pytest.raises(InvalidInput):
            await ids.save(A, bad)
    assert await ids.save(A, IdentityIn(A, signature_html="é" * (5 * 1024)))
    own = await ids.save(A, IdentityIn(A, "Ann", default=True))
    listed = await ids.list(A)
    assert [(i.address, i.default) for i in listed] == [
        (A, True), ("team@acme.example", False), (A, False)]
    assert await ids.default(A) == own
    # turning the default off hands it to the oldest other
    await ids.save(A, IdentityIn(A, "Ann"), id=own.id)
    assert (await ids.default(A)).id == team.id
    await ids.delete(A, team.id)
    assert [(i.address, i.default) for i in await ids.list(A)] == [(A, True), (A, False)]
    changed = await ids.save(A, IdentityIn("team@acme.example", "Team again"), id=own.id)
    assert (await ids.get(A, own.id)) == changed


async def test_the_addresses_offered_are_those_the_mailbox_may_send_as(
        services: Services) -> None:
    ids = Identities(services)
    assert await ids.addresses(A) == [A, "team@acme.example"]
    assert await ids.addresses(B) == [B, "sales@acme.example", "team@acme.example"]
    for address in await ids.addresses(B):
        assert await services.mail_login.may_send_as(B, address)


async def test_another_mailbox_cannot_reach_an_identity(services: Services) -> None:
    ids = Identities(services)
    mine = await ids.save(A, IdentityIn("team@acme.example", "Team"))
    for attempt in (ids.get(B, mine.id), ids.delete(B, mine.id),
                    ids.save(B, IdentityIn("team@acme.example", "Hijack"), id=mine.id)):
        with pytest.raises(NotFound):
            await attempt
    assert await ids.list(B) == []
    assert (await ids.default(B)).address == B
    assert (await ids.get(A, mine.id)).name == "Team"


async def test_default_skips_an_address_no_longer_allowed(services: Services) -> None:
    ids = Identities(services)
    await ids.save(A, IdentityIn("team@acme.example", "Team", default=True))
    await services.addresses.set_destinations(OP, "team@acme.example", B)
    fallback = await ids.default(A)
    assert (fallback.id, fallback.address) == (None, A)
    with pytest.raises(InvalidInput):
        await ids.save(A, IdentityIn("team@acme.example", "Team"))


async def test_prefs_defaults_validation_and_isolation(services: Services) -> None:
    prefs = Prefs(services.db, undo_default=20)
    assert await prefs.get(A) == MailPrefs(undo_seconds=20)
    assert Prefs(services.db, undo_default=99).defaults.undo_seconds == 30
    saved = await prefs.save(A, per_page="100", threads="off", compose_html=True,
                             show_images="Always", theme="dark", undo_seconds=0,
                             reply_above=False, mark_read_on_open="0",
                             allowed_image_senders="News@Example.org\nexample.net")
    assert saved == MailPrefs(per_page=100, threads=False, compose_html=True,
                              show_images="always", theme="dark", undo_seconds=0,
                              reply_above=False, mark_read_on_open=False,
                              allowed_image_senders=["news@example.org", "example.net"])
    assert await prefs.get(A) == saved
    assert await prefs.get(B) == MailPrefs(undo_seconds=20)  # another mailbox: untouched
    for bad in ({"colour": "red"}, {"per_page": 5}, {"per_page": 201}, {"undo_seconds": 31},
                {"undo_seconds": -1}, {"undo_seconds": True}, {"threads": "maybe"},
                {"show_images": "sometimes"}, {"theme": "neon"}, {"per_page": "ten"},
                {"allowed_image_senders": ["not an address@"]}, {"per_page": 1.5}):
        with pytest.raises(InvalidInput):
            await prefs.save(A, **bad)
    assert await prefs.get(A) == saved  # nothing of a refused save is kept
    with pytest.raises(NotFound):
        await prefs.save("nobody@acme.example", theme="dark")


async def test_remote_images_allowed_per_sender(services: Services) -> None:
    prefs = Prefs(services.db)
    assert not (await prefs.get(A)).images_allowed("news@example.org")
    await prefs.allow_images_from(A, "News@Example.ORG")
    await prefs.allow_images_from(A, "news@example.org")
    await prefs.allow_images_from(A, "shop.example")
    current = await prefs.get(A)
    assert current.allowed_image_senders == ["news@example.org", "shop.example"]
    assert current.images_allowed("NEWS@example.org")
    assert current.images_allowed("deals@mail.shop.example")  # a subdomain of a domain
    assert not current.images_allowed("other@example.org")
    assert not current.images_allowed("x@notshop.example")
    assert not (await prefs.get(B)).images_allowed("news@example.org")
    never = await prefs.save(A, show_images="never")
    assert not never.images_allowed("news@example.org")
    assert (await prefs.save(A, show_images="always")).images_allowed("anyone@example.com")
    with pytest.raises(InvalidInput):
        await prefs.allow_images_from(A, "not a sender@@")
