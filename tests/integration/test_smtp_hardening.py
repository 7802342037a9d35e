"""MX hardening over real sockets (issue 16): DATA spilled to disk past a threshold,
connection caps with 421, postmaster always reachable, one DATA = one transaction.
Our own mx role (or listener) on loopback, stdlib smtplib clients, a real database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import smtplib
import socket
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from mail_helpers import (
    eventually,
    mail_roles,
    mail_settings,
    message,
    port_of,
    refused_queue_rows,
)
from sqlalchemy import select, text

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, QueuedMessage, QueuedRecipient
from mailward.db.models import QuarantineEntry
from mailward.directory import Actor
from mailward.filter import FilterInput, FilterPipeline, Finding
from mailward.inbound.mx import MxIntake
from mailward.quarantine.service import Quarantine
from mailward.smtp.mx import start_mx

OP = Actor.operator()
OUTSIDER = "sender@outside.example"


async def served(directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme")
    await directory.bulk.add_lines(OP, ["open@acme.example"], AddressList.NO_FILTER)
    await directory.bulk.add_lines(OP, ["filtered@acme.example"], AddressList.FILTER)


@contextlib.asynccontextmanager
async def mx(settings: Settings, **overrides: object) -> AsyncIterator[tuple[Settings, int]]:
    configured = mail_settings(settings, **overrides)
    async with mail_roles(configured, frozenset({"mx"})) as urls:
        yield configured, port_of(urls["mx"])


async def queued(directory: Services) -> list[tuple[str, str | None, bytes]]:
    """(recipient, ORCPT, bytes) of every queued recipient."""
    async with directory.db.session() as session:
        rows = (await session.execute(
            select(QueuedRecipient.recipient, QueuedRecipient.orcpt, QueuedMessage)
            .join(QueuedMessage, QueuedMessage.id == QueuedRecipient.message_id)
            .order_by(QueuedRecipient.id))).all()
        return [(r, o, await directory.queue.spool.read(m)) for r, o, m in rows]


def open_spill_files(spill_dir: Path) -> list[str]:
    """Files under ``spill_dir`` this process holds open (an anonymous temporary file
    shows as ``<dir>/#<inode> (deleted)``)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(f"{spill_dir}/"):
                found.append(target)
    return found


def big_message(lines: int) -> bytes:
    """A message of ``lines`` body lines, some starting with a dot (stuffed on the wire)."""
    body = b"".join((b"." if n % 7 == 0 else b"") + f"line {n:06d} ".encode() + b"x" * 60
                    + b"\r\n" for n in range(lines))
    return message(OUTSIDER, "open@acme.example", "Big") + body


def stuffed(data: bytes) -> bytes:
    return b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in data.split(b"\r\n"))


async def test_data_past_the_memory_threshold_goes_to_a_temporary_file(
        settings: Settings, directory: Services) -> None:
    """A message larger than ``smtp_data_memory_bytes`` is received into a temporary file
    under data_dir/tmp (seen open while DATA flows), spooled byte-exact, and the file is
    gone afterwards; one over ``max_message_size`` still gets 552 and nothing stays."""
    await served(directory)
    data = big_message(3000)  # ~220 KB
    async with mx(settings, smtp_data_memory_bytes=1024,
                  max_message_size=512 * 1024) as (configured, port):
        spill_dir = configured.data_dir / "tmp"

        async def spilling() -> list[str]:
            return open_spill_files(spill_dir)

        client = await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", port, timeout=30)
        try:
            await asyncio.to_thread(client.ehlo, "client.example")
            await asyncio.to_thread(client.mail, OUTSIDER)
            await asyncio.to_thread(client.rcpt, "open@acme.example")
            client.putcmd("data")
            assert (await asyncio.to_thread(client.getreply))[0] == 354
            wire = stuffed(data)
            half = wire.index(b"\r\n", 40_000) + 2
            await asyncio.to_thread(client.send, wire[:half])
            assert await eventually(spilling)  # DATA still flowing: in a file already
            await asyncio.to_thread(client.send, wire[half:] + b".\r\n")
            code, reply = await asyncio.to_thread(client.getreply)
            assert code == 250, reply
            assert open_spill_files(spill_dir) == [] and os.listdir(spill_dir) == []

            too_big = stuffed(big_message(3000 * 3))  # ~660 KB, limit 512 KB
            await asyncio.to_thread(client.mail, OUTSIDER)
            await asyncio.to_thread(client.rcpt, "open@acme.example")
            client.putcmd("data")
            assert (await asyncio.to_thread(client.getreply))[0] == 354
            await asyncio.to_thread(client.send, too_big + b".\r\n")
            code, reply = await asyncio.to_thread(client.getreply)
            assert code == 552 and reply.startswith(b"5.3.4")
            assert open_spill_files(spill_dir) == [] and os.listdir(spill_dir) == []
            assert (await asyncio.to_thread(client.noop))[0] == 250  # still in sync
        finally:
            await asyncio.to_thread(client.close)
    [(recipient, _, spooled)] = await queued(directory)
    assert recipient == "open@acme.example"
    assert spooled.startswith(b"Received: ") and spooled[spooled.index(b"From: "):] == data


def connect(port: int, source: str = "127.0.0.1") -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0))


def refused(port: int, source: str = "127.0.0.1") -> tuple[int, bytes]:
    try:
        connect(port, source).close()
    except smtplib.SMTPConnectError as exc:
        return exc.smtp_code, exc.smtp_error
    return 220, b"admitted"


async def test_connections_beyond_the_caps_get_421(settings: Settings,
                                                   directory: Services) -> None:
    """Per client address, then in total: the connection over a cap is told 421 and
    closed, those already open keep working, and a freed slot admits a new one."""
    async with mx(settings, max_connections_per_ip_mx=2, max_connections_mx=3) as (_, port):
        first = await asyncio.to_thread(connect, port)
        second = await asyncio.to_thread(connect, port)
        code, text_ = await asyncio.to_thread(refused, port)
        assert code == 421
        assert text_ == b"4.7.0 mx.mailward.test too many connections from your address"
        assert (await asyncio.to_thread(first.noop))[0] == 250
        assert (await asyncio.to_thread(second.noop))[0] == 250
        third = await asyncio.to_thread(connect, port, "127.0.0.2")  # 3 of 3 in total
        code, text_ = await asyncio.to_thread(refused, port, "127.0.0.3")
        assert (code, text_) == (421, b"4.7.0 mx.mailward.test too many connections, "
                                      b"try again later")
        assert (await asyncio.to_thread(first.quit))[0] == 221
        again = await asyncio.to_thread(connect, port)  # first's slot is free again
        assert (await asyncio.to_thread(again.noop))[0] == 250
        for client in (second, third, again):
            await asyncio.to_thread(client.quit)


async def test_postmaster_is_always_accepted_and_routed(settings: Settings,
                                                        directory: Services) -> None:
    """postmaster@ any served domain (any case) and <postmaster> are accepted even when
    not listed and queued for the configured postmaster with the written address as
    ORCPT; a domain's own postmaster@ address is used as usual; other domains' are
    still not relayed."""
    await served(directory)
    await directory.accounts.create(OP, "Other")
    await directory.domains.create(OP, "other.example", account="Other")
    await directory.bulk.add_lines(OP, ["postmaster@other.example"], AddressList.FILTER)

    def session(port: int) -> dict[str, int]:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("client.example")
            client.mail(OUTSIDER)
            codes = {to: client.rcpt(to)[0] for to in (
                "PostMaster@Acme.Example", "<Postmaster>", "postmaster@other.example",
                "postmaster@nowhere.example", "nobody@acme.example")}
            codes["DATA"] = client.data(message(OUTSIDER, "postmaster@acme.example",
                                                "Your server"))[0]
            return codes

    async with mx(settings, postmaster_address="Ops@Ops.Example") as (_, port):
        codes = await asyncio.to_thread(session, port)
    assert codes == {"PostMaster@Acme.Example": 250, "<Postmaster>": 250,
                     "postmaster@other.example": 250, "postmaster@nowhere.example": 550,
                     "nobody@acme.example": 550, "DATA": 250}
    assert {(r, o) for r, o, _ in await queued(directory)} == {
        ("ops@ops.example", "rfc822;PostMaster@Acme.Example"),
        ("postmaster@other.example", None)}


@pytest.fixture
async def refusing_trigger(directory: Services,
                           request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """Queue rows for one recipient are refused by the database (``filtered@`` unless the
    test names another); see ``refused_queue_rows``."""
    victim = getattr(request, "param", "filtered@acme.example")
    async with refused_queue_rows(directory.db, victim):
        yield victim


class Clean:
    """A filter check that finds nothing wrong (the filtered copy is still a copy)."""

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        return [Finding("clean", 0.1, "test")]


@contextlib.asynccontextmanager
async def listening(intake: MxIntake) -> AsyncIterator[int]:
    """An MX listener on a free loopback port for ``intake``; its port."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = await start_mx(intake, sock=sock, hostname="mx.mailward.test",
                            tls_context=None, data_size_limit=1_000_000, reverse_dns=None)
    try:
        yield sock.getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def send(port: int, recipients: list[str], data: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example")
        client.mail(OUTSIDER)
        for recipient in recipients:
            client.rcpt(recipient)
        return client.data(data)


async def lift_trigger(directory: Services) -> None:
    """Drop ``refusing_trigger`` early, as a fixed database would be."""
    async with directory.db.session() as session, session.begin():
        await session.execute(text(
            "DROP TRIGGER IF EXISTS test_refuse" if directory.db.is_sqlite
            else "DROP TRIGGER IF EXISTS test_refuse ON queue_recipients"))


async def test_one_data_is_one_transaction(settings: Settings, directory: Services,
                                           refusing_trigger: str) -> None:
    """The Do Not Filter copy and the filtered copy of one DATA are committed together: the
    second failing leaves neither (451, no spool file), and the client's retry then queues
    each copy once."""
    await served(directory)
    intake = MxIntake(directory.recipients, directory.queue.spool, FilterPipeline([Clean()]))
    data = message(OUTSIDER, "open@acme.example", "Twice?")
    recipients = ["open@acme.example", refusing_trigger]
    async with listening(intake) as port:
        code, reply = await asyncio.to_thread(send, port, recipients, data)
        assert (code, reply) == (451, b"4.3.0 Error: temporary failure, try again later")
        assert await queued(directory) == []
        spool_root = settings.data_dir / "queue"
        assert not spool_root.exists() or [p for p in spool_root.rglob("*") if p.is_file()
                                           ] == []
        await lift_trigger(directory)
        code, _ = await asyncio.to_thread(send, port, recipients, data)  # the retry
        assert code == 250
        assert sorted(r for r, _, _ in await queued(directory)) == [
            "filtered@acme.example", "open@acme.example"]


class Spammy:
    """A filter check scoring past the quarantine threshold."""

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        return [Finding("spammy", 12.0, "test")]


async def held_entries(directory: Services) -> list[str]:
    async with directory.db.session() as session:
        return list((await session.scalars(
            select(QuarantineEntry.recipient).order_by(QuarantineEntry.id))).all())


@pytest.mark.parametrize("refusing_trigger", ["open@acme.example"], indirect=True)
async def test_a_quarantine_hold_commits_with_the_copies(
        settings: Settings, directory: Services, refusing_trigger: str) -> None:
    """One DATA both held (for the Filter recipient) and queued (for the Do Not Filter
    one): the queued copy failing leaves no hold either, so the client's retry after the
    451 holds the message once."""
    await served(directory)
    intake = MxIntake(directory.recipients, directory.queue.spool,
                      FilterPipeline([Spammy()]),
                      quarantine=Quarantine(directory.db, settings))
    data = message(OUTSIDER, "open@acme.example", "Held and queued")
    recipients = ["filtered@acme.example", refusing_trigger]
    async with listening(intake) as port:
        code, _ = await asyncio.to_thread(send, port, recipients, data)
        assert code == 451
        assert await held_entries(directory) == []
        assert await queued(directory) == []
        await lift_trigger(directory)
        code, _ = await asyncio.to_thread(send, port, recipients, data)  # the retry
        assert code == 250
        assert await held_entries(directory) == ["filtered@acme.example"]
        assert [r for r, _, _ in await queued(directory)] == ["open@acme.example"]
