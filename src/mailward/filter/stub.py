"""A lean DNS stub for the filter's frequent lookups (TXT for SPF, DKIM and DMARC; A and PTR
for the blocklists and reverse DNS): one UDP question to the resolver's first nameserver,
the reply read only as far as the filter needs it (the rcode, the records of the asked type
for the asked name, a negative answer's SOA TTL).

dnspython's resolver spends about 250 µs of CPU on a question (objects for every name,
rdata, section and answer); this spends a small fraction of that. Whatever the stub cannot
read with certainty returns None, and the caller asks dnspython as before, which retries,
falls back to TCP and follows aliases: a name outside plain ``[A-Za-z0-9_-]`` labels, a
resolver configured with search domains or no plain nameserver, a truncated reply, a CNAME
or DNAME or any other record in the answer, a server error, a timeout, a malformed or
mismatched reply (after a timeout the stub stands aside for ``QUIET_SECONDS``, so a dead
first nameserver costs one extra wait, not one per question). Queries are as dnspython's
resolver sends them by default (RD set, no EDNS), from a fresh socket (a random source
port) each time.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass

import dns.nameserver
import dns.resolver

__all__ = ["PTR", "TXT", "A", "Reply", "Stub", "StubCache"]

A, SOA, PTR, TXT = 1, 6, 12, 16
NOERROR, NXDOMAIN = 0, 3
QUIET_SECONDS = 30.0  # a nameserver that did not answer the stub: dnspython's this long
_HEADER = struct.Struct("!HHHHHH")
_RECORD = struct.Struct("!HHIH")  # type, class, TTL, rdata length
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")
_LABEL_BYTES = re.compile(rb"[A-Za-z0-9_-]{1,63}")


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply the stub read: NOERROR or NXDOMAIN, the answer's values in wire order
    without duplicates (TXT: its strings; A: the dotted address; PTR: the target name,
    absolute, as dnspython writes it), and the TTL to keep it for (the answer's lowest; for
    a negative answer min(SOA TTL, SOA minimum), -1 when the server sent no SOA)."""

    rcode: int
    values: tuple[object, ...]
    ttl: int


class Stub:
    """Questions to ``resolver``'s first nameserver (``None`` from ``ask``: ask dnspython)."""

    def __init__(self, resolver: dns.resolver.BaseResolver) -> None:
        self.resolver = resolver
        self._quiet_until = 0.0  # after a timeout or socket error, dnspython alone a while

    def _failed(self) -> None:
        self._quiet_until = time.monotonic() + QUIET_SECONDS

    @property
    def server(self) -> tuple[str, int] | None:
        """The nameserver asked (read from the resolver each time: it may be changed)."""
        resolver = self.resolver
        if self._quiet_until and time.monotonic() < self._quiet_until:
            return None
        servers = resolver.nameservers
        if servers and not resolver.use_search_by_default and resolver.edns < 0 \
                and resolver.flags is None:
            first = servers[0]
            if isinstance(first, dns.nameserver.Do53Nameserver):
                return first.address, first.port
        return None

    def ask(self, name: str, qtype: int) -> Reply | None:
        """The reply to one question (blocking, within the resolver's per-try timeout)."""
        question, server = _question(name, qtype), self.server
        if question is None or server is None:
            return None
        qid, query = question
        try:
            with socket.socket(_family(server[0]), socket.SOCK_DGRAM) as sock:
                sock.settimeout(self.resolver.timeout)
                sock.connect(server)
                sock.send(query)
                data = sock.recv(65535)
        except OSError:  # socket.timeout included: dnspython asks (and retries) instead
            self._failed()
            return None
        return read(data, qid, query[12:], qtype)

    async def ask_async(self, name: str, qtype: int) -> Reply | None:
        """``ask`` on the running event loop."""
        question, server = _question(name, qtype), self.server
        if question is None or server is None:
            return None
        qid, query = question
        loop = asyncio.get_running_loop()
        try:
            with socket.socket(_family(server[0]), socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.connect(server)
                sock.send(query)
                async with asyncio.timeout(self.resolver.timeout):
                    data = await loop.sock_recv(sock, 65535)
        except (OSError, TimeoutError):
            self._failed()
            return None
        return read(data, qid, query[12:], qtype)


class StubCache:
    """A stub's replies kept for their TTL (negative ones only with an SOA), at most
    ``size`` of them (the oldest go first); safe to share between threads."""

    def __init__(self, stub: Stub, size: int = 10_000) -> None:
        self.stub = stub
        self.size = size
        self._kept: dict[tuple[str, int], tuple[float, Reply]] = {}
        self._lock = threading.Lock()

    def ask(self, name: str, qtype: int) -> Reply | None:
        key = (name.lower().rstrip("."), qtype)
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        reply = self.stub.ask(name, qtype)
        if reply is not None and reply.ttl > 0:
            with self._lock:
                self._kept[key] = (now + reply.ttl, reply)
                while len(self._kept) > self.size:
                    del self._kept[next(iter(self._kept))]
        return reply


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _question(name: str, qtype: int) -> tuple[int, bytes] | None:
    """A query's id and wire form, or None for a name the stub leaves to dnspython."""
    labels = name[:-1].split(".") if name.endswith(".") else name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    qid = int.from_bytes(os.urandom(2), "big")
    wire = b"".join(bytes((len(label),)) + label.encode("ascii") for label in labels)
    return qid, _HEADER.pack(qid, 0x0100, 1, 0, 0, 0) + wire + b"\0" + struct.pack(
        "!HH", qtype, 1)


def read(data: bytes, qid: int, question: bytes, qtype: int) -> Reply | None:
    """The reply in ``data`` to the question ``question`` (its wire form: name, type,
    class) with id ``qid``; None when it is not one the stub reads with certainty."""
    try:
        return _read(data, qid, question, qtype)
    except (IndexError, struct.error, UnicodeDecodeError):  # cut short or garbled
        return None


def _read(data: bytes, qid: int, question: bytes, qtype: int) -> Reply | None:
    rid, flags, qdcount, ancount, nscount, _ = _HEADER.unpack_from(data)
    # a reply (QR), a standard query's, not truncated, one question, NOERROR or NXDOMAIN
    if rid != qid or flags & 0xFA00 != 0x8000 or qdcount != 1:
        return None
    rcode = flags & 0x000F
    if rcode not in (NOERROR, NXDOMAIN) or (rcode == NXDOMAIN and ancount):
        return None
    pos = 12 + len(question)
    if data[12:pos].lower() != question.lower():
        return None
    qname = (_name(question, 0)[0] or b"").lower()
    values: dict[object, None] = {}
    ttl = -1
    for _ in range(ancount):
        owner, pos = _name(data, pos)
        rtype, rclass, rttl, size = _RECORD.unpack_from(data, pos)
        pos += 10
        if owner is None or owner.lower() != qname or rtype != qtype or rclass != 1 \
                or pos + size > len(data):
            return None  # an alias or anything else: dnspython follows it
        value = _value(data, pos, size, qtype)
        if value is None:
            return None
        values[value] = None
        ttl = rttl if ttl < 0 else min(ttl, rttl)
        pos += size
    if values:
        return Reply(rcode, tuple(values), ttl)
    for _ in range(nscount):  # a negative answer keeps for its SOA's TTL (RFC 2308)
        _owner, pos = _name(data, pos)
        rtype, _rclass, rttl, size = _RECORD.unpack_from(data, pos)
        pos += 10
        if rtype == SOA:
            mname, at = _name(data, pos)
            rname, at = _name(data, at)
            if mname is None or rname is None:
                return None
            minimum = struct.unpack_from("!I", data, at + 16)[0]  # after 4 other numbers
            return Reply(rcode, (), min(rttl, minimum))
        pos += size
    return Reply(rcode, (), -1)


def _value(data: bytes, pos: int, size: int, qtype: int) -> object | None:
    end = pos + size
    if qtype == TXT:
        strings = []
        while pos < end:
            length = data[pos]
            strings.append(data[pos + 1:pos + 1 + length])
            pos += 1 + length
        return tuple(strings) if strings and pos == end else None
    if qtype == A:
        return ".".join(map(str, data[pos:end])) if size == 4 else None
    if qtype == PTR:
        target, after = _name(data, pos)
        if target is None or after != end:
            return None
        labels = target.split(b".")[:-1]
        if not all(_LABEL_BYTES.fullmatch(label) for label in labels):
            return None
        return target.decode("ascii")
    return None


def _name(data: bytes, pos: int) -> tuple[bytes | None, int]:
    """The (possibly compressed) name at ``pos`` as dotted text with the final dot, and
    where the record goes on; None for a name that is not well formed."""
    labels: list[bytes] = []
    after = -1
    for _ in range(128):  # labels and pointers together: ends any pointer loop
        length = data[pos]
        if length >= 0xC0:
            if after < 0:
                after = pos + 2
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            continue
        if length & 0xC0:
            return None, 0
        if length == 0:
            return b".".join(labels) + b".", (pos + 1 if after < 0 else after)
        labels.append(data[pos + 1:pos + 1 + length])
        pos += 1 + length
    return None, 0
