"""The filter's reputation checks against a loopback DNS server: DNSBL listed / unlisted /
error code / timeout, RHSBL on HELO, envelope and From domains, URIBL on link domains,
HELO and PTR sanity, and the TTL cache."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dns_server import dns_server, silent_udp_server

from mailward.config import Settings, load_settings
from mailward.filter.pipeline import FilterInput
from mailward.filter.reputation import ReputationCheck

ZONE = """
10.2.0.192.bl.test.           300 IN A   127.0.0.2
11.2.0.192.bl.test.           300 IN A   127.255.255.254
10.2.0.192.in-addr.arpa.      300 IN PTR mail.sender.example.
spammer.example.dbl.test.     300 IN A   127.0.1.2
phish.example.uri.test.       300 IN A   127.0.0.2
"""


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    with dns_server(ZONE) as nameserver:
        yield load_settings(dns_nameservers=[nameserver], dns_timeout_seconds=1,
                            filter_dnsbl="bl.test:6", filter_rhsbl="dbl.test:4",
                            filter_uribl="uri.test:5")


def mail(sender: str = "anna@sender.example", body: str = "See you at ten.") -> bytes:
    return (f"From: {sender}\r\nTo: bob@acme.example\r\nSubject: hi\r\n\r\n{body}\r\n"
            ).encode()


def message(peer: str = "192.0.2.10", helo: str = "mail.sender.example",
            sender: str = "anna@sender.example", data: bytes | None = None) -> FilterInput:
    return FilterInput(sender, ("bob@acme.example",), data or mail(sender), peer, helo)


async def scores(check: ReputationCheck, item: FilterInput) -> dict[str, float]:
    return {f.check: f.score for f in await check(item)}


async def test_dnsbl_and_ptr(settings: Settings) -> None:
    check = ReputationCheck(settings)
    assert await scores(check, message()) == {"dnsbl:bl.test": 6.0}
    # listed with an error code (127.255.255.x): not a listing; no PTR either
    assert await scores(check, message(peer="192.0.2.11")) == {"ptr-missing": 1.0}
    assert await scores(check, message(peer="127.0.0.1")) == {}  # our own relays
    assert await scores(check, message(peer="10.1.2.3")) == {}


async def test_domain_and_link_blocklists(settings: Settings) -> None:
    check = ReputationCheck(settings)
    found = await check(message(peer="192.0.2.11", sender="x@news.spammer.example"))
    assert [(f.check, f.reason) for f in found if f.check.startswith("rhsbl")] == [
        ("rhsbl:dbl.test", "spammer.example is listed on dbl.test")]
    from_only = message(peer="127.0.0.1", data=mail("billing@spammer.example"))
    assert await scores(check, from_only) == {"rhsbl:dbl.test": 4.0}
    links = mail(body="Log in at https://secure.phish.example/login or http://ok.example/")
    assert await scores(check, message(peer="127.0.0.1", data=links)) == {"uribl:uri.test": 5.0}


async def test_helo_sanity(settings: Settings) -> None:
    check = ReputationCheck(settings)
    forged = await scores(check, message(peer="127.0.0.1", helo=settings.mx_hosts[0].host))
    assert forged == {"helo-forged": 4.0}
    assert await scores(check, message(peer="127.0.0.1", helo="localhost")) == {
        "helo-not-fqdn": 1.0}


async def test_answers_are_cached_and_failures_cost_nothing(settings: Settings) -> None:
    check = ReputationCheck(settings)
    await check(message())
    cached = dict(check._cache)
    assert ("10.2.0.192.bl.test", "A") in cached
    with silent_udp_server() as nowhere:
        quiet = load_settings(dns_nameservers=[nowhere], dns_timeout_seconds=0.3,
                              filter_dnsbl="bl.test:6", filter_rhsbl="dbl.test:4")
        assert await scores(ReputationCheck(quiet), message()) == {}
    # the cached answer is used without asking DNS again
    check.resolver.nameservers = []
    assert await scores(check, message()) == {"dnsbl:bl.test": 6.0}
