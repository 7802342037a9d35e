"""The test DNS of the domain-check tests: acme.example delegated to two authoritative
dnslib servers (ns1 on 127.0.0.2, ns2 on 127.0.0.3, one port) plus a "recursive" one on
127.0.0.1 that the settings name as resolver. Tests change what each one serves."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from cli_helpers import WIDE
from dns_server import TableResolver, authoritative_pair, table_server

from mailward.config import Settings

OUR_MX = """
acme.example. 300 IN MX 10 mailfilter1.example.net.
acme.example. 300 IN MX 20 mailfilter2.example.net.
"""
DELEGATION = """
acme.example.     3600 IN NS ns1.acme.example.
acme.example.     3600 IN NS ns2.acme.example.
ns1.acme.example. 3600 IN A 127.0.0.2
ns2.acme.example. 3600 IN A 127.0.0.3
"""


@dataclass
class World:
    """``recursive`` answers for the resolvers, ``ns1``/``ns2`` authoritatively."""

    resolver: str  # "127.0.0.1:PORT"
    port: int  # the authoritative servers' port
    recursive: TableResolver
    ns1: TableResolver
    ns2: TableResolver

    def publish(self, zone: str, *servers: TableResolver) -> None:
        """``servers`` (default: all three) answer from ``zone`` plus the delegation."""
        for server in servers or (self.recursive, self.ns1, self.ns2):
            server.serve(zone + DELEGATION)

    def settings(self, settings: Settings, **more: object) -> Settings:
        """``settings`` asking these servers, with a short DNS timeout."""
        return settings.model_copy(update={
            "dns_nameservers": [self.resolver], "dns_authoritative_port": self.port,
            "dns_timeout_seconds": 1.0, **more})

    def env(self, **more: str) -> dict[str, str]:
        """Environment for the CLI: these servers, a short DNS timeout."""
        return {"MAILWARD_DNS_NAMESERVERS": self.resolver,
                "MAILWARD_DNS_AUTHORITATIVE_PORT": str(self.port),
                "MAILWARD_DNS_TIMEOUT_SECONDS": "1", **WIDE, **more}


@contextlib.contextmanager
def dns_world(zone: str = OUR_MX) -> Iterator[World]:
    """Every server answering from ``zone`` plus the delegation."""
    zone += DELEGATION
    with authoritative_pair(zone, zone) as (port, ns1, ns2), \
            table_server(zone) as (resolver, recursive):
        yield World(resolver, port, recursive, ns1, ns2)
