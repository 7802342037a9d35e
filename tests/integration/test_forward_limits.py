"""Forwarding fan-out is bounded (issue 16 item 5) and local delivery needs hosting (item 4).

Configuration: the CLI and the API refuse forwarder graphs (across tenants) that would
exceed ``forward_max_depth`` or ``forward_max_copies``, naming the chain. Delivery: a graph
written past those checks (legacy data) still makes at most ``forward_max_copies`` copies
and forwards at most ``forward_max_depth`` deep, over a real MX and delivery worker; the
extra copies bounce with a reason.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from api_server import API, Headers, Tenants, ok
from cli_helpers import Cli, error_line
from mail_helpers import Sink, eventually, mail_roles, mail_settings, message, port_of, sink_server
from mail_helpers import smtp_send as send
from sqlalchemy import update

from mailward.app import Services
from mailward.config import Settings
from mailward.db import Address, AddressList
from mailward.db.models import Domain
from mailward.directory import Actor
from mailward.queue.local import LocalDelivery
from mailward.queue.outcome import Result
from mailward.store import open_store

OP = Actor.operator()
OUTSIDER = "sender@outside.example"
FAN = 8  # 8 forwarders of 8 destinations each: 8 + 64 = 72 copies, over the cap of 50


def externals(prefix: str) -> str:
    return ",".join(f"{prefix}{n}@o.example" for n in range(1, FAN + 1))


# -- configuration time ------------------------------------------------------------------


def test_cli_refuses_a_chain_deeper_than_the_cap_across_tenants(tenants: Cli) -> None:
    cli = tenants
    chain = ["c1@acme.example", "c2@globex.example", "c3@acme.example", "c4@globex.example",
             "c5@acme.example", "c6@acme.example"]
    cli("address", "add", "-a", "Acme", "--list", "filter",
        input="c6@acme.example|out@x.example|relay\nc7@acme.example|out@x.example|relay\n")
    for address, target in reversed(list(itertools.pairwise(chain[1:]))):
        account = "Globex" if "globex" in address else "Acme"
        cli("address", "add", "-a", account, "--list", "filter",
            input=f"{address}|{target}|relay\n")
    # c2 → ... → c6: five forwarders, the cap; one more in front is refused
    refused = cli("address", "add", "-a", "Acme", "--list", "filter",
                  input="c1@acme.example|c2@globex.example|relay\n", code=1)
    assert error_line(refused) == ("error: nothing was added: forwarding refused: "
            "c1@acme.example → c2@globex.example → c3@acme.example → "
            "c4@globex.example → c5@acme.example → c6@acme.example → ... exceeds the "
            "forwarding depth 5 (forwarders one message may pass through)")
    cli("address", "add", "-a", "Acme", "--list", "filter", input="c1@acme.example\n")
    setup = cli("address", "setup", "c1@acme.example", "--forward", "c2@globex.example",
                code=1)
    assert error_line(setup).startswith("error: forwarding refused: c1@acme.example → ")
    # lengthening the tail is refused too, naming the chain from the top (another tenant's)
    tail = cli("address", "forward", "c6@acme.example", "c7@acme.example", code=1)
    assert error_line(tail).startswith(
        "error: forwarding refused: c2@globex.example → c3@acme.example → ")
    assert "exceeds the forwarding depth 5" in tail.stderr
    # within the caps all is well
    cli("address", "forward", "c5@acme.example", "c7@acme.example")


async def test_api_refuses_a_fan_out_over_the_copy_cap(client: httpx.AsyncClient,
                                                      customers: Tenants) -> None:
    alice: Headers = customers.alice
    lines = "\n".join(f"f{n}@acme.example|{externals(f'e{n}-')}|relay"
                      for n in range(1, FAN + 1))
    body = await ok(client.post(f"{API}/addresses/bulk", json={"list": "filter", "text": lines},
                                headers=alice))
    assert body["counts"]["added"] == FAN
    hubs = ",".join(f"f{n}@acme.example" for n in range(1, FAN + 1))
    refused = await client.post(f"{API}/addresses", headers=alice, json={
        "address": "hub@acme.example", "list": "filter", "destinations": hubs})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error.startswith("forwarding refused: hub@acme.example fans out to 72 copies "
                            f"(limit 50): hub@acme.example → {hubs}; f")
    whole = await client.post(f"{API}/addresses/bulk", headers=alice, json={
        "list": "filter", "text": f"hub@acme.example|{hubs}|relay\n"})
    assert whole.status_code == 400 and "fans out to 72 copies" in whole.text
    await ok(client.post(f"{API}/addresses", headers=alice, json={
        "address": "hub@acme.example", "list": "filter", "destinations": "f1@acme.example"}),
        201)
    change = await client.put(f"{API}/addresses/hub@acme.example/destinations", headers=alice,
                              json={"destinations": hubs})
    assert change.status_code == 400 and "fans out to 72 copies (limit 50)" in change.text
    shown = await ok(client.get(f"{API}/addresses/hub@acme.example", headers=alice))
    assert shown["destinations"] == ["f1@acme.example"]


# -- delivery time -------------------------------------------------------------------------


@dataclass
class World:
    directory: Services
    mx: int
    relay: Sink


@pytest.fixture
async def world(settings: Settings, directory: Services) -> AsyncIterator[World]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "h.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "h.example")
    async with sink_server() as relay:
        configured = mail_settings(settings, relay_host=relay.address)
        async with mail_roles(configured) as urls:
            yield World(Services(directory.db, configured), port_of(urls["mx"]), relay)


async def _force(directory: Services, address: str, destinations: str) -> None:
    """Point ``address`` at ``destinations`` behind the directory's back (legacy data)."""
    async with directory.db.session() as session, session.begin():
        await session.execute(update(Address).where(Address.email == address)
                              .values(destinations=destinations))


def _diagnostics(data: bytes) -> list[str]:
    report = email.message_from_bytes(data, policy=email.policy.default)
    [part] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    return [str(block["Diagnostic-Code"]) for block in list(part.get_payload())[1:]]


async def test_delivery_bounds_copies_and_depth_of_graphs_set_past_the_checks(
        world: World) -> None:
    directory = world.directory
    forwarders = [f"f{n}@h.example" for n in range(1, FAN + 1)]
    chain = [f"d{n}@h.example" for n in range(1, 7)]  # six forwarders: one too many
    lines = [f"{f}|{externals(f'e{n}-')}|relay" for n, f in enumerate(forwarders, 1)]
    lines += ["hub@h.example|f1@h.example|relay"]
    # d2 → ... → d6 → outside: five forwarders, allowed; d1 joins the chain behind its back
    lines += [f"{a}|{b}|relay" for a, b in zip(chain[1:], [*chain[2:], "end@o.example"],
                                                strict=True)]
    lines += [f"{chain[0]}|x@o.example|relay"]
    result = await directory.bulk.add_lines(OP, lines, AddressList.NO_FILTER)
    assert result.counts["invalid"] == 0, result.results
    await _force(directory, "hub@h.example", ",".join(forwarders))
    await _force(directory, chain[0], chain[1])

    await asyncio.to_thread(send, world.mx, OUTSIDER, ["hub@h.example", chain[0]],
                            message(OUTSIDER, "hub@h.example", "Fan out"))
    assert await eventually(lambda: _queue_empty(directory))

    forwarded = [r for r in world.relay.received if r.sender == OUTSIDER]
    copies = sum(len(r.recipients) for r in forwarded)
    # hub makes 8 copies, the 42 left cover five forwarders' 8 (and 2 more for a sixth)
    assert copies == 5 * FAN
    assert all(r.recipients[0].endswith("@o.example") for r in forwarded)
    assert not any("end@o.example" in r.recipients for r in forwarded)  # depth: never there
    bounces = [d for r in world.relay.received if r.sender == "" for d in _diagnostics(r.data)]
    assert sum("may become only 2 more" in d for d in bounces) == 1  # the sixth forwarder
    assert sum("may become only 0 more" in d for d in bounces) == 2  # the last two
    assert sum("beyond the forwarding depth 5" in d and chain[5] in d for d in bounces) == 1
    assert len(bounces) == 4


async def _queue_empty(directory: Services) -> bool:
    return (await directory.queue.list(OP)).items == []


async def test_local_delivery_needs_hosting_on(settings: Settings, directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "h.example", account="Acme", hosting=True)
    await directory.bulk.add_lines(OP, ["carol@h.example|Secret-pass-9"],
                                   AddressList.NO_FILTER)
    async with directory.db.session() as session, session.begin():
        await session.execute(update(Domain).where(Domain.name == "h.example")
                              .values(hosting=False))
    store = open_store(settings, directory.db)
    local = LocalDelivery(directory.db, store, directory.queue.spool)
    data = message(OUTSIDER, "carol@h.example", "Held")
    held = await local.deliver("carol@h.example", sender=OUTSIDER, data=data)
    assert (held.result, held.status) == (Result.DEFERRED, "4.3.5")
    assert "hosting is off for h.example" in held.detail
    assert await _inbox(store, "carol@h.example") == 0
    async with directory.db.session() as session, session.begin():
        await session.execute(update(Domain).where(Domain.name == "h.example")
                              .values(hosting=True))
    done = await local.deliver("carol@h.example", sender=OUTSIDER, data=data)
    assert done.result is Result.DELIVERED
    assert await _inbox(store, "carol@h.example") == 1


async def _inbox(store, mailbox: str) -> int:  # type: ignore[no-untyped-def]
    try:
        return len(await store.messages(mailbox, "INBOX"))
    except Exception:  # no mailbox yet
        return 0
