"""Mailbox logins remember a password that verified: reconnecting clients skip Argon2id,
while a changed password, a lock or hosting switched off take effect at once, also when
they happen in another process (another ``Services`` over its own database connections).
Argon2id checks are counted by ``Passwords.verifications``."""

from __future__ import annotations

import asyncio
import contextlib
import poplib
import socket
from collections.abc import AsyncIterator

import pytest

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, Database
from mailward.directory import Actor
from mailward.directory.auth_cache import AuthCache
from mailward.directory.auth_limit import AuthLimiter, retry_after_all
from mailward.pop3 import LoginDeferred, start_pop3
from mailward.server.mail_roles import _DirectoryLogin
from mailward.store import open_store

OP = Actor.operator()
BOX = "box@acme.example"
PASSWORD = "Mailbox-pass-77"
NEW_PASSWORD = "Other-pass-4242"


async def setup(directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, [f"{BOX}|{PASSWORD}"], AddressList.NO_FILTER)


@contextlib.asynccontextmanager
async def other_process(settings: Settings) -> AsyncIterator[Services]:
    """Services over their own connection pool and caches, as another worker or node."""
    db = Database(settings.db_url)
    try:
        yield Services(db, settings)
    finally:
        await db.dispose()


@contextlib.asynccontextmanager
async def pop3_server(settings: Settings, services: Services) -> AsyncIterator[int]:
    """The POP3 listener over ``services``' mailbox login, as the pop3 role runs it."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = await start_pop3(
        authenticator=_DirectoryLogin(services.mail_login, "pop3", LoginDeferred),
        store=open_store(settings, services.db), sock=sock, hostname="pop.example",
        tls_context=None, implicit_tls=False, allow_plaintext_auth=True)
    try:
        yield sock.getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def pop3_login(port: int, password: str) -> str:
    """One connection: USER/PASS/QUIT; the server's answer to PASS."""
    client = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        client.user(BOX)
        try:
            answer = client.pass_(password).decode()
        except poplib.error_proto as exc:
            return exc.args[0].decode()
        client.quit()
        return answer
    finally:
        client.close()


async def test_pop3_reconnects_skip_argon2_until_the_password_changes_elsewhere(
    settings: Settings, directory: Services
) -> None:
    await setup(directory)
    checks = directory.passwords
    async with pop3_server(settings, directory) as port:
        start = checks.verifications
        assert (await asyncio.to_thread(pop3_login, port, PASSWORD)).startswith("+OK")
        assert checks.verifications == start + 1
        for _ in range(3):
            assert (await asyncio.to_thread(pop3_login, port, PASSWORD)).startswith("+OK")
        assert checks.verifications == start + 1  # the reconnects hit the cache

        async with other_process(settings) as other:  # the admin changes it elsewhere
            await other.addresses.set_password(OP, BOX, NEW_PASSWORD, NEW_PASSWORD)
        assert (await asyncio.to_thread(pop3_login, port, PASSWORD)).startswith("-ERR")
        assert checks.verifications == start + 2  # the old password took the full check
        assert (await asyncio.to_thread(pop3_login, port, NEW_PASSWORD)).startswith("+OK")
        assert (await asyncio.to_thread(pop3_login, port, NEW_PASSWORD)).startswith("+OK")
        assert checks.verifications == start + 3
    failures = await retry_after_all([(AuthLimiter(directory.db, 1, 900), f"mailbox:{BOX}")])
    assert failures > 0  # the refused old password was counted as a failed login


async def test_a_password_the_user_changed_in_the_panel_ends_the_cached_one(
    directory: Services
) -> None:
    await setup(directory)
    login = directory.mail_login
    assert (await login.authenticate(BOX, PASSWORD, "192.0.2.1")).ok
    await directory.mailbox_self.change_password(BOX, PASSWORD, NEW_PASSWORD, NEW_PASSWORD,
                                                 source="test")
    assert not (await login.authenticate(BOX, PASSWORD, "192.0.2.1")).ok
    assert (await login.authenticate(BOX, NEW_PASSWORD, "192.0.2.1")).ok


async def test_wrong_passwords_take_the_full_check_count_and_lock_even_a_cached_one(
    settings: Settings, directory: Services
) -> None:
    await setup(directory)
    strict = settings.model_copy(update={"auth_failures_per_window": 3})
    directory = Services(directory.db, strict)
    login, checks = directory.mail_login, directory.passwords
    assert (await login.authenticate(BOX, PASSWORD, "192.0.2.1")).ok
    start = checks.verifications
    for attempt in range(2):
        result = await login.authenticate(BOX, "guess-pass", "192.0.2.9")
        assert not result.ok and result.retry_after == 0
        assert checks.verifications == start + attempt + 1
    assert (await login.authenticate(BOX, PASSWORD, "192.0.2.1")).ok  # still cached
    assert checks.verifications == start + 2
    async with other_process(strict) as other:  # the third guess arrives at another node
        assert not (await other.mail_login.authenticate(BOX, "guess-pass", "192.0.2.9")).ok
    locked = await login.authenticate(BOX, PASSWORD, "192.0.2.1")
    assert not locked.ok and locked.retry_after > 0
    assert checks.verifications == start + 2  # refused before any check
    assert len(login.cache) == 0  # the lock made the process forget it

    await login.unlock(OP, directory.addresses, BOX)
    assert (await login.authenticate(BOX, PASSWORD, "192.0.2.1")).ok
    assert checks.verifications == start + 3  # verified afresh after the lock


async def test_hosting_switched_off_elsewhere_refuses_a_cached_password(
    settings: Settings, directory: Services
) -> None:
    await setup(directory)
    login = directory.mail_login
    assert (await login.authenticate(BOX, PASSWORD, "192.0.2.1", "imap")).ok
    async with other_process(settings) as other:
        await other.domains.set_hosting(OP, "acme.example", False)
    start = directory.passwords.verifications
    assert not (await login.authenticate(BOX, PASSWORD, "192.0.2.1", "imap")).ok
    assert directory.passwords.verifications == start + 1  # the same cost as a wrong one
    assert (await login.authenticate(BOX, PASSWORD, "192.0.2.1", "web")).ok


async def test_cached_logins_expire_after_the_ttl(directory: Services) -> None:
    await setup(directory)
    now = [0.0]
    login, checks = directory.mail_login, directory.passwords
    login.cache = AuthCache(300, 100, clock=lambda: now[0])
    assert (await login.authenticate(BOX, PASSWORD, "192.0.2.1")).ok
    start = checks.verifications
    now[0] = 299.0
    assert (await login.authenticate(BOX, PASSWORD, "192.0.2.1")).ok
    assert checks.verifications == start
    now[0] = 300.0
    assert (await login.authenticate(BOX, PASSWORD, "192.0.2.1")).ok
    assert checks.verifications == start + 1


@pytest.mark.parametrize("update", [{"mail_auth_cache_seconds": 0},
                                    {"mail_auth_cache_entries": 0}])
async def test_the_cache_can_be_turned_off(settings: Settings, directory: Services,
                                           update: dict[str, int]) -> None:
    await setup(directory)
    directory = Services(directory.db, settings.model_copy(update=update))
    for _ in range(2):
        assert (await directory.mail_login.authenticate(BOX, PASSWORD, "192.0.2.1")).ok
    assert directory.passwords.verifications == 2


async def test_one_query_answers_the_lock_of_every_limiter(directory: Services) -> None:
    now = [5000.0]
    strict = AuthLimiter(directory.db, 2, 60, clock=lambda: now[0])
    lenient = AuthLimiter(directory.db, 5, 600, clock=lambda: now[0])
    for _ in range(2):
        attempt = await strict.fail("mailbox:a")
        await lenient.fail("mail-ip:1", attempt=attempt)
    checks = [(strict, "mailbox:a"), (lenient, "mail-ip:1")]
    assert await retry_after_all(checks) == await strict.retry_after("mailbox:a") == 60
    assert await retry_after_all([(lenient, "mail-ip:1")]) == 0
    now[0] += 61  # out of the strict window, still inside the lenient one (not at its limit)
    assert await retry_after_all(checks) == 0
    for _ in range(3):
        await lenient.fail("mail-ip:1")
    assert await retry_after_all(checks) == await lenient.retry_after("mail-ip:1") == 539
    assert await retry_after_all([]) == 0

