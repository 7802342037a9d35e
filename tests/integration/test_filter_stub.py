"""The filter's lean DNS stub (``filter.stub``) reads replies as dnspython does, over a real
DNS server on loopback, and leaves to dnspython (None) what it does not read with
certainty: aliases, server errors, silence, names outside plain labels."""

from __future__ import annotations

import asyncio

import dns.resolver
import pytest
from dns_server import dns_server, silent_udp_server

from mailward.filter.stub import PTR, TXT, A, Stub, StubCache
from mailward.net.resolver import make_resolver, make_sync_resolver

ZONE = """
example.test. 300 IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 120
example.test. 300 IN TXT "v=spf1 -all"
example.test. 300 IN TXT "v=spf1 -all"
long.example.test. 60 IN TXT "v=DKIM1; k=rsa; " "p=MIGfMA0GCSqGSIb3DQEBAQUAA4GN"
two.example.test. 300 IN TXT "one"
two.example.test. 100 IN TXT "two"
host.example.test. 300 IN A 192.0.2.7
host.example.test. 300 IN A 192.0.2.8
alias.example.test. 300 IN CNAME host.example.test.
7.2.0.192.in-addr.arpa. 300 IN PTR Host.Example.test.
"""
QTYPES = {TXT: "TXT", A: "A", PTR: "PTR"}


def dnspython(resolver: dns.resolver.Resolver, name: str, qtype: int) -> tuple[object, ...]:
    try:
        answer = resolver.resolve(name, QTYPES[qtype])
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return ()
    return tuple(r.strings if qtype == TXT else r.to_text() for r in answer)


@pytest.mark.parametrize(("name", "qtype"), [
    ("example.test", TXT), ("long.example.test.", TXT), ("two.example.test", TXT),
    ("host.example.test", A), ("HOST.example.test", A), ("7.2.0.192.in-addr.arpa.", PTR),
    ("host.example.test", TXT), ("missing.example.test", TXT), ("nowhere.invalid", A)])
def test_replies_read_as_dnspython_reads_them(name: str, qtype: int) -> None:
    with dns_server(ZONE) as server:
        resolver = make_sync_resolver([server], 2.0)
        reply = Stub(resolver).ask(name, qtype)
        assert reply is not None
        assert reply.values == dnspython(resolver, name, qtype)
    if name == "two.example.test":
        assert reply.ttl == 100  # the answer's lowest TTL
    if name == "missing.example.test":
        assert (reply.rcode, reply.ttl) == (3, -1)  # NXDOMAIN; no SOA sent: not kept


def test_what_it_cannot_read_is_left_to_dnspython() -> None:
    with dns_server(ZONE) as server:
        stub = Stub(make_sync_resolver([server], 2.0))
        assert stub.ask("alias.example.test", A) is None  # a CNAME: dnspython follows it
        assert stub.ask("a name.example.test", TXT) is None  # not a plain label
        assert stub.ask("a..b.example.test", TXT) is None
        assert stub.ask("x" * 64 + ".example.test", TXT) is None  # label over 63
    with dns_server(ZONE, rcode="SERVFAIL") as server:
        assert Stub(make_sync_resolver([server], 2.0)).ask("example.test", TXT) is None
    with silent_udp_server() as silent:
        assert Stub(make_sync_resolver([silent], 0.2)).ask("example.test", TXT) is None


def test_async_questions_and_the_cache() -> None:
    with dns_server(ZONE) as server:
        stub = Stub(make_resolver([server], 2.0))

        async def ask() -> tuple[object, ...]:
            reply = await stub.ask_async("7.2.0.192.in-addr.arpa.", PTR)
            assert reply is not None
            return reply.values

        assert asyncio.run(ask()) == ("Host.Example.test.",)
        resolver = make_sync_resolver([server], 2.0)
        cache = StubCache(Stub(resolver))
        first = cache.ask("Example.test.", TXT)
        assert first is not None and first.values == ((b"v=spf1 -all",),)  # duplicates: one
    resolver.nameservers = []  # the server is gone: the kept reply still answers
    assert cache.ask("example.test", TXT) is first
    assert cache.ask("two.example.test", TXT) is None  # never asked: nothing kept
