"""Scheduled DNS re-checks against real DNS servers on loopback, both backends: results
stored, the account's admins emailed (through the real queue) when a domain's status
changes, each domain claimed by one node per round, and the delivery role running it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from api_server import API, Tenants, error, ok
from cli_helpers import Cli, as_json
from dns_world import OUR_MX, World, dns_world
from mail_helpers import eventually, mail_roles, queued_notices
from sqlalchemy import select

from mailward.app import Services
from mailward.config import Settings
from mailward.db import Database
from mailward.db.models import DomainDnsStatus
from mailward.directory import Actor
from mailward.dns.recheck import DnsRechecker, stored_statuses

OLD_MX = "acme.example. 7200 IN MX 10 mx.oldprovider.example.\n"
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def world() -> Iterator[World]:
    with dns_world(OUR_MX) as world:
        yield world


@pytest.fixture
def settings(settings: Settings, world: World) -> Settings:
    """Re-checks every hour, asking only the loopback DNS servers of ``world``."""
    return world.settings(settings, dns_recheck_interval_seconds=3600)


@pytest.fixture
async def seeded(settings: Settings) -> AsyncIterator[Services]:
    """Acme (acme.example: admins alice@acme.example and a non-address login "ops") and
    Globex (globex.example, which DNS does not know: admin bob@globex.example)."""
    db = Database(settings.db_url)
    directory = Services(db, settings)
    op = Actor.operator()
    for account, domain, admins in (("Acme", "acme.example", ("alice@acme.example", "ops")),
                                    ("Globex", "globex.example", ("bob@globex.example",))):
        await directory.accounts.create(op, account)
        await directory.domains.create(op, domain, account=account)
        for login in admins:
            await directory.accounts.create_user(op, login, "Long-enough-pass-9",
                                                 account=account)
    try:
        yield directory
    finally:
        await db.dispose()


async def test_baseline_then_a_notice_on_every_change(seeded: Services, settings: Settings,
                                                      world: World) -> None:
    directory = seeded
    clock = [START]
    rechecker = DnsRechecker(directory.directory, settings, directory.spool,
                             clock=lambda: clock[0])

    first = await rechecker.run_once()
    assert [(r.domain, r.old, r.new, r.notified) for r in first] == [
        ("acme.example", None, "pass", ()),  # the first check is the baseline: no mail
        ("globex.example", None, "fail", ()),
    ]
    assert await queued_notices(directory) == []
    assert await rechecker.run_once() == []  # nothing due until the next round

    world.publish(OLD_MX)  # the customer points the MX back at the old provider
    clock[0] = START + HOUR
    second = await rechecker.run_once()
    assert [(r.domain, r.old, r.new, r.notified) for r in second] == [
        ("acme.example", "pass", "fail", ("alice@acme.example",)),  # "ops" is no address
        ("globex.example", "fail", "fail", ()),  # unchanged: no mail to Globex
    ]
    [(recipients, notice)] = await queued_notices(directory)
    assert recipients == ["alice@acme.example"]
    assert notice["To"] == "alice@acme.example"
    assert notice["Subject"] == "DNS of acme.example: has a problem (was pass, now fail)"
    assert notice["Auto-Submitted"] == "auto-generated"
    assert notice["From"].addresses[0].addr_spec == settings.notice_sender
    body = notice.get_content()
    assert "changed from pass to fail" in body
    assert ("FAIL  mx-foreign:mx.oldprovider.example: mx.oldprovider.example. (priority 10) "
            "is not one of our filtering hosts") in body
    # every problem comes with its fix
    assert "fix: remove: acme.example. IN MX 10 mx.oldprovider.example." in body
    assert "fix: add: acme.example. 3600 IN MX 10 mailfilter1.example.net." in body
    assert "globex" not in body.lower()

    acme = Actor.for_account(await account_id(directory, "Acme"))
    [stored] = await stored_statuses(directory, acme)  # Acme sees its own domain only
    assert (stored.domain, stored.status) == ("acme.example", "fail")
    assert (stored.checked_at, stored.changed_at) == (START + HOUR, START + HOUR)
    assert stored.next_check_at == START + 2 * HOUR
    assert {p["name"] for p in stored.problems} == {
        "mx-foreign:mx.oldprovider.example", "mx-missing:mailfilter1.example.net",
        "mx-missing:mailfilter2.example.net", "mx-ttl",
        "propagation"}  # the history knows the MX answer changed an hour ago

    world.publish(OUR_MX)  # fixed; but caches may keep the old answer for its 2 h TTL
    clock[0] = START + 2 * HOUR
    third = await rechecker.run_once()
    assert next((r.domain, r.old, r.new, r.notified) for r in third) == (
        "acme.example", "fail", "warn", ("alice@acme.example",))
    latest = (await queued_notices(directory))[-1][1]
    assert latest["Subject"] == "DNS of acme.example: needs attention (was fail, now warn)"
    assert "WARN  propagation: " in latest.get_content()

    clock[0] = START + 5 * HOUR  # past the old TTL: every cache has the new answer
    fourth = await rechecker.run_once()
    assert next((r.domain, r.old, r.new, r.notified) for r in fourth) == (
        "acme.example", "warn", "pass", ("alice@acme.example",))
    latest = (await queued_notices(directory))[-1][1]
    assert latest["Subject"] == "DNS of acme.example: all checks pass (was warn, now pass)"
    assert "Every check passes now" in latest.get_content()
    [stored] = await stored_statuses(directory, acme, "acme.example")
    assert (stored.status, stored.problems, stored.changed_at) == ("pass", [], START + 5 * HOUR)
    assert len(await queued_notices(directory)) == 3


async def account_id(directory: Services, name: str) -> int:
    return (await directory.accounts.get(Actor.operator(), name)).id


async def test_two_nodes_check_each_domain_once_per_round(seeded: Services,
                                                          settings: Settings) -> None:
    directory = seeded
    other = Services(Database(settings.db_url), settings)  # a second node: own pool
    try:
        nodes = [DnsRechecker(d.directory, settings, d.spool, clock=lambda: START)
                 for d in (directory, other)]
        rounds = await asyncio.gather(*(node.run_once() for node in nodes))
        checked = sorted(r.domain for found in rounds for r in found)
        assert checked == ["acme.example", "globex.example"]
        assert await asyncio.gather(*(node.run_once() for node in nodes)) == [[], []]
    finally:
        await other.db.dispose()


async def test_a_new_domain_is_checked_in_the_next_round(seeded: Services,
                                                         settings: Settings) -> None:
    directory = seeded
    rechecker = DnsRechecker(directory.directory, settings, directory.spool,
                             clock=lambda: START)
    await rechecker.run_once()
    await directory.domains.create(Actor.operator(), "new.example", account="Acme")
    statuses = {s.domain: s.status for s in await stored_statuses(directory, Actor.operator())}
    assert statuses["new.example"] is None  # not checked yet
    [found] = await rechecker.run_once()  # the same moment: only the new domain is due
    assert (found.domain, found.old, found.new) == ("new.example", None, "fail")


async def test_the_delivery_role_runs_the_rechecks(seeded: Services,
                                                   settings: Settings) -> None:
    directory = seeded
    async def stored() -> list[tuple[int, str | None]]:
        async with directory.db.session() as session:
            rows = await session.scalars(select(DomainDnsStatus)
                                         .where(DomainDnsStatus.status.is_not(None)))
            return [(row.domain_id, row.status) for row in rows]

    async with mail_roles(settings.model_copy(update={"bind": "127.0.0.1", "port_mx": 0}),
                          frozenset({"delivery"})):
        found = await eventually(lambda: _two(stored))
    assert sorted(status for _, status in found) == ["fail", "pass"]


async def _two(stored):  # type: ignore[no-untyped-def]
    rows = await stored()
    return rows if len(rows) == 2 else None


# -- API and CLI --------------------------------------------------------------------------


async def test_api_dns_status_is_tenant_scoped(client: httpx.AsyncClient, customers: Tenants,
                                               settings: Settings) -> None:
    db = Database(settings.db_url)
    try:
        services = Services(db, settings)
        await DnsRechecker(services.directory, settings, services.spool).run_once()
    finally:
        await db.dispose()
    mine = await ok(client.get(f"{API}/dns-status", headers=customers.alice))
    # hosted acme.example: MX fine, but the client names and SPF are not published
    assert [(s["domain"], s["status"]) for s in mine] == [("acme.example", "fail")]
    one = await ok(client.get(f"{API}/domains/acme.example/dns-status",
                              headers=customers.alice))
    assert one == mine[0] and one["checked_at"] is not None
    assert "cname-mail" in {p["name"] for p in one["problems"]}
    assert not {p["name"] for p in one["problems"]} & {"mx", "propagation"}
    await error(client.get(f"{API}/domains/globex.example/dns-status",
                           headers=customers.alice), 404)
    bob = await ok(client.get(f"{API}/domains/globex.example/dns-status",
                              headers=customers.bob))
    assert bob["status"] == "fail" and bob["problems"]


def test_cli_recheck_and_status(tenants: Cli, world: World) -> None:
    env = world.env(MAILWARD_DNS_RECHECK_INTERVAL_SECONDS="3600")
    before = tenants("dns", "status", "--account", "Acme", env=env)
    assert "acme.example" in before.stdout and "not checked yet" in before.stdout
    assert "globex" not in before.stdout

    ran = tenants("dns", "recheck", env=env)
    assert ran.stdout.splitlines() == ["acme.example: fail", "globex.example: fail"]
    assert tenants("dns", "recheck", env=env).stdout == "no domain is due for its DNS check\n"

    world.publish(OLD_MX)  # hosted acme.example fails either way; the MX item changes
    again = tenants("dns", "recheck", "--all", env=env)
    assert again.stdout.splitlines() == ["acme.example: fail", "globex.example: fail"]
    shown = tenants("dns", "status", "--account", "Acme", env=env, code=1)
    assert "acme.example: fail  mx-foreign:mx.oldprovider.example: " in shown.stdout
    assert "globex" not in shown.stdout
    [stored] = as_json(tenants("dns", "status", "acme.example", "--json", env=env, code=1))
    assert stored["status"] == "fail" and stored["checked_at"]
    gone = tenants("dns", "status", "globex.example", "--account", "Acme", env=env, code=1)
    assert gone.stderr == "error: no domain globex.example\n"
