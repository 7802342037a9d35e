"""A message's trace end to end over real sockets, on both backends: accepted over SMTP by
our MX, filtered, relayed to the customer's server after a deferral (451, then 250), and
every event of that story recorded once, in order, under the trace id the 250 reply
named; a refused recipient traced for its domain; another account's admin sees nothing."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from dns_server import dns_server
from mail_helpers import (
    Sink,
    eventually,
    filter_mail,
    mail_roles,
    mail_settings,
    port_of,
    sink_server,
)
from sqlalchemy import select

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.db.models import TraceEventRow
from mailward.directory import Actor

OP = Actor.operator()
ZONE = """
good.example.        300 IN TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc.good.example. 300 IN TXT "v=DMARC1; p=reject"
"""
SENDER = "anna@good.example"


@dataclass
class World:
    mx: int
    customer: Sink
    services: Services


@pytest.fixture
async def world(settings: Settings, directory: Services) -> AsyncIterator[World]:
    await directory.accounts.create(OP, "Acme")
    await directory.accounts.create(OP, "Globex")
    await directory.domains.create(OP, "filtered.example", account="Acme")
    await directory.domains.create(OP, "globex.example", account="Globex")
    await directory.bulk.add_lines(OP, ["ann@filtered.example"], AddressList.FILTER)
    answers = iter(["451 4.3.0 try again later"])  # the first DATA is deferred

    def data(_envelope: object) -> str | None:
        return next(answers, None)

    with dns_server(ZONE) as nameserver:
        async with sink_server(data=data) as customer:
            await directory.servers.add(OP, "filtered.example", customer.address,
                                        preference=10)
            configured = mail_settings(settings, spam_filter=True,
                                       dns_nameservers=[nameserver], dns_timeout_seconds=1)
            async with mail_roles(configured) as urls:
                yield World(port_of(urls["mx"]), customer, Services(directory.db, configured))


def send(port: int, recipients: list[str], data: bytes) -> tuple[dict, str]:
    """Send one message; the refused recipients and the DATA reply's text."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.good.example")
        client.mail(SENDER)
        refused = {}
        for rcpt in recipients:
            code, text = client.rcpt(rcpt)
            if code >= 400:
                refused[rcpt] = (code, text)
        code, text = client.data(data)
        assert code == 250, (code, text)
    return refused, text.decode()


async def events(services: Services, trace_id: str) -> list[TraceEventRow]:
    async with services.db.session() as session:
        return list((await session.scalars(
            select(TraceEventRow).where(TraceEventRow.trace_id == trace_id)
            .order_by(TraceEventRow.at, TraceEventRow.id))).all())


async def test_accepted_filtered_deferred_then_delivered(world: World) -> None:
    data = filter_mail(SENDER, "ann@filtered.example", "Quarterly report")
    refused, reply = await asyncio.to_thread(
        send, world.mx, ["ann@filtered.example", "nobody@filtered.example"], data)
    assert list(refused) == ["nobody@filtered.example"]
    trace_id = reply.split("queued as ")[1].split()[0]  # the first copy's queue id
    [got] = await world.customer.wait_for(1)
    assert got.recipients == ["ann@filtered.example"]

    async def finished() -> list[TraceEventRow]:
        found = await events(world.services, trace_id)
        return found if any(e.kind == "dequeue" for e in found) else []

    story = await eventually(finished)
    assert [(e.kind, e.outcome) for e in story] == [
        ("connect", "info"), ("mail", "accepted"),
        ("rcpt", "accepted"), ("rcpt", "refused"),
        ("data", "accepted"), ("verdict", "accepted"),
        ("attempt", "deferred"), ("attempt", "delivered"), ("dequeue", "removed")]
    connect, _, accepted, unlisted, data_event, verdict, deferred, delivered, _ = story
    assert connect.peer == "127.0.0.1" and "client.good.example" in connect.detail
    assert accepted.domain == "filtered.example" and accepted.mailbox == "ann@filtered.example"
    assert unlisted.domain == "filtered.example" and "5.1.1" in unlisted.detail
    assert data_event.subject == "Quarterly report" and data_event.domain is None
    assert '"filtered":true' in verdict.detail and '"score"' in verdict.detail
    assert f'"port":{world.customer.port}' in deferred.detail and "451" in deferred.detail
    assert delivered.queue_id == trace_id and "250" in delivered.detail
    assert len({e.session_id for e in story[:6]}) == 1 and story[0].session_id


async def test_another_accounts_admin_sees_nothing(world: World) -> None:
    data = filter_mail(SENDER, "ann@filtered.example", "For Acme only")
    _, reply = await asyncio.to_thread(send, world.mx, ["ann@filtered.example"], data)
    trace_id = reply.split("queued as ")[1].split()[0]
    await world.customer.wait_for(1)  # deferred once, then delivered
    acme = await world.services.accounts.get(OP, "Acme")
    globex = await world.services.accounts.get(OP, "Globex")
    tracing = world.services.tracing
    assert await tracing.story(Actor.for_account(acme.id), trace_id) is not None
    assert await tracing.story(Actor.for_account(globex.id), trace_id) is None
