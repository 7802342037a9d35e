"""Issue 16: domains are proven before they route; hosting only with hosting; no private
mail servers. Real DNS (dnslib on loopback), real SMTP sinks, the real delivery worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from api_server import API, Headers, Tenants, error, login, ok, running_server
from cli_helpers import Cli, as_json, error_line, run_directory
from dns_server import TableResolver, dns_server, table_server
from loopback import own_loopback
from mail_helpers import Sink, mail_settings, sink_server
from panel_client import Panel, messages
from sqlalchemy import select

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, QueuedRecipient
from mailward.directory import Actor, Forbidden, InvalidInput
from mailward.directory.views import DomainView
from mailward.dns.lookup import DnsTools
from mailward.dns.recheck import DnsRechecker
from mailward.dns.verify import verify_domain
from mailward.queue.local import LocalDelivery
from mailward.queue.spool import NewRecipient
from mailward.queue.worker import DeliveryWorker
from mailward.routing.routes import Router
from mailward.store import open_store

OP = Actor.operator()
PASSWORD = "Reseller-pass-77"
# victim.example's real MX: port 25, as MX delivery uses, so on an address of its own
PUBLIC_MX = own_loopback()
ZONE = ("victim.example. 300 IN MX 10 mx.victim.example.\n"
        f"mx.victim.example. 300 IN A {PUBLIC_MX}\n")
BODY = b"Subject: hello\r\n\r\nhi\r\n"


@dataclass
class World:
    directory: Services
    settings: Settings
    worker: DeliveryWorker
    table: TableResolver
    public_mx: Sink  # victim.example's real MX
    attacker: Sink  # the host a reseller's customer named as victim.example's server
    evil: Actor  # the account admin of the account holding the claimed domain

    async def send(self, recipient: str, origin: str, sender: str = "ann@acme.example"
                   ) -> None:
        await self.directory.queue.spool.enqueue(
            sender=sender, recipients=[NewRecipient(recipient)], data=BODY, origin=origin)

    async def deliver(self) -> None:
        """Run delivery passes until nothing is due (forwards take a second pass)."""
        while await self.worker.run_once():
            pass


async def reseller_claims_victim(directory: Services) -> DomainView:
    """Reseller Northwind's user sam adds victim.example (not theirs) to its account Evil."""
    await directory.resellers.create(OP, "Northwind")
    await directory.accounts.create(OP, "Evil", reseller="Northwind")
    await directory.accounts.create_user(OP, "sam@northwind.example", PASSWORD,
                                         reseller="Northwind")
    sam = await directory.accounts.authenticate("sam@northwind.example", PASSWORD)
    assert sam is not None
    return await directory.domains.create(sam, "victim.example", account="Evil")


@pytest.fixture
async def world(settings: Settings, directory: Services) -> AsyncIterator[World]:
    with table_server(ZONE) as (nameserver, table):
        async with sink_server(host=PUBLIC_MX, port=25) as public_mx, \
                sink_server() as attacker:
            configured = mail_settings(settings, dns_nameservers=[nameserver])
            directory = Services(directory.db, configured)
            await directory.accounts.create(OP, "Acme")
            await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
            await directory.servers.auto_configure_hosting(OP, "acme.example")
            await directory.bulk.add_lines(
                OP, ["fwd@acme.example|someone@victim.example|relay"], AddressList.FILTER)
            claimed = await reseller_claims_victim(directory)
            assert (claimed.verified, claimed.verified_by) == (False, None)
            evil = await directory.accounts.actor_for("Evil")
            await directory.servers.add(evil, "victim.example", attacker.address, preference=10)
            spool = directory.queue.spool
            local = LocalDelivery(directory.db, open_store(configured, directory.db), spool)
            worker = DeliveryWorker(directory.db, configured, spool, local)
            yield World(directory, configured, worker, table, public_mx, attacker, evil)


async def test_an_unverified_domain_does_not_pull_other_tenants_mail(world: World) -> None:
    await world.send("someone@victim.example", "submission")
    # nor does its queue show the claimant other tenants' mail to it (sender, subject)
    assert (await world.directory.queue.list(world.evil)).items == []
    [queued] = (await world.directory.queue.list(OP)).items
    assert queued.recipient == "someone@victim.example"
    await world.send("fwd@acme.example", "mx", sender="x@outside.example")  # forwarded on
    await world.deliver()
    got = await world.public_mx.wait_for(2)
    assert sorted(m.recipients[0] for m in got) == ["someone@victim.example"] * 2
    assert world.attacker.connections == 0 and world.attacker.received == []

    # Mail that reached our MX tier for the domain itself still follows its settings.
    await world.send("someone@victim.example", "mx", sender="x@outside.example")
    await world.deliver()
    [inbound] = await world.attacker.wait_for(1)
    assert inbound.sender == "x@outside.example"


async def test_a_txt_token_verifies_and_the_settings_are_used(world: World) -> None:
    view = await world.directory.domains.get(world.evil, "victim.example")
    assert view.verification_txt.startswith("mailward-verification=")
    refused = await verify_domain(world.directory, world.settings, world.evil, "victim.example")
    assert not refused.verified and "no TXT record with the token" in refused.detail
    assert "mx.victim.example" in refused.detail  # the MX names none of our hosts
    with pytest.raises(Forbidden):  # only an operator vouches without DNS proof
        await verify_domain(world.directory, world.settings, world.evil, "victim.example",
                            operator=True)

    world.table.serve(ZONE + f'victim.example. 300 IN TXT "{view.verification_txt}"')
    proven = await verify_domain(world.directory, world.settings, world.evil, "victim.example")
    assert (proven.verified, proven.method, proven.domain.verified_by) == (True, "txt", "txt")
    await world.send("someone@victim.example", "submission")
    await world.deliver()
    [got] = await world.attacker.wait_for(1)
    assert got.recipients == ["someone@victim.example"] and world.public_mx.received == []
    entries = await world.directory.audit.search(OP, action="domain.verify")
    assert [e.target for e in entries.items] == ["victim.example"]


async def test_the_dns_recheck_verifies_by_mx_records(world: World) -> None:
    mx = world.settings.mx_hosts[0].host
    world.table.serve(f"victim.example. 300 IN MX 10 {mx}.\n")
    await DnsRechecker(world.directory.directory, world.settings,
                       world.directory.spool).run_once()
    view = await world.directory.domains.get(world.evil, "victim.example")
    assert (view.verified, view.verified_by) == (True, "mx")


async def test_an_operator_added_domain_is_verified_at_once(directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    view = await directory.domains.create(OP, "acme.example", account="Acme")
    assert (view.verified, view.verified_by) == (True, "operator")


# -- hosting only with hosting -------------------------------------------------------------


async def test_the_hosting_host_is_refused_for_a_domain_without_hosting(
    settings: Settings, directory: Services
) -> None:
    zone = "mail.hosting.test. 300 IN A 192.0.2.80\n"
    with dns_server(zone) as nameserver:
        configured = settings.model_copy(update={
            "hosting_host": "mail.hosting.test", "dns_nameservers": [nameserver]})
        directory = Services(directory.db, configured)
        await directory.accounts.create(OP, "Acme")
        await directory.domains.create(OP, "acme.example", account="Acme")
        acme = await directory.accounts.actor_for("Acme")
        servers = directory.servers
        for host in ("mail.hosting.test", "MAIL.hosting.test.:2525", "192.0.2.80"):
            with pytest.raises(InvalidInput, match="has no hosting"):
                await servers.add(acme, "acme.example", host, preference=10)
        await servers.add(acme, "acme.example", "mx.acme.example", preference=10)
        with pytest.raises(InvalidInput, match="hosting host"):
            await servers.edit(acme, "acme.example", "mx.acme.example", host="192.0.2.80")
        await directory.domains.set_hosting(OP, "acme.example", True)
        added = await servers.add(acme, "acme.example", "192.0.2.80", preference=20)
        assert added.address == "192.0.2.80:25"


async def test_hosting_rows_of_a_domain_without_hosting_hold_its_mail(
    settings: Settings, directory: Services
) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.servers.auto_configure_hosting(OP, "acme.example")
    await directory.domains.set_hosting(OP, "acme.example", False)  # the row stays
    route = await Router(directory.db, settings).route("acme.example", "mx")
    assert not route.hops
    assert (route.temporary or "").startswith("4.3.5 hosting is off for acme.example")


# -- private addresses ---------------------------------------------------------------------


async def test_private_mail_servers_are_refused_unless_allowed(
    settings: Settings, directory: Services
) -> None:
    strict = settings.model_copy(update={"allow_private_mail_servers": False})
    strict_directory = Services(directory.db, strict)
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme")
    for host in ("127.0.0.1", "10.1.2.3", "192.168.0.5", "[fe80::1]", "169.254.169.254",
                 "0.0.0.0", "[::ffff:127.0.0.1]", "224.0.0.1", "100.64.0.1"):
        with pytest.raises(InvalidInput, match="not a public one"):
            await strict_directory.servers.add(OP, "acme.example", host, preference=10)
    assert await strict_directory.servers.add(OP, "acme.example", "93.184.216.34",
                                              preference=10) is not None
    await strict_directory.servers.add(OP, "acme.example", "mx.acme.example", preference=20)
    with pytest.raises(InvalidInput, match="loopback"):
        await strict_directory.servers.edit(OP, "acme.example", "mx.acme.example",
                                            host="127.0.0.2")
    allowed = await directory.servers.add(OP, "acme.example", "127.0.0.1:2600", preference=5)
    assert allowed.address == "127.0.0.1:2600"
    with pytest.raises(InvalidInput, match="own mail listeners"):  # our MX port, this node
        await directory.servers.add(OP, "acme.example", "127.0.0.1:2525", preference=6)

    with pytest.raises(ValueError, match="loopback"):
        await DnsTools(strict).lookup("acme.example", "MX", server="127.0.0.1:5353")
    with pytest.raises(ValueError, match="private"):
        await DnsTools(strict).lookup("acme.example", "MX", server="10.0.0.53")


async def test_the_relay_does_not_connect_to_a_private_address_of_a_host_name(
    settings: Settings, directory: Services
) -> None:
    zone = "inside.acme.example. 300 IN A 127.0.0.1\n"
    with dns_server(zone) as nameserver:
        async with sink_server() as sink:
            configured = mail_settings(settings, dns_nameservers=[nameserver],
                                       allow_private_mail_servers=False)
            directory = Services(directory.db, configured)
            await directory.accounts.create(OP, "Acme")
            await directory.domains.create(OP, "acme.example", account="Acme")
            await directory.servers.add(OP, "acme.example", f"inside.acme.example:{sink.port}",
                                        preference=10)
            spool = directory.queue.spool
            local = LocalDelivery(directory.db, open_store(configured, directory.db), spool)
            await spool.enqueue(sender="x@outside.example", data=BODY, origin="mx",
                                recipients=[NewRecipient("ann@acme.example")])
            await DeliveryWorker(directory.db, configured, spool, local).run_once()
            async with directory.db.session() as session:
                [row] = (await session.scalars(select(QueuedRecipient))).all()
            assert row.status == "deferred" and sink.connections == 0
            assert row.last_error.startswith("4.7.0 not connecting to inside.acme.example")
            assert "127.0.0.1 is a loopback address" in row.last_error

            # Allowed (a private network install): the same mail goes to the same sink.
            allowed = configured.model_copy(update={"allow_private_mail_servers": True})
            await Services(directory.db, allowed).servers.edit(  # makes the row due again
                OP, "acme.example", f"inside.acme.example:{sink.port}", host=sink.address)
            await DeliveryWorker(directory.db, allowed, spool, local).run_once()
            [got] = await sink.wait_for(1)
            assert got.recipients == ["ann@acme.example"]

        async with sink_server() as smarthost:  # the operator's own relay_host is exempt
            via = configured.model_copy(update={"relay_host": smarthost.address})
            await spool.enqueue(sender="ann@acme.example", data=BODY, origin="submission",
                                recipients=[NewRecipient("friend@far.example")])
            await DeliveryWorker(directory.db, via, spool, local).run_once()
            [relayed] = await smarthost.wait_for(1)
            assert relayed.recipients == ["friend@far.example"]


# -- the command line ----------------------------------------------------------------------


def test_the_cli_shows_and_checks_verification(cli: Cli, settings: Settings) -> None:
    cli("account", "add", "Acme")
    added = as_json(cli("domain", "add", "acme.example", "--account", "Acme", "--json"))
    assert (added["verified"], added["verified_by"]) == (True, "operator")

    async def claim(directory: Services) -> str:
        return (await reseller_claims_victim(directory)).verification_txt

    token = run_directory(settings, claim)
    shown = cli("domain", "show", "victim.example", "--account", "Evil").stdout
    assert "not verified" in shown and "goes to its public MX" in shown
    assert f'victim.example. 3600 IN TXT "{token}"' in " ".join(shown.split())
    note = cli("servers", "list", "victim.example", "-a", "Evil").stderr
    assert "victim.example is not verified" in " ".join(note.split())
    listed = {d["name"]: d["verified"] for d in as_json(cli("domain", "list", "--json"))}
    assert listed == {"acme.example": True, "victim.example": False}

    with dns_server(ZONE) as nameserver:
        env = {"MAILWARD_DNS_NAMESERVERS": nameserver}
        failed = cli("domain", "verify", "victim.example", "-a", "Evil", code=1, env=env)
        assert error_line(failed).startswith("error: not verified: no TXT record")
        refused = cli("domain", "verify", "victim.example", "-a", "Evil", "--operator",
                      code=1, env=env)
        assert "only an operator" in error_line(refused)
    with dns_server(ZONE + f'victim.example. 300 IN TXT "{token}"') as nameserver:
        env = {"MAILWARD_DNS_NAMESERVERS": nameserver}
        proven = as_json(cli("domain", "verify", "victim.example", "-a", "Evil", "--json",
                             env=env))
    assert (proven["verified"], proven["verified_by"]) == (True, "txt")


# -- the API -------------------------------------------------------------------------------


async def test_the_api_shows_and_marks_verification(
    client: httpx.AsyncClient, op: Headers, customers: Tenants, directory: Services
) -> None:
    await directory.resellers.create(OP, "Northwind")
    await directory.accounts.create(OP, "Evil", reseller="Northwind")
    await directory.accounts.create_user(OP, "sam@northwind.example", PASSWORD,
                                         reseller="Northwind")
    sam = await login(client, "sam@northwind.example", PASSWORD)
    body = {"name": "victim.example", "account": "Evil"}
    claimed = await ok(client.post(f"{API}/domains", json=body, headers=sam), 201)
    assert (claimed["verified"], claimed["verified_by"]) == (False, None)
    assert claimed["verification_txt"].startswith("mailward-verification=")
    hosted = await ok(client.get(f"{API}/domains/acme.example", headers=customers.alice))
    assert (hosted["verified"], hosted["verified_by"]) == (True, "operator")
    again = await ok(client.post(f"{API}/domains/acme.example/verify",
                                 headers=customers.alice))
    assert (again["verified"], again["method"], again["detail"]) == (
        True, "operator", "already verified")

    await error(client.post(f"{API}/domains/victim.example/verify", json={"operator": True},
                            headers=sam), 403, "only an operator")
    await error(client.post(f"{API}/domains/victim.example/verify", json={"operator": True},
                            headers=customers.alice), 404, "no domain")
    marked = await ok(client.post(f"{API}/domains/victim.example/verify",
                                  json={"operator": True}, headers=op))
    assert marked["verified"] and marked["domain"]["verified_by"] == "operator"
    assert marked["record"] == f'victim.example. 3600 IN TXT "{claimed["verification_txt"]}"'


# -- the panel -----------------------------------------------------------------------------


async def test_the_panel_says_why_and_an_operator_marks_it_verified(
    settings: Settings, directory: Services
) -> None:
    await directory.accounts.create_user(OP, "root", PASSWORD)
    claimed = await reseller_claims_victim(directory)
    page = "/panel/accounts/Evil/domains/victim.example"
    async with running_server(settings) as url, \
            httpx.AsyncClient(base_url=url, timeout=30) as one, \
            httpx.AsyncClient(base_url=url, timeout=30) as two:
        reseller, operator = Panel(one), Panel(two)
        await reseller.login("sam@northwind.example", PASSWORD)
        details = await reseller.get(page)
        assert "Not verified" in details and "goes to its public MX" in details
        assert f'victim.example. 3600 IN TXT &#34;{claimed.verification_txt}&#34;' in details \
            or f'victim.example. 3600 IN TXT "{claimed.verification_txt}"' in details
        assert "Mark verified (operator)" not in details
        servers = await reseller.get(f"{page}/servers")
        assert "is not verified yet" in servers
        refused = await reseller.post(f"{page}/verify", {"operator": "yes"}, status=403)
        assert any("only an operator" in m for m in messages(refused))

        await operator.login("root", PASSWORD)
        assert "Mark verified (operator)" in await operator.get(page)
        done = await operator.post(f"{page}/verify", {"operator": "yes"})
        assert any("victim.example is verified" in m for m in messages(done))
        assert "Verified (by an operator" in await reseller.get(page)
