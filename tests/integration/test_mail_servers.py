"""Mail server settings service against SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from mailward.app import Services
from mailward.directory import Actor, Conflict, InvalidInput, NotFound


@pytest.fixture
async def acme(directory: Services, operator: Actor) -> Actor:
    await directory.accounts.create(operator, "Acme")
    await directory.domains.create(operator, "acme.example", account="Acme", hosting=True)
    return await directory.accounts.actor_for("Acme")


async def test_servers_in_delivery_order(directory: Services, acme: Actor) -> None:
    servers = directory.servers
    await servers.add(acme, "acme.example", "backup.acme.example", preference=20)
    await servers.add(acme, "acme.example", "192.0.2.10:2525", preference=10)
    await servers.add(acme, "ACME.example", "[2001:db8::25]", preference=10, port=587)
    listed = await servers.list(acme, "acme.example")
    assert [(s.address, s.preference) for s in listed] == [
        ("192.0.2.10:2525", 10), ("[2001:db8::25]:587", 10), ("backup.acme.example:25", 20),
    ]


async def test_duplicates_and_own_mx_are_refused(directory: Services, acme: Actor) -> None:
    servers = directory.servers
    await servers.add(acme, "acme.example", "mx.acme.example", preference=10)
    with pytest.raises(Conflict, match="already lists"):
        await servers.add(acme, "acme.example", "MX.acme.example:25", preference=20)
    await servers.add(acme, "acme.example", "mx.acme.example:2525", preference=20)  # other port
    own = directory.settings.mx_hosts[0].host
    with pytest.raises(InvalidInput, match="loop"):
        await servers.add(acme, "acme.example", own, preference=5)
    with pytest.raises(InvalidInput, match="several ports"):
        await servers.delete(acme, "acme.example", "mx.acme.example")


async def test_edit_and_delete(directory: Services, acme: Actor) -> None:
    servers = directory.servers
    await servers.add(acme, "acme.example", "old.acme.example", preference=10)
    edited = await servers.edit(acme, "acme.example", "old.acme.example:25",
                                host="new.acme.example:2525", preference=5)
    assert (edited.address, edited.preference) == ("new.acme.example:2525", 5)
    with pytest.raises(NotFound):
        await servers.edit(acme, "acme.example", "old.acme.example", preference=1)
    deleted = await servers.delete(acme, "acme.example", "new.acme.example")
    assert deleted.address == "new.acme.example:2525"
    assert await servers.list(acme, "acme.example") == []


async def test_auto_configure_points_at_the_hosting_host_only(
    directory: Services, acme: Actor, operator: Actor
) -> None:
    servers = directory.servers
    await servers.add(acme, "acme.example", "customer.acme.example", preference=10)
    configured = await servers.auto_configure_hosting(acme, "acme.example")
    assert [(s.host, s.port, s.preference) for s in configured] == [
        (directory.settings.hosting_host, 25, 0)]
    assert await servers.list(acme, "acme.example") == configured
    await directory.domains.create(operator, "filtered.example", account="Acme")
    with pytest.raises(Conflict, match="no hosting"):
        await servers.auto_configure_hosting(acme, "filtered.example")


async def test_other_accounts_cannot_touch_the_servers(
    directory: Services, acme: Actor, operator: Actor
) -> None:
    await directory.servers.add(acme, "acme.example", "mx.acme.example", preference=10)
    await directory.accounts.create(operator, "Globex")
    globex = await directory.accounts.actor_for("Globex")
    for attempt in (
        directory.servers.list(globex, "acme.example"),
        directory.servers.add(globex, "acme.example", "evil.example.net", preference=0),
        directory.servers.delete(globex, "acme.example", "mx.acme.example"),
        directory.servers.auto_configure_hosting(globex, "acme.example"),
    ):
        with pytest.raises(NotFound):
            await attempt
    listed = await directory.servers.list(acme, "acme.example")
    assert [s.address for s in listed] == ["mx.acme.example:25"]
