"""What the MX spam filter flow tests share (test_spam_filter_flow.py, test_parse_once.py):
customer domain filtered.example (ann listed Filter, bob Do Not Filter) delivering to a
loopback sink, DNS from a loopback server, and our mail roles with the spam filter on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dns_server import dns_server
from mail_helpers import Sink, mail_roles, mail_settings, port_of, sink_server

from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList
from mailward.directory import Actor

OP = Actor.operator()


@asynccontextmanager
async def filtered_world(settings: Settings, directory: Services,
                         zone: str) -> AsyncIterator[tuple[int, Sink]]:
    """The mx port and the customer's sink, with DNS answering from ``zone``."""
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "filtered.example", account="Acme")
    await directory.bulk.add_lines(OP, ["ann@filtered.example"], AddressList.FILTER)
    await directory.bulk.add_lines(OP, ["bob@filtered.example"], AddressList.NO_FILTER)
    with dns_server(zone) as nameserver:
        async with sink_server() as customer:
            await directory.servers.add(OP, "filtered.example", customer.address,
                                        preference=10)
            configured = mail_settings(settings, spam_filter=True,
                                       dns_nameservers=[nameserver], dns_timeout_seconds=1)
            async with mail_roles(configured) as urls:
                yield port_of(urls["mx"]), customer
