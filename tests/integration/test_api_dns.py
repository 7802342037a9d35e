"""The JSON API over a real socket: DNS lookups and the records to publish, both backends."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api_server import API, Headers, Tenants, error, ok
from dns_server import dns_server

from mailward.config import Settings

ZONE = """
acme.example.      300 IN MX 20 mailfilter2.example.net.
acme.example.      300 IN MX 10 mailfilter1.example.net.
www.acme.example.  300 IN A 192.0.2.10
"""
OTHER_ZONE = "acme.example. 60 IN MX 5 inbound.elsewhere.example.\n"


@pytest.fixture
def nameserver() -> Iterator[str]:
    with dns_server(ZONE) as address:
        yield address


@pytest.fixture
def settings(settings: Settings, nameserver: str) -> Settings:
    """The test settings, resolving through the loopback DNS server."""
    return settings.model_copy(update={"dns_nameservers": [nameserver]})


def mx(priority: int, host: str, ttl: int = 300) -> dict:
    return {"name": "acme.example.", "ttl": ttl, "rdclass": "IN", "rdtype": "MX",
            "priority": priority, "answer": host}


async def test_lookups(client: httpx.AsyncClient, customers: Tenants, op: Headers) -> None:
    for who in (customers.alice, customers.bob, op):  # any authenticated user
        answer = await ok(client.get(f"{API}/dns/MX/acme.example", headers=who))
        assert answer == {"name": "acme.example.", "rdtype": "MX", "outcome": "answer",
                          "records": [mx(10, "mailfilter1.example.net."),
                                      mx(20, "mailfilter2.example.net.")],
                          "server": None, "detail": ""}
    alice = customers.alice
    address = await ok(client.get(f"{API}/dns/a/www.acme.example.", headers=alice))
    assert [r["answer"] for r in address["records"]] == ["192.0.2.10"]

    missing = await ok(client.get(f"{API}/dns/MX/ghost.example", headers=alice))
    assert (missing["outcome"], missing["records"]) == ("nxdomain", [])
    assert "ghost.example. does not exist" in missing["detail"]
    empty = await ok(client.get(f"{API}/dns/MX/www.acme.example", headers=alice))
    assert (empty["outcome"], empty["records"]) == ("no-answer", [])

    with dns_server(OTHER_ZONE) as other:
        direct = await ok(client.get(f"{API}/dns/MX/acme.example", params={"server": other},
                                     headers=alice))
        assert (direct["server"], direct["records"]) == (
            other, [mx(5, "inbound.elsewhere.example.", ttl=60)])

    response = await client.get(f"{API}/dns/MX/acme.example")
    assert response.status_code == 401


async def test_bad_lookups_are_400(client: httpx.AsyncClient, customers: Tenants) -> None:
    alice = customers.alice
    await error(client.get(f"{API}/dns/SPF/acme.example", headers=alice), 400,
                "unsupported record type 'SPF'", "MX, A, AAAA, CNAME, TXT, NS, SOA")
    await error(client.get(f"{API}/dns/SRV/_imaps._tcp.acme.example", headers=alice), 400,
                "unsupported record type")
    await error(client.get(f"{API}/dns/MX/bad..name", headers=alice), 400, "bad..name")
    await error(client.get(f"{API}/dns/MX/acme.example", params={"server": "ns.example"},
                           headers=alice), 400, "not a nameserver IP address")


async def test_records_to_publish(client: httpx.AsyncClient, customers: Tenants,
                                  op: Headers) -> None:
    alice, bob = customers.alice, customers.bob
    dkim = await ok(client.get(f"{API}/domains/acme.example/dkim", headers=alice))
    data = await ok(client.get(f"{API}/domains/acme.example/dns-records", headers=alice))
    assert set(data) == {"domain", "hosted", "records", "zone", "registrar"}
    assert (data["domain"], data["hosted"]) == ("acme.example", True)
    assert data["records"][:2] == [
        {"name": "acme.example.", "ttl": 3600, "rdtype": "MX", "priority": p, "value": host,
         "purpose": data["records"][0]["purpose"]}
        for p, host in ((10, "mailfilter1.example.net."), (20, "mailfilter2.example.net."))]
    assert {"name": "mail.acme.example.", "rdtype": "CNAME", "value": "mail.example.net."} in [
        {k: r[k] for k in ("name", "rdtype", "value")} for r in data["records"]]
    assert {"host": f"{dkim['selector']}._domainkey", "type": "TXT", "priority": "",
            "value": dkim["value"], "ttl": "3600"} in data["registrar"]
    assert data["zone"][0].startswith("; ") and "mailfilter1.example.net." in data["zone"][1]

    await error(client.get(f"{API}/domains/acme.example/dns-records", headers=bob), 404,
                "no domain acme.example")
    await error(client.get(f"{API}/domains/nowhere.example/dns-records", headers=op), 404)
    theirs = await ok(client.get(f"{API}/domains/globex.example/dns-records", headers=op))
    assert theirs["domain"] == "globex.example"


async def test_openapi_lists_the_dns_routes(client: httpx.AsyncClient) -> None:
    spec = await ok(client.get(f"{API}/openapi.json"))
    paths = spec["paths"]
    assert "get" in paths["/api/v1/dns/{rdtype}/{name}"]
    assert "get" in paths["/api/v1/domains/{name}/dns-records"]
    schemas = spec["components"]["schemas"]
    assert any("DomainRecords" in name for name in schemas)
    assert any(name.endswith("Lookup") for name in schemas)
