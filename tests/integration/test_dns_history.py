"""The history of observed MX answers and the propagation estimate built on it: the
domain's two authoritative nameservers (127.0.0.2, 127.0.0.3) and a resolver change their
answer, the check records every answer and says when every cache has the new one (the
time of the change plus the old answer's TTL). Times are passed in: no sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from api_server import API, Tenants, ok
from dns_world import OUR_MX, World, dns_world
from sqlalchemy import select

from mailward.app import Services
from mailward.config import Settings
from mailward.db.models import DnsObservation, Domain
from mailward.directory import Actor, NotFound
from mailward.dns import history
from mailward.dns.check import DomainCheck, PreviousAnswer
from mailward.dns.service import domain_check

OP = Actor.operator()
OLD_MX = "acme.example. 3600 IN MX 10 mx.oldprovider.example.\n"
OURS = "10 mailfilter1.example.net.,20 mailfilter2.example.net."
OLD = "10 mx.oldprovider.example."
T0 = datetime(2026, 11, 30, 13, 0, tzinfo=UTC)


@pytest.fixture
def world() -> Iterator[World]:
    with dns_world(OLD_MX) as world:
        yield world


@pytest.fixture
def settings(settings: Settings, world: World) -> Settings:
    return world.settings(settings)


async def setup(directory: Services) -> int:
    """Acme (filtering only) with acme.example, Globex with globex.example; acme's id."""
    for account, domain in (("Acme", "acme.example"), ("Globex", "globex.example")):
        await directory.accounts.create(OP, account)
        await directory.domains.create(OP, domain, account=account)
    async with directory.db.session() as session:
        found = await session.scalar(select(Domain.id).where(Domain.name == "acme.example"))
    assert found is not None
    return found


async def rows(directory: Services) -> list[tuple[str, str, int, datetime, datetime]]:
    async with directory.db.session() as session:
        found = await session.scalars(select(DnsObservation).order_by(DnsObservation.id))
        return [(r.rdtype, r.answer, r.ttl, r.first_seen, r.last_seen) for r in found]


def item(result: DomainCheck, name: str = "propagation") -> tuple[str, str]:
    [found] = [i for i in result.items if i.name == name]
    return found.status, found.message


# -- the history -------------------------------------------------------------------------------


async def test_record_and_previous(directory: Services) -> None:
    acme = await setup(directory)
    await history.record(directory.db, acme, "MX", [], T0)  # nothing seen: nothing kept
    assert await rows(directory) == []
    await history.record(directory.db, acme, "MX", [("A", 3600), ("A", 60)], T0)
    assert await history.previous(directory.db, acme, "MX", "A") is None  # nothing before
    t1, t2 = T0 + timedelta(minutes=5), T0 + timedelta(minutes=20)
    await history.record(directory.db, acme, "MX", [("A", 1200), ("B", 300)], t1)
    await history.record(directory.db, acme, "MX", [("B", 600)], t2)
    assert await rows(directory) == [("MX", "A", 3600, T0, t1), ("MX", "B", 600, t1, t2)]
    assert await history.previous(directory.db, acme, "MX", "B") == PreviousAnswer("A", 3600, t1)
    assert await history.previous(directory.db, acme, "MX", "C") is None  # never seen
    assert await history.previous(directory.db, acme, "A", "B") is None  # another type
    # A again: the change back is dated no earlier than B's first sighting
    await history.record(directory.db, acme, "MX", [("A", 3600)], T0 + timedelta(hours=1))
    assert await history.previous(directory.db, acme, "MX", "A") == PreviousAnswer("B", 600, t1)
    await directory.domains.delete(OP, "acme.example")
    assert await rows(directory) == []  # gone with the domain


# -- the check, changing from the old provider's MX to ours ------------------------------------


async def test_propagation_estimate_from_the_history(directory: Services, settings: Settings,
                                                     world: World) -> None:
    await setup(directory)
    acme = await directory.accounts.actor_for("Acme")

    before = await domain_check(directory, settings, acme, "acme.example", now=T0)
    assert item(before) == ("pass", "3 servers agree: 10 mx.oldprovider.example.")
    assert before.propagation_eta is None
    assert [(r[1], r[2], r[3]) for r in await rows(directory)] == [(OLD, 3600, T0)]

    world.publish(OUR_MX, world.ns1)  # the change reaches one nameserver at 13:05
    t1 = T0 + timedelta(minutes=5)
    moving = await domain_check(directory, settings, acme, "acme.example", now=t1)
    status, message = item(moving)
    assert status == "warn"
    assert message.startswith("still propagating: new answer (10 mailfilter1.example.net.")
    assert message.endswith("; every cache has the new answer by 2026-11-30 14:05 UTC "
                            "(changed at 13:05, old TTL 3600 s)")
    eta = t1 + timedelta(seconds=3600)
    assert moving.propagation_eta == eta
    assert await rows(directory) == [("MX", OLD, 3600, T0, t1), ("MX", OURS, 300, t1, t1)]

    world.publish(OUR_MX)  # every server has it at 13:30; caches may still hold the old one
    t2 = T0 + timedelta(minutes=30)
    agreed = await domain_check(directory, settings, acme, "acme.example", now=t2)
    assert item(agreed) == (
        "warn", "3 servers agree: 10 mailfilter1.example.net., 20 mailfilter2.example.net.; "
        "caches may still hold the old answer (10 mx.oldprovider.example.) until "
        "2026-11-30 14:05 UTC (changed at 13:05, old TTL 3600 s)")
    assert (agreed.status, agreed.propagation_eta) == ("warn", eta)

    done = await domain_check(directory, settings, acme, "acme.example", now=eta)
    status, message = item(done)
    assert (done.status, status, done.propagation_eta) == ("pass", "pass", eta)
    assert "propagated: every cache has had the new answer since 2026-11-30 14:05 UTC" in (
        message)
    assert await rows(directory) == [("MX", OLD, 3600, T0, t1), ("MX", OURS, 300, t1, eta)]

    later = await domain_check(directory, settings, acme, "acme.example",
                               now=eta + timedelta(days=8))
    assert (item(later)[0], later.propagation_eta) == ("pass", None)  # old news

    globex = await directory.accounts.actor_for("Globex")
    with pytest.raises(NotFound):
        await domain_check(directory, settings, globex, "acme.example", now=t2)


async def test_the_api_shows_the_eta(client: httpx.AsyncClient, customers: Tenants,
                                     directory: Services, settings: Settings,
                                     world: World) -> None:
    acme = await directory.accounts.actor_for("Acme")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    await domain_check(directory, settings, acme, "acme.example", now=now - timedelta(hours=1))
    world.publish(OUR_MX, world.ns1)
    changed = now - timedelta(minutes=10)
    await domain_check(directory, settings, acme, "acme.example", now=changed)
    data = await ok(client.get(f"{API}/domains/acme.example/dns-check",
                               headers=customers.alice))
    eta = changed + timedelta(seconds=3600)
    assert datetime.fromisoformat(data["propagation_eta"]) == eta
    [found] = [i for i in data["items"] if i["name"] == "propagation"]
    assert found["status"] == "warn"
    assert f"every cache has the new answer by {eta:%Y-%m-%d %H:%M} UTC" in found["message"]
    bob = await ok(client.get(f"{API}/domains/globex.example/dns-check",
                              headers=customers.bob))
    assert bob["propagation_eta"] is None  # globex.example publishes no MX at all
