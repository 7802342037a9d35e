"""Mailbox logins (POP3/IMAP/submission): who may log in, and the brute-force lock."""

from __future__ import annotations

from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor, Directory

OP = Actor.operator()
PASSWORD = "Mailbox-pass-77"


async def setup(directory: Directory) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, [
        f"box@acme.example|{PASSWORD}",
        "fwd@acme.example|box@acme.example|relay",
        "todo@acme.example",
    ], AddressList.NO_FILTER)


async def test_only_mailboxes_log_in_with_their_full_address(directory: Directory) -> None:
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
    settings: Settings, directory: Directory
) -> None:
    await setup(directory)
    login = directory.mail_login
    for _ in range(settings.auth_failures_per_window):
        result = await login.authenticate("box@acme.example", "guess", "192.0.2.9")
        assert not result.ok and result.retry_after == 0
    locked = await login.authenticate("box@acme.example", PASSWORD, "192.0.2.9")
    assert not locked.ok and locked.retry_after > 0  # even the right password waits
    assert login.locked("box@acme.example") > 0
    # The address is locked from another client as well (per-account limit) ...
    assert (await login.authenticate("box@acme.example", PASSWORD, "192.0.2.10")).retry_after
    # ... and the guessing client is locked for other addresses too (per-IP limit).
    await directory.bulk.add_lines(OP, [f"other@acme.example|{PASSWORD}"],
                                   AddressList.NO_FILTER)
    assert (await login.authenticate("other@acme.example", PASSWORD, "192.0.2.9")).retry_after
    assert (await login.authenticate("other@acme.example", PASSWORD, "192.0.2.11")).ok
