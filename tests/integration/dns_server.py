"""A real DNS server on 127.0.0.1 (UDP, port 0) answering from a small zone table.

dnslib's ``ZoneResolver`` answers NXDOMAIN for a name that exists without the asked type
(it should be NODATA); this resolver tells the two apart, as real servers do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class TableResolver(BaseResolver):
    """Answers from zone-file lines; names absent from every record are NXDOMAIN."""

    def __init__(self, zone: str) -> None:
        self.records = RR.fromZone(zone)

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        qname, qtype = request.q.qname, QTYPE[request.q.qtype]
        named = [rr for rr in self.records if rr.rname == qname]
        if not named:
            reply.header.rcode = RCODE.NXDOMAIN
        for rr in named:
            if QTYPE[rr.rtype] == qtype:
                reply.add_answer(rr)
        return reply


@contextlib.contextmanager
def dns_server(zone: str) -> Iterator[str]:
    """Serve ``zone``; yield ``"127.0.0.1:PORT"`` for ``dns_nameservers``."""
    server = DNSServer(TableResolver(zone), address="127.0.0.1", port=0,
                       logger=DNSLogger(log="-request,-reply,-truncated,-error", prefix=False))
    server.start_thread()
    try:
        yield f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()
        server.server.server_close()
