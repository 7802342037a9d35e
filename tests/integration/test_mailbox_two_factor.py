"""Two-factor login of mailboxes (the webmail login) on both backends: the panel's TOTP
rules (one step either side, a code good once), per mailbox, and racing logins."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote, urlparse

import pyotp
import pytest

from mailward.app import Services
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.db import AddressList
from mailward.directory import Actor

OP = Actor.operator()
A, B = "a@acme.example", "b@acme.example"
PASSWORD = "Mailbox-pass-77"
NOW = datetime(2026, 12, 7, 12, 0, 10, tzinfo=UTC)


def code(secret: str, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(NOW + timedelta(seconds=30 * steps))


def wrong(secret: str) -> str:
    """A code that none of the steps around ``NOW`` has."""
    near = {code(secret, steps) for steps in (-1, 0, 1)}
    return next(c for c in ("123456", "234567", "345678", "456789") if c not in near)


@pytest.fixture
async def services(directory: Services) -> Services:
    await directory.accounts.create(OP, "Acme")
    await directory.accounts.create(OP, "Globex")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.domains.create(OP, "globex.example", account="Globex", hosting=True)
    await directory.bulk.add_lines(OP, [f"{A}|{PASSWORD}", f"{B}|{PASSWORD}",
                                        "fwd@acme.example|a@acme.example|relay"],
                                   AddressList.NO_FILTER)
    return directory


async def test_enrol_verify_once_and_turn_off(services: Services) -> None:
    tf = services.mailbox_two_factor
    assert not await tf.enabled(A)
    new = tf.new_secret(A)
    uri = urlparse(new.uri)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert A in unquote(uri.path) and parse_qs(uri.query)["secret"] == [new.secret]
    assert tf.uri(new.secret, A) == new.uri
    with pytest.raises(InvalidInput):
        await tf.enable(A, new.secret, wrong(new.secret), now=NOW)
    with pytest.raises(InvalidInput):
        await tf.enable(A, "not base32!", "123456", now=NOW)
    assert not await tf.enabled(A)
    await tf.enable(A, new.secret, code(new.secret), now=NOW)
    assert await tf.enabled(A) and not await tf.enabled(B)
    with pytest.raises(Conflict):
        await tf.enable(A, new.secret, code(new.secret, 1), now=NOW)
    # the enrolling code is used up; the next step's is good once; a step behind it is not
    assert not await tf.verify(A, code(new.secret), now=NOW)
    assert await tf.verify(A, code(new.secret, 1), now=NOW)
    assert not await tf.verify(A, code(new.secret, 1), now=NOW)
    later = NOW + timedelta(minutes=5)
    assert not await tf.verify(A, code(new.secret, 8), now=later)  # two steps behind
    assert not await tf.verify(A, code(new.secret, 12), now=later)  # two steps ahead
    assert await tf.verify(A, code(new.secret, 10), now=later)
    assert not await tf.verify(A, code(new.secret, 9), now=later)  # older than the used one
    assert not await tf.verify(B, code(new.secret, 11), now=later)  # not on for B
    assert not await tf.verify(A, "12 34", now=later)
    with pytest.raises(InvalidInput):
        await tf.disable(A, code(new.secret, 10), now=later)  # used
    await tf.disable(A, code(new.secret, 11), now=later)
    assert not await tf.enabled(A)
    assert not await tf.verify(A, code(new.secret, 11), now=later)
    with pytest.raises(Conflict):
        await tf.disable(A, code(new.secret, 11), now=later)
    entries = (await services.audit.search(OP, action="address.two-factor")).items
    assert [(e.action, e.target, e.detail) for e in entries] == [
        ("address.two-factor", A, "off, by the mailbox user"),
        ("address.two-factor", A, "on, by the mailbox user")]


async def test_a_code_is_accepted_once_when_logins_race(services: Services) -> None:
    tf = services.mailbox_two_factor
    secret = tf.new_secret(A).secret
    await tf.enable(A, secret, code(secret), now=NOW)
    results = await asyncio.gather(*(tf.verify(A, code(secret, 1), now=NOW)
                                     for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]


async def test_only_real_mailboxes_and_their_admins(services: Services) -> None:
    tf = services.mailbox_two_factor
    secret = tf.new_secret(A).secret
    for who in ("fwd@acme.example", "nobody@acme.example", "not an address"):
        with pytest.raises(NotFound):
            await tf.enable(who, secret, code(secret), now=NOW)
    await tf.enable(A, secret, code(secret), now=NOW)
    globex = Actor.for_account(2, "admin@globex.example")
    with pytest.raises(NotFound):
        await tf.reset(globex, services.addresses, A)  # another account's mailbox
    assert await tf.enabled(A)
    acme = Actor.for_account(1, "admin@acme.example")
    assert await tf.reset(acme, services.addresses, A)
    assert not await tf.enabled(A)
    assert not await tf.reset(acme, services.addresses, A)


async def test_two_factor_goes_with_the_address(services: Services) -> None:
    tf = services.mailbox_two_factor
    secret = tf.new_secret(A).secret
    await tf.enable(A, secret, code(secret), now=NOW)
    await services.addresses.delete(OP, [A])
    await services.bulk.add_lines(OP, [f"{A}|{PASSWORD}"], AddressList.NO_FILTER)
    assert not await tf.enabled(A)  # a new mailbox of the same name starts without it
    assert not await tf.verify(A, code(secret, 1), now=NOW)
