"""A real DNS server on 127.0.0.1 (UDP, port 0) answering from a small zone table.

dnslib's ``ZoneResolver`` answers NXDOMAIN for a name that exists without the asked type
(it should be NODATA); this resolver tells the two apart, as real servers do, and follows
CNAMEs like an authoritative server: the alias, then the target's records of the asked
type when the target is in the table (NXDOMAIN when the target is missing under a zone
apex, i.e. an SOA owner of the table; the alias alone when it lies elsewhere).
``silent_udp_server`` never answers (timeouts).
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
        self.records = RR.fromZone(zone)
        self.rcode = None if rcode is None else getattr(RCODE, rcode)

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
            if alias and qtype != "CNAME":
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


@contextlib.contextmanager
def dns_server(zone: str, *, rcode: str | None = None) -> Iterator[str]:
    """Serve ``zone``; yield ``"127.0.0.1:PORT"`` for ``dns_nameservers``."""
    server = DNSServer(TableResolver(zone, rcode), address="127.0.0.1", port=0,
                       logger=DNSLogger(log="-request,-reply,-truncated,-error", prefix=False))
    server.start_thread()
    try:
        yield f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()
        server.server.server_close()


@contextlib.contextmanager
def silent_udp_server() -> Iterator[str]:
    """A UDP socket on loopback that receives queries and never answers: ``"127.0.0.1:PORT"``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{silent.getsockname()[1]}"
