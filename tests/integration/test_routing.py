"""Routing decisions against the real database and a real DNS server on loopback."""

from __future__ import annotations

import socket

from dns_server import dns_server
from loopback import own_loopback
from mail_helpers import mail_settings, sink_server

from mailward.app import Services
from mailward.config import Settings
from mailward.directory import Actor
from mailward.queue.local import LocalDelivery
from mailward.queue.spool import NewRecipient
from mailward.queue.worker import DeliveryWorker
from mailward.routing.routes import Hop, Router
from mailward.store import open_store

OP = Actor.operator()
ZONE = """
multi.example.     300 IN MX 20 backup.multi.example.
multi.example.     300 IN MX 10 mx-a.multi.example.
multi.example.     300 IN MX 10 mx-b.multi.example.
backup.multi.example. 300 IN A 192.0.2.20
mx-a.multi.example.   300 IN A 192.0.2.10
mx-b.multi.example.   300 IN A 192.0.2.11
mx-b.multi.example.   300 IN AAAA 2001:db8::11
nullmx.example.    300 IN MX 0 .
plain.example.     300 IN A 192.0.2.7
plain.example.     300 IN TXT "v=spf1 -all"
nomail.example.    300 IN TXT "nothing here"
"""


async def test_foreign_domains_follow_their_mx_records(settings: Settings,
                                                       directory: Services) -> None:
    with dns_server(ZONE) as nameserver:
        router = Router(directory.db, settings.model_copy(update={
            "dns_nameservers": [nameserver]}))
        seen_first = set()
        for _ in range(20):
            route = await router.route("multi.example")
            names = [h.name for h in route.hops]
            assert names[-1] == "backup.multi.example" and len(names) == 4
            assert route.hops[-1] == Hop("192.0.2.20", 25, name="backup.multi.example")
            seen_first.add(route.hops[0].name)
        # Equal preferences share the load in random order (RFC 5321 §5.1).
        assert seen_first == {"mx-a.multi.example", "mx-b.multi.example"}
        null = await router.route("nullmx.example")
        assert not null.hops and (null.permanent or "").startswith("5.1.10")
        implicit = await router.route("plain.example")
        assert implicit.hops == (Hop("192.0.2.7", 25, name="plain.example"),)
        missing = await router.route("missing.example")
        assert (missing.permanent or "").startswith("5.1.2")
        nomail = await router.route("nomail.example")
        assert (nomail.permanent or "").startswith("5.1.2")


async def test_an_unreachable_resolver_defers_rather_than_bounces(
    settings: Settings, directory: Services
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives queries, never answers
        port = silent.getsockname()[1]
        router = Router(directory.db, settings.model_copy(update={
            "dns_nameservers": [f"127.0.0.1:{port}"]}))
        router.resolver.lifetime = 1.0
        route = await router.route("multi.example")
    assert not route.hops and (route.temporary or "").startswith("4.4.3")


async def test_our_domains_follow_their_mail_server_settings(settings: Settings,
                                                             directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    router = Router(directory.db, settings)
    held = await router.route("acme.example")
    assert not held.hops and (held.temporary or "").startswith("4.3.5")
    await directory.servers.add(OP, "acme.example", "backup.acme.example:2525", preference=20)
    await directory.servers.add(OP, "acme.example", "192.0.2.1", preference=10)
    route = await router.route("acme.example")
    assert route.hops == (Hop("192.0.2.1", 25), Hop("backup.acme.example", 2525))
    await directory.servers.auto_configure_hosting(OP, "acme.example")
    hosted = await router.route("acme.example")
    assert hosted.hops == (Hop(settings.hosting_host, 25, local=True),)


async def test_mail_leaves_for_the_recipient_domains_mx(settings: Settings,
                                                        directory: Services) -> None:
    """No smarthost: the MX record is looked up and its address (port 25) is used."""
    far_mx = own_loopback()  # port 25 is fixed: an address no other test process uses
    zone = ("far.example. 300 IN MX 10 mx.far.example.\n"
            f"mx.far.example. 300 IN A {far_mx}\n")
    with dns_server(zone) as nameserver:
        async with sink_server(host=far_mx, port=25) as remote:
            configured = mail_settings(settings, dns_nameservers=[nameserver])
            directory = Services(directory.db, configured)
            spool = directory.queue.spool
            worker = DeliveryWorker(directory.db, configured, spool,
                                    LocalDelivery(directory.db,
                                                  open_store(configured, directory.db), spool))
            await spool.enqueue(sender="ann@outside.example",
                                recipients=[NewRecipient("friend@far.example")],
                                data=b"Subject: far away\r\n\r\nhi\r\n", origin="submission")
            await worker.run_once()
            [got] = await remote.wait_for(1)
    assert got.recipients == ["friend@far.example"]
