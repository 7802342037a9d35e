"""Cut-over readiness (``dns cutover``, ``/domains/{name}/cutover``) against real DNS servers
on loopback: a recursive resolver on 127.0.0.1 and the domain's two authoritative
nameservers on 127.0.0.2 and 127.0.0.3."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from api_server import API, Tenants, bulk, error, ok
from cli_helpers import Cli, as_json, error_line
from dns_world import DELEGATION, OUR_MX, World, dns_world

from mailward.config import Settings

FOREIGN_MX = "acme.example. 300 IN MX 5 inbound.elsewhere.example.\n"
OLD_MX = "acme.example. 7200 IN MX 10 mx.oldprovider.example.\n"
ADDRESSES = "box@acme.example|Secret-pass1\nfw@acme.example|a@x.example|relay\n"


@pytest.fixture
def world() -> Iterator[World]:
    with dns_world(OUR_MX) as world:
        yield world


def cutover(cli: Cli, world: World, *args: str, code: int = 0) -> object:
    return cli("dns", "cutover", "acme.example", *args, code=code, env=world.env())


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_a_ready_domain(tenants: Cli, world: World) -> None:
    tenants("address", "add", "--account", "Acme", "--list", "filter", input=ADDRESSES)
    tenants("servers", "add", "acme.example", "mx.customer.example", "--preference", "10")
    data = as_json(cutover(tenants, world, "--account", "Acme", "--json"))
    assert set(data) == {"domain", "ready", "switched", "blockers", "warnings", "addresses",
                         "blocked_addresses", "checked", "check", "hosting_host", "servers"}
    assert (data["domain"], data["ready"], data["switched"]) == ("acme.example", True, False)
    assert (data["blockers"], data["warnings"]) == ([], [])
    assert (data["addresses"], data["blocked_addresses"]) == (2, 0)
    assert data["servers"] == ["mx.customer.example"]
    assert data["check"]["hosted"] is False  # checked as the filtering-only domain it is
    assert data["check"]["status"] == "pass"
    text = cutover(tenants, world).stdout
    assert text.splitlines() == ["acme.example: ready",
                                 "throw the switch: mailward servers auto-configure "
                                 "acme.example"]

    tenants("servers", "auto-configure", "acme.example", "--yes")  # throw the switch
    switched = as_json(cutover(tenants, world, "--json"))
    assert (switched["ready"], switched["switched"], switched["check"]) == (True, True, None)
    assert [w["kind"] for w in switched["warnings"]] == ["already-hosted"]
    assert cutover(tenants, world).stdout.splitlines()[0] == "acme.example: already switched"


def test_cli_pending_address_and_foreign_mx_block(tenants: Cli, world: World) -> None:
    tenants("address", "add", "--list", "filter",
            input=ADDRESSES + "new@acme.example\n")
    world.publish(OUR_MX + FOREIGN_MX)
    data = as_json(cutover(tenants, world, "--json", code=1))
    assert (data["ready"], data["blocked_addresses"]) == (False, 1)
    blockers = [(b["kind"], b["message"], b["fix"]) for b in data["blockers"]]
    assert [kind for kind, _, _ in blockers] == ["mx", "address"]
    _kind, message, fix = blockers[0]
    assert message.startswith("mx-foreign:inbound.elsewhere.example: ")
    assert fix == "remove: acme.example. IN MX 5 inbound.elsewhere.example."
    _kind, message, fix = blockers[1]
    assert message == ("new@acme.example is pending setup: give it a password or "
                       "destinations")
    assert fix.startswith("mailward address setup new@acme.example --mailbox")

    text = cutover(tenants, world, code=1).stdout
    lines = text.splitlines()
    assert lines[0] == "acme.example: not ready"
    assert "blocker  address: new@acme.example is pending setup: give it a password or " \
           "destinations" in lines
    assert "         fix: remove: acme.example. IN MX 5 inbound.elsewhere.example." in lines

    tenants("address", "setup", "new@acme.example", "--forward", "b@x.example")
    world.publish(OUR_MX)  # fixed, but caches may keep the old set for its TTL (300 s)
    data = as_json(cutover(tenants, world, "--json", code=1))
    [blocker] = data["blockers"]  # the address is ready now; only the caches are left
    assert blocker["kind"] == "propagation"
    assert "caches may still hold the old answer (5 inbound.elsewhere.example., " in (
        blocker["message"])
    assert "old TTL 300 s" in blocker["message"]
    assert blocker["fix"].startswith("nothing to change: mail may still reach the old MX hosts")


def test_cli_propagation_under_way_blocks(tenants: Cli, world: World) -> None:
    tenants("address", "add", "--list", "filter", input=ADDRESSES)
    world.ns2.serve(OLD_MX + DELEGATION)  # one nameserver still has the old zone
    data = as_json(cutover(tenants, world, "--json", code=1))
    assert [b["kind"] for b in data["blockers"]] == ["propagation"]
    assert data["blockers"][0]["message"].startswith("propagation: still propagating")


def test_cli_is_tenant_scoped_and_needs_hosting(tenants: Cli, world: World) -> None:
    refused = cutover(tenants, world, "--account", "Globex", code=1)
    assert refused.stdout == ""
    assert error_line(refused) == "error: no domain acme.example"
    theirs = as_json(tenants("dns", "cutover", "globex.example", "--account", "Globex",
                             "--json", code=1, env=world.env()))
    kinds = [b["kind"] for b in theirs["blockers"]]
    assert kinds[0] == "hosting"  # hosting is off: an operator must switch it on first
    assert "mx" in kinds  # and globex.example publishes no MX at all


# -- the API -----------------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings, world: World) -> Settings:
    return world.settings(settings)


async def test_api_cutover(client: httpx.AsyncClient, customers: Tenants,
                           world: World) -> None:
    alice = customers.alice
    await bulk(client, alice, "filter", ADDRESSES)
    url = f"{API}/domains/acme.example/cutover"
    data = await ok(client.get(url, headers=alice))
    assert (data["domain"], data["ready"], data["blockers"]) == ("acme.example", True, [])

    await bulk(client, alice, "no-filter", "new@acme.example")
    world.publish(FOREIGN_MX)
    data = await ok(client.get(url, headers=alice))
    assert data["ready"] is False
    kinds = [b["kind"] for b in data["blockers"]]
    assert kinds.count("mx") == 3  # two of ours missing, one foreign
    assert kinds[-1] == "address"
    assert data["blockers"][-1]["message"].startswith("new@acme.example is pending setup")

    await error(client.get(url, headers=customers.bob), 404, "no domain acme.example")
    spec = await ok(client.get(f"{API}/openapi.json"))
    assert "get" in spec["paths"]["/api/v1/domains/{name}/cutover"]
