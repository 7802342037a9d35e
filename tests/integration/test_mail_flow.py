"""Mail flow end to end over real sockets: our mx listener (stdlib smtplib client) → spool
→ delivery workers → customer servers (aiosmtpd sinks) or our mailboxes; bounces parsed
back with the stdlib ``email`` package. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from mail_helpers import (
    Sink,
    eventually,
    mail_roles,
    mail_settings,
    message,
    port_of,
    sink_server,
)
from sqlalchemy import update

from mailward.app import Services
from mailward.config import Settings
from mailward.db import Address, AddressList
from mailward.directory import Actor
from mailward.store import StoreError, open_store

OP = Actor.operator()
OUTSIDER = "sender@outside.example"


def send(port: int, sender: str, recipients: list[str], data: bytes) -> dict[str, tuple]:
    """Send one message with smtplib; returns the refused recipients (empty = all taken)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail(sender, recipients, data)


@dataclass
class World:
    settings: Settings
    directory: Services
    mx: int
    relay: Sink  # the smarthost: mail leaving us (bounces, forwards to other domains)

    async def send(self, sender: str, recipients: list[str], data: bytes) -> dict:
        return await asyncio.to_thread(send, self.mx, sender, recipients, data)

    async def queue(self, **filters: str) -> list:
        return (await self.directory.queue.list(OP, **filters)).items

    def mailbox(self, address: str):  # type: ignore[no-untyped-def]
        return open_store(self.settings, self.directory.db)


@pytest.fixture
async def world(settings: Settings, directory: Services) -> AsyncIterator[World]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "filtered.example", account="Acme")
    await directory.domains.create(OP, "hosted.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "hosted.example")
    async with sink_server() as relay:
        configured = mail_settings(settings, relay_host=relay.address)
        async with mail_roles(configured) as urls:
            yield World(configured, Services(directory.db, configured), port_of(urls["mx"]),
                        relay)


async def add(world: World, line: str, list_: AddressList = AddressList.FILTER) -> None:
    result = await world.directory.bulk.add_lines(OP, [line], list_)
    assert result.results[0].status.value in ("added", "updated"), result.results[0]


async def test_filtering_only_domain_relays_to_the_customer_server(world: World) -> None:
    async with sink_server() as customer:
        await world.directory.servers.add(OP, "filtered.example", customer.address, preference=10)
        await add(world, "ann@filtered.example")
        await add(world, "bob@filtered.example", AddressList.NO_FILTER)
        refused = await world.send(OUTSIDER, ["ann@filtered.example", "bob@filtered.example"],
                                   message(OUTSIDER, "ann@filtered.example", "Relayed"))
        assert refused == {}
        [got] = await customer.wait_for(1)
    assert got.sender == OUTSIDER
    assert sorted(got.recipients) == ["ann@filtered.example", "bob@filtered.example"]
    assert got.message["Subject"] == "Relayed"
    received = got.message.get_all("Received")
    assert received and "by mx.mailward.test" in received[0]
    assert await eventually(lambda: _empty(world))


async def _empty(world: World) -> bool:
    return await world.queue() == []


async def test_hosted_mailbox_gets_the_message_in_its_inbox(world: World) -> None:
    await add(world, "carol@hosted.example|Secret-pass-9", AddressList.NO_FILTER)
    await world.send(OUTSIDER, ["carol@hosted.example"],
                     message(OUTSIDER, "carol@hosted.example", "For the inbox"))
    store = world.mailbox("carol@hosted.example")
    messages = await _wait_for_messages(store, "carol@hosted.example", 1)
    data = await store.fetch("carol@hosted.example", "INBOX", messages[0].uid)
    assert b"Subject: For the inbox" in data
    assert data.startswith(b"Delivered-To: carol@hosted.example\r\n")
    view = await world.directory.addresses.get(OP, "carol@hosted.example")
    assert view.used_bytes == len(data)


async def test_sub_addresses_reach_the_base_mailbox_once(world: World) -> None:
    """bob+news@ is bob@ (RFC 5233 style, "+" by default): delivered into bob's INBOX, once
    when the transaction also names bob@ itself."""
    await add(world, "carol@hosted.example|Secret-pass-9", AddressList.NO_FILTER)
    refused = await world.send(OUTSIDER, ["Carol+News@hosted.example", "carol@hosted.example"],
                               message(OUTSIDER, "carol+news@hosted.example", "Tagged"))
    assert refused == {}
    store = world.mailbox("carol@hosted.example")
    await _wait_for_messages(store, "carol@hosted.example", 1)
    await eventually(lambda: _queue_empty(world))  # every copy there was is delivered
    [got] = await store.messages("carol@hosted.example", "INBOX")
    data = await store.fetch("carol@hosted.example", "INBOX", got.uid)
    assert b"Subject: Tagged" in data and data.startswith(b"Delivered-To: carol@hosted.example")
    assert world.relay.received == []  # nothing bounced


async def _queue_empty(world: World) -> bool:
    return not await world.queue()


async def _wait_for_messages(store, mailbox: str, count: int) -> list:  # type: ignore[no-untyped-def]
    """Until ``count`` messages are in the INBOX (delivery is asynchronous)."""

    async def check() -> list:
        try:
            found = await store.messages(mailbox, "INBOX")
        except StoreError:  # not created until the first delivery
            return []
        return found if len(found) >= count else []

    return await eventually(check)


async def test_rcpt_answers_come_from_the_directory(world: World) -> None:
    await add(world, "ann@filtered.example")
    await add(world, "full@hosted.example|Secret-pass-9", AddressList.NO_FILTER)
    await world.directory.addresses.set_quota(OP, "full@hosted.example", 100)
    async with world.directory.db.session() as session, session.begin():
        await session.execute(update(Address).where(Address.email == "full@hosted.example")
                              .values(used_bytes=100))

    def rcpt_replies() -> list[tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", world.mx, timeout=30) as client:
            client.ehlo("client.example")
            client.mail(OUTSIDER)
            return [client.rcpt(address) for address in (
                "someone@gmail.example", "nobody@filtered.example", "ann@filtered.example",
                "full@hosted.example", "not an address")]

    relay, unlisted, listed, full, malformed = await asyncio.to_thread(rcpt_replies)
    assert relay[0] == 550 and relay[1].startswith(b"5.7.1")
    assert unlisted[0] == 550 and unlisted[1].startswith(b"5.1.1")
    assert listed[0] == 250
    assert full[0] == 452 and full[1].startswith(b"4.2.2")
    assert malformed[0] == 501


async def test_ehlo_offers_the_extensions_and_starttls_works(world: World) -> None:
    await add(world, "ann@filtered.example")

    def session() -> tuple[set[str], str]:
        with smtplib.SMTP("127.0.0.1", world.mx, timeout=30) as client:
            client.ehlo("client.example")
            offered = set(client.esmtp_features)
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client.starttls(context=context)
            version = client.sock.version()  # type: ignore[union-attr]
            client.sendmail(OUTSIDER, ["ann@filtered.example"],
                            message(OUTSIDER, "ann@filtered.example", "Over TLS"))
            return offered, version

    async with sink_server() as customer:
        await world.directory.servers.add(OP, "filtered.example", customer.address,
                                          preference=10)
        offered, version = await asyncio.to_thread(session)
        [got] = await customer.wait_for(1)
    assert {"size", "pipelining", "8bitmime", "smtputf8", "enhancedstatuscodes",
            "starttls", "dsn"} <= offered
    assert version in ("TLSv1.2", "TLSv1.3")
    received = " ".join(str(got.message.get_all("Received")[0]).split())
    assert "with ESMTPS" in received and f"using {version}" in received
    cert, key = world.settings.tls_files
    assert cert.exists() and key.stat().st_mode & 0o077 == 0


async def test_switching_a_domain_from_filtering_to_hosting_loses_nothing(
    world: World,
) -> None:
    """Mail keeps flowing while the customer 'throws the switch' to hosting."""
    await world.directory.domains.set_hosting(OP, "filtered.example", True)
    await add(world, "dave@filtered.example|Secret-pass-9")
    async with sink_server() as customer:
        await world.directory.servers.add(OP, "filtered.example", customer.address,
                                          preference=10)
        total = 30

        def sender() -> None:
            with smtplib.SMTP("127.0.0.1", world.mx, timeout=30) as client:
                for number in range(total):
                    data = message(OUTSIDER, "dave@filtered.example", f"switch {number}")
                    client.sendmail(OUTSIDER, ["dave@filtered.example"], data)

        sending = asyncio.create_task(asyncio.to_thread(sender))
        await customer.wait_for(3)  # mail is flowing to the customer's server
        await world.directory.servers.auto_configure_hosting(OP, "filtered.example")
        await sending
        store = world.mailbox("dave@filtered.example")

        async def all_arrived() -> bool:
            try:
                boxed = await store.messages("dave@filtered.example", "INBOX")
            except StoreError:
                boxed = []
            return len(boxed) + len(customer.received) >= total

        await eventually(all_arrived)
        boxed = await store.messages("dave@filtered.example", "INBOX")
    subjects = {str(r.message["Subject"]) for r in customer.received}
    for info in boxed:
        data = await store.fetch("dave@filtered.example", "INBOX", info.uid)
        subjects.add(str(email.message_from_bytes(data, policy=email.policy.default)["Subject"]))
    assert subjects == {f"switch {n}" for n in range(total)}
    assert boxed, "after the switch, mail lands in the hosted mailbox"
    assert await eventually(lambda: _empty(world))


async def test_a_pipelining_client_gets_every_answer_in_order(world: World) -> None:
    await add(world, "ann@filtered.example")
    async with sink_server() as customer:
        await world.directory.servers.add(OP, "filtered.example", customer.address,
                                          preference=10)
        reader, writer = await asyncio.open_connection("127.0.0.1", world.mx)

        async def reply() -> bytes:
            lines = [await reader.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(await reader.readline())
            return lines[-1]

        assert (await reply()).startswith(b"220 ")
        writer.write(b"EHLO client.example\r\n")
        assert (await reply()).startswith(b"250 ")
        writer.write(b"MAIL FROM:<x@outside.example>\r\nRCPT TO:<ann@filtered.example>\r\n"
                     b"RCPT TO:<nobody@filtered.example>\r\nRCPT TO:<a@elsewhere.example>\r\n"
                     b"DATA\r\n")
        answers = [await reply() for _ in range(5)]
        assert [a[:3] for a in answers] == [b"250", b"250", b"550", b"550", b"354"]
        assert answers[2].startswith(b"550 5.1.1") and answers[3].startswith(b"550 5.7.1")
        writer.write(b"Subject: piped\r\n\r\nhello\r\n.\r\nQUIT\r\n")
        assert (await reply()).startswith(b"250 2.0.0 Ok: queued as ")
        assert (await reply()).startswith(b"221")
        writer.close()
        await writer.wait_closed()
        [got] = await customer.wait_for(1)
    assert got.recipients == ["ann@filtered.example"]
