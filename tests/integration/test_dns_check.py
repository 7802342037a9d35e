"""The domain check against real DNS servers on loopback: a recursive resolver on 127.0.0.1
and the domain's two authoritative nameservers on 127.0.0.2 and 127.0.0.3 (same port)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_server import API, Tenants, error, ok
from cli_helpers import Cli, as_json, error_line
from dns_server import silent_udp_server
from dns_world import DELEGATION, OUR_MX, World, dns_world

from mailward.config import Settings, load_settings
from mailward.dns.check import DomainCheck, check_domain

OLD_MX = "acme.example. 7200 IN MX 10 mx.oldprovider.example.\n"
CLIENTS = """
mail.acme.example.    300 IN CNAME mail.example.net.
imap.acme.example.    300 IN CNAME mail.example.net.
pop.acme.example.     300 IN CNAME mail.example.net.
smtp.acme.example.    300 IN CNAME mail.example.net.
webmail.acme.example. 300 IN CNAME webmail.example.net.
acme.example.         300 IN TXT "v=spf1 mx a:mail.example.net ~all"
_dmarc.acme.example.  300 IN TXT "v=DMARC1; p=none"
"""


@pytest.fixture
def world() -> Iterator[World]:
    with dns_world(OUR_MX) as world:
        yield world


def settings_for(tmp_path: Path, world: World, **more: object) -> Settings:
    options: dict[str, object] = {"dns_timeout_seconds": 1, **more}
    return load_settings(data_dir=tmp_path, dns_nameservers=[world.resolver],
                         dns_authoritative_port=world.port, **options)


def items(result: DomainCheck) -> dict[str, tuple[str, str, str]]:
    return {i.name: (i.status, i.message, i.fix) for i in result.items}


async def check(settings: Settings, hosted: bool = False,
                dkim: tuple[str, str] | None = None) -> DomainCheck:
    return await check_domain(settings, "acme.example", hosted=hosted, dkim=dkim)


# -- MX and propagation ------------------------------------------------------------------------


async def test_propagation_disagreement_then_agreement(tmp_path: Path, world: World) -> None:
    settings = settings_for(tmp_path, world)
    agreed = await check(settings)
    assert agreed.status == "pass"
    found = items(agreed)
    assert found["propagation"][:2] == (
        "pass", "3 servers agree: 10 mailfilter1.example.net., 20 mailfilter2.example.net.")
    assert f"ns1.acme.example. (127.0.0.2:{world.port})" in found["nameservers"][1]
    assert f"ns2.acme.example. (127.0.0.3:{world.port})" in found["nameservers"][1]

    world.ns2.serve(OLD_MX + DELEGATION)  # one nameserver still has the old zone
    world.recursive.serve(OLD_MX + DELEGATION)  # and the resolver's cache the old answer
    moving = await check(settings)
    status, message, fix = items(moving)["propagation"]
    assert status == "warn" and fix
    assert message == (
        "still propagating: new answer (10 mailfilter1.example.net., "
        f"20 mailfilter2.example.net.) from ns1.acme.example. (127.0.0.2:{world.port}); "
        f"old answer (10 mx.oldprovider.example.) from ns2.acme.example. "
        f"(127.0.0.3:{world.port}), resolver {world.resolver}")
    assert moving.status == "fail"  # the resolvers still see the old MX set

    world.publish(OUR_MX)  # everyone has the new zone
    again = await check(settings)
    assert (again.status, items(again)["propagation"][0]) == ("pass", "pass")


async def test_missing_and_foreign_mx_hosts(tmp_path: Path, world: World) -> None:
    world.publish("acme.example. 86400 IN MX 10 mailfilter1.example.net.\n"
                  "acme.example. 86400 IN MX 5 inbound.elsewhere.example.\n")
    result = await check(settings_for(tmp_path, world))
    found = items(result)
    assert result.status == "fail"
    assert found["mx-missing:mailfilter2.example.net"] == (
        "fail", "mailfilter2.example.net. (priority 20) is not among the MX records",
        "add: acme.example. 3600 IN MX 20 mailfilter2.example.net.")
    status, message, fix = found["mx-foreign:inbound.elsewhere.example"]
    assert status == "fail" and "bypasses the filter" in message
    assert fix == "remove: acme.example. IN MX 5 inbound.elsewhere.example."
    assert found["mx-ttl"][0] == "warn" and "86400 s" in found["mx-ttl"][1]
    assert found["propagation"][0] == "pass"


async def test_a_domain_without_mx_fails(tmp_path: Path, world: World) -> None:
    world.publish("")
    result = await check(settings_for(tmp_path, world))
    assert items(result)["mx"][0] == "fail" and "no-answer" in items(result)["mx"][1]
    ghost = await check_domain(settings_for(tmp_path, world), "ghost.example", hosted=False,
                               dkim=None)
    found = items(ghost)
    assert found["mx"][0] == "fail" and "nxdomain" in found["mx"][1]
    assert found["nameservers"][0] == "warn"


async def test_silent_nameserver_and_silent_resolver_time_out(tmp_path: Path,
                                                              world: World) -> None:
    for server in (world.recursive, world.ns1, world.ns2):
        server.serve(OUR_MX + DELEGATION + "ns3.acme.example. 3600 IN A 127.0.0.4\n"
                     "acme.example. 3600 IN NS ns3.acme.example.\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # never answers
        silent.bind(("127.0.0.4", world.port))
        result = await check(settings_for(tmp_path, world, dns_timeout_seconds=0.3))
    found = items(result)
    assert result.status == "warn"
    status, message, _fix = found["nameservers-unreachable"]
    assert status == "warn"
    assert f"ns3.acme.example. (127.0.0.4:{world.port}): timeout" in message
    assert found["propagation"][0] == "pass"

    with silent_udp_server() as nowhere:
        settings = load_settings(data_dir=tmp_path, dns_nameservers=[nowhere],
                                 dns_timeout_seconds=0.3)
        cut_off = await check(settings)
    found = items(cut_off)
    assert cut_off.status == "fail"
    assert found["mx"][0] == "fail" and "timeout" in found["mx"][1]
    assert found["nameservers"][0] == "warn"


MX_HOSTS = """
mailfilter1.example.net. 300 IN A 192.0.2.10
mailfilter2.example.net. 300 IN A 192.0.2.20
"""


async def test_our_mx_hosts_on_a_dnsbl(tmp_path: Path, world: World) -> None:
    world.publish(OUR_MX + MX_HOSTS + "10.2.0.192.bl.test. 300 IN A 127.0.0.2\n")
    settings = settings_for(tmp_path, world, dnsbl_zones=["bl.test"])
    result = await check(settings)
    found = items(result)
    assert result.status == "fail"
    assert found["dnsbl:mailfilter1.example.net:bl.test"] == (
        "fail", "mailfilter1.example.net (192.0.2.10) is listed on bl.test (127.0.0.2)",
        "request delisting at the blocklist; until then mail from this host may be refused")
    assert found["dnsbl:mailfilter2.example.net:bl.test"] == (
        "pass", "mailfilter2.example.net (192.0.2.20) is not listed on bl.test", "")

    world.publish(OUR_MX + MX_HOSTS + "10.2.0.192.bl.test. 300 IN A 127.255.255.254\n")
    refused = items(await check(settings))
    status, message, _fix = refused["dnsbl:mailfilter1.example.net:bl.test"]
    assert status == "warn" and "could not be checked on bl.test" in message

    unconfigured = await check(settings_for(tmp_path, world))
    assert not any(i.name.startswith("dnsbl") for i in unconfigured.items)


# -- hosted domains through the CLI ------------------------------------------------------------


def dkim_zone(cli: Cli) -> tuple[str, str]:
    """(``domain dkim --json`` value, its zone line)."""
    dkim = as_json(cli("domain", "dkim", "acme.example", "--json"))
    strings = " ".join(f'"{s}"' for s in dkim["strings"])
    return dkim["value"], f"{dkim['name']}. 300 IN TXT {strings}\n"


def test_cli_check_of_a_good_hosted_domain(tenants: Cli, world: World) -> None:
    _value, dkim = dkim_zone(tenants)
    world.publish(OUR_MX + CLIENTS + dkim)
    env = world.env()
    data = as_json(tenants("dns", "check", "acme.example", "--account", "Acme", "--json",
                           env=env))
    assert set(data) == {"domain", "hosted", "status", "items", "propagation_eta"}
    assert (data["domain"], data["hosted"], data["status"]) == ("acme.example", True, "pass")
    assert data["propagation_eta"] is None  # no change of MX answer seen
    names = [i["name"] for i in data["items"]]
    assert names == ["mx", "mx-ttl", "nameservers", "propagation", "cname-mail", "cname-imap",
                     "cname-pop", "cname-smtp", "cname-webmail", "spf", "dkim", "dmarc"]
    assert all(set(i) == {"name", "status", "message", "fix"} for i in data["items"])
    assert all(i["fix"] == "" for i in data["items"])
    text = tenants("dns", "check", "acme.example", env=env).stdout
    lines = text.splitlines()
    assert lines[0] == "acme.example (hosted): pass"
    assert "pass  cname-webmail: webmail.acme.example. is an alias of webmail.example.net." in (
        lines)


def test_cli_check_of_a_broken_hosted_domain(tenants: Cli, world: World) -> None:
    value, _dkim = dkim_zone(tenants)
    wrong = value.rsplit("p=", 1)[0] + "p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwrong"
    dkim_name = as_json(tenants("domain", "dkim", "acme.example", "--json"))["name"]
    clients = (CLIENTS
               .replace("pop.acme.example.     300 IN CNAME mail.example.net.\n", "")
               .replace("imap.acme.example.    300 IN CNAME mail.example.net.",
                        "imap.acme.example.    300 IN CNAME imap.oldhost.example.")
               .replace('_dmarc.acme.example.  300 IN TXT "v=DMARC1; p=none"\n', ""))
    zone = (OUR_MX + clients + 'smtp.acme.example. 300 IN TXT "left over"\n'
            f'{dkim_name}. 300 IN TXT "{wrong}"\n')
    world.publish(zone)
    env = world.env()
    result = tenants("dns", "check", "acme.example", "--json", code=1, env=env)
    data = as_json(result)
    found = {i["name"]: i for i in data["items"]}
    assert data["status"] == "fail"
    assert found["cname-pop"]["status"] == "fail"
    assert found["cname-pop"]["fix"] == "add: pop.acme.example. 3600 IN CNAME mail.example.net."
    assert found["cname-imap"]["status"] == "fail"
    assert found["cname-imap"]["fix"] == (
        "change the record to: imap.acme.example. 3600 IN CNAME mail.example.net.")
    smtp = found["cname-smtp"]
    assert smtp["status"] == "fail"
    assert "a name with a CNAME cannot hold other records" in smtp["message"]
    assert smtp["fix"] == ("delete the TXT records at smtp.acme.example. and keep only: "
                           "smtp.acme.example. 3600 IN CNAME mail.example.net.")
    assert found["dkim"]["status"] == "fail"
    assert "not the domain's key" in found["dkim"]["message"]
    assert found["dmarc"]["status"] == "warn"
    assert found["mx"]["status"] == "pass"
    text = tenants("dns", "check", "acme.example", code=1, env=env).stdout
    assert text.splitlines()[0] == "acme.example (hosted): fail"
    assert "      fix: add: pop.acme.example. 3600 IN CNAME mail.example.net." in text


def test_cli_check_is_tenant_scoped(tenants: Cli, world: World) -> None:
    env = world.env()
    refused = tenants("dns", "check", "acme.example", "--account", "Globex", code=1, env=env)
    assert refused.stdout == ""
    assert error_line(refused) == "error: no domain acme.example"
    theirs = as_json(tenants("dns", "check", "globex.example", "--account", "Globex",
                             "--json", code=1, env=env))
    assert (theirs["hosted"], theirs["status"]) == (False, "fail")  # no MX published
    assert not any(i["name"].startswith(("cname", "spf", "dkim")) for i in theirs["items"])


# -- the API -----------------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings, world: World) -> Settings:
    return world.settings(settings)


async def test_api_check(client: httpx.AsyncClient, customers: Tenants, world: World) -> None:
    world.publish(OUR_MX + CLIENTS)
    data = await ok(client.get(f"{API}/domains/acme.example/dns-check",
                               headers=customers.alice))
    assert (data["domain"], data["hosted"], data["status"]) == ("acme.example", True, "fail")
    found = {i["name"]: i for i in data["items"]}
    assert found["propagation"]["status"] == "pass"
    assert found["dkim"]["status"] == "fail"  # the key is not published
    await error(client.get(f"{API}/domains/acme.example/dns-check", headers=customers.bob),
                404, "no domain acme.example")
    records = await ok(client.get(f"{API}/domains/acme.example/dns-records",
                                  headers=customers.alice))
    assert records["domain"] == "acme.example"  # the neighbouring route still works
    spec = await ok(client.get(f"{API}/openapi.json"))
    assert "get" in spec["paths"]["/api/v1/domains/{name}/dns-check"]
