"""The filter's DNS answer cache: answers are kept for their TTL, and only when asked for."""

from __future__ import annotations

import dns.resolver
from dns_server import table_server

from mailward.net.resolver import answer_cache, make_sync_resolver


def _txt(resolver: dns.resolver.Resolver, name: str) -> list[bytes]:
    return [b"".join(r.strings) for r in resolver.resolve(name, "TXT")]


def test_cached_answers_last_their_ttl_uncached_ones_do_not() -> None:
    zone = ("example.org. 300 IN TXT \"v=spf1 -all\"\n"
            "short.example.org. 0 IN TXT \"first\"\n")
    with table_server(zone) as (address, table):
        cached = make_sync_resolver([address], 2.0, cache=answer_cache())
        plain = make_sync_resolver([address], 2.0)
        assert _txt(cached, "example.org") == [b"v=spf1 -all"]
        assert _txt(cached, "short.example.org") == [b"first"]
        table.serve("example.org. 300 IN TXT \"v=spf1 +all\"\n"
                    "short.example.org. 0 IN TXT \"second\"\n")
        assert _txt(cached, "example.org") == [b"v=spf1 -all"]  # within its TTL
        assert _txt(cached, "short.example.org") == [b"second"]  # TTL 0: asked again
        assert _txt(plain, "example.org") == [b"v=spf1 +all"]  # no cache: always asked
