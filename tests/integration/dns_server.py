"""A real DNS server on 127.0.0.1 (UDP, port 0) answering from a small zone table.

dnslib's ``ZoneResolver`` answers NXDOMAIN for a name that exists without the asked type
(it should be NODATA); this resolver tells the two apart, as real servers do, and follows
CNAMEs like an authoritative server: the alias, then the target's records of the asked
type when the target is in the table (NXDOMAIN when the target is missing under a zone
apex, i.e. an SOA owner of the table; the alias alone when it lies elsewhere).
``silent_udp_server`` never answers (timeouts). ``authoritative_pair`` serves two zones
on two loopback addresses at the same port, as a domain's two nameservers; the zones of a
running ``TableResolver`` can be swapped with ``serve`` (a changed zone, mid-test).

A name holding a CNAME and records of the asked type (a zone no real server should load)
is answered with those records, as lenient DNS hosts do, so the check can see them.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from dnslib import QTYPE, RCODE, RR, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

MAX_CHAIN = 8  # CNAMEs followed before giving up (a loop in the table)


class TableResolver(BaseResolver):
    """Answers from zone-file lines; names absent from every record are NXDOMAIN.

    ``rcode`` (e.g. ``"SERVFAIL"``, ``"REFUSED"``) makes every reply that failure instead.
    """

    def __init__(self, zone: str, rcode: str | None = None) -> None:
        self.serve(zone)
        self.rcode = None if rcode is None else getattr(RCODE, rcode)

    def serve(self, zone: str) -> None:
        """Answer from ``zone`` from now on."""
        self.records = RR.fromZone(zone)

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        if self.rcode is not None:
            reply.header.rcode = self.rcode
            return reply
        name, qtype = request.q.qname, QTYPE[request.q.qtype]
        for hop in range(MAX_CHAIN):
            named = [rr for rr in self.records if rr.rname == name]
            if not named:
                if hop == 0 or self._in_zone(name):
                    reply.header.rcode = RCODE.NXDOMAIN
                break  # a CNAME target outside our zones: the alias alone (NOERROR)
            alias = [rr for rr in named if QTYPE[rr.rtype] == "CNAME"]
            exact = any(QTYPE[rr.rtype] == qtype for rr in named)
            if alias and qtype != "CNAME" and not exact:
                reply.add_answer(alias[0])
                name = alias[0].rdata.label
                continue
            for rr in named:
                if QTYPE[rr.rtype] == qtype:
                    reply.add_answer(rr)
            break
        return reply

    def _in_zone(self, name: DNSLabel) -> bool:
        """Whether ``name`` lies under a zone apex of the table (an SOA owner)."""
        return any(QTYPE[rr.rtype] == "SOA" and name.matchSuffix(rr.rname)
                   for rr in self.records)


_QUIET = "-request,-reply,-truncated,-error"


@contextlib.contextmanager
def _serving(resolver: BaseResolver, address: str, port: int) -> Iterator[int]:
    """Run a UDP DNS server for ``resolver`` on ``address:port``; yield the port bound."""
    server = DNSServer(resolver, address=address, port=port,
                       logger=DNSLogger(log=_QUIET, prefix=False))
    server.start_thread()
    try:
        yield server.server.server_address[1]
    finally:
        server.stop()
        server.server.server_close()


@contextlib.contextmanager
def dns_server(zone: str, *, rcode: str | None = None) -> Iterator[str]:
    """Serve ``zone``; yield ``"127.0.0.1:PORT"`` for ``dns_nameservers``."""
    with _serving(TableResolver(zone, rcode), "127.0.0.1", 0) as port:
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def table_server(zone: str) -> Iterator[tuple[str, TableResolver]]:
    """Like ``dns_server``, also yielding the resolver (to ``serve`` a changed zone)."""
    resolver = TableResolver(zone)
    with _serving(resolver, "127.0.0.1", 0) as port:
        yield f"127.0.0.1:{port}", resolver


@contextlib.contextmanager
def authoritative_pair(
    first: str, second: str, addresses: tuple[str, str] = ("127.0.0.2", "127.0.0.3")
) -> Iterator[tuple[int, TableResolver, TableResolver]]:
    """Two servers on two loopback addresses, one port: ``(port, resolver 1, resolver 2)``.

    The first binds a free port; the second takes the same port on its address (a new
    port is tried when that one is taken there).
    """
    one, two = TableResolver(first), TableResolver(second)
    with contextlib.ExitStack() as stack:
        for _attempt in range(20):
            attempt = contextlib.ExitStack()
            port = attempt.enter_context(_serving(one, addresses[0], 0))
            try:
                attempt.enter_context(_serving(two, addresses[1], port))
            except OSError:  # the port is taken on the second address: try another
                attempt.close()
                continue
            stack.enter_context(attempt)
            break
        else:
            raise OSError(f"no port free on both {addresses[0]} and {addresses[1]}")
        yield port, one, two


@contextlib.contextmanager
def silent_udp_server() -> Iterator[str]:
    """A UDP socket on loopback that receives queries and never answers: ``"127.0.0.1:PORT"``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{silent.getsockname()[1]}"
