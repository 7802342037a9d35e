"""Mailbox logins (POP3/IMAP/submission): who may log in, and the brute-force lock."""

from __future__ import annotations

import asyncio

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor

OP = Actor.operator()
PASSWORD = "Mailbox-pass-77"


async def setup(directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, [
        f"box@acme.example|{PASSWORD}",
        "fwd@acme.example|box@acme.example|relay",
        "todo@acme.example",
    ], AddressList.NO_FILTER)


async def test_only_mailboxes_log_in_with_their_full_address(directory: Services) -> None:
    await setup(directory)
    login = directory.mail_login
    assert (await login.authenticate("Box@ACME.example", PASSWORD, "192.0.2.1")).mailbox \
        == "box@acme.example"
    assert not (await login.authenticate("box", PASSWORD, "192.0.2.1")).ok
    assert not (await login.authenticate("box@acme.example", "wrong", "192.0.2.1")).ok
    assert not (await login.authenticate("fwd@acme.example", PASSWORD, "192.0.2.1")).ok
    assert not (await login.authenticate("todo@acme.example", "", "192.0.2.1")).ok
    assert not (await login.authenticate("nobody@acme.example", PASSWORD, "192.0.2.1")).ok


async def test_repeated_failures_lock_the_address_and_the_client(
    settings: Settings, directory: Services
) -> None:
    await setup(directory)
    directory = Services(directory.db, settings.model_copy(update={
        "auth_failures_per_window": 3, "auth_ip_failures_per_window": 5}))
    login = directory.mail_login
    for _ in range(3):
        result = await login.authenticate("box@acme.example", "guess", "192.0.2.9")
        assert not result.ok and result.retry_after == 0
    locked = await login.authenticate("box@acme.example", PASSWORD, "192.0.2.9")
    assert not locked.ok and locked.retry_after > 0  # even the right password waits
    assert await login.locked("box@acme.example") > 0
    # The address is locked from another client as well (per-mailbox limit).
    assert (await login.authenticate("box@acme.example", PASSWORD, "192.0.2.10")).retry_after
    # A client guessing across addresses is locked by the per-IP limit.
    await directory.bulk.add_lines(OP, [f"other@acme.example|{PASSWORD}"],
                                   AddressList.NO_FILTER)
    for name in ("a", "b"):
        await login.authenticate(f"{name}@acme.example", "guess", "192.0.2.9")
    assert (await login.authenticate("other@acme.example", PASSWORD, "192.0.2.9")).retry_after
    assert (await login.authenticate("other@acme.example", PASSWORD, "192.0.2.11")).ok


async def test_many_simultaneous_good_logins_from_one_address_are_fine(
    settings: Settings, directory: Services
) -> None:
    """An office behind one NAT address, all mail clients polling at once."""
    await setup(directory)
    directory = Services(directory.db, settings.model_copy(update={
        "auth_failures_per_window": 3, "auth_ip_failures_per_window": 5}))
    results = await asyncio.gather(*(
        directory.mail_login.authenticate("box@acme.example", PASSWORD, "192.0.2.50")
        for _ in range(20)))
    assert all(result.ok for result in results)
