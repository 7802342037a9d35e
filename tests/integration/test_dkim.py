"""DKIM keys per domain: made on ``domain add``, shown by the CLI and API (tenant-scoped),
rotated, and verifying against the TXT record served by a real DNS server."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import API, Headers, Tenants, error, ok
from cli_helpers import Cli, as_json, error_line, run_directory
from dns_server import dns_server
from sqlalchemy import select

from mailward.app import Services
from mailward.config import Settings
from mailward.db.models import DkimKey
from mailward.directory import Actor, NotFound
from mailward.dkim import DkimService, sign, txt_value, verify, zone_line

OP = Actor.operator()
MONTH = f"mw{datetime.now(UTC):%Y%m}"
MESSAGE = (
    b"From: Box <box@acme.example>\r\n"
    b"To: someone@elsewhere.example\r\n"
    b"Subject: signed\r\n"
    b"Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <dkim-test@acme.example>\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


async def setup(directory: Services) -> None:
    await directory.accounts.create(OP, "Acme")
    await directory.accounts.create(OP, "Globex")
    await directory.domains.create(OP, "acme.example", account="Acme", hosting=True)
    await directory.domains.create(OP, "globex.example", account="Globex")


async def keys(directory: Services) -> list[DkimKey]:
    async with directory.db.session() as session:
        return list(await session.scalars(select(DkimKey).order_by(DkimKey.id)))


async def test_domain_add_makes_a_key(directory: Services) -> None:
    await setup(directory)
    made = await keys(directory)
    assert [(k.selector, k.active) for k in made] == [(MONTH, True), (MONTH, True)]
    account = await directory.accounts.actor_for("Acme")
    assert made[0].account_id == account.account_id
    assert made[0].private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")

    dkim = DkimService(directory.db)
    record = await dkim.record(OP, "ACME.example")
    assert record.domain == "acme.example"
    assert record.selector == MONTH
    assert record.name == f"{MONTH}._domainkey.acme.example"
    assert record.value == txt_value(made[0].public_key)
    assert "".join(record.strings) == record.value
    assert (await dkim.signing_key("acme.example")) == (MONTH, made[0].private_key.encode())
    assert await dkim.signing_key("nowhere.example") is None

    # a duplicate domain adds no key; deleting a domain deletes its keys
    with pytest.raises(Exception, match="already in use"):
        await directory.domains.create(OP, "acme.example", account="Globex")
    await directory.domains.delete(OP, "globex.example")
    assert [k.domain_id for k in await keys(directory)] == [made[0].domain_id]


async def test_records_are_tenant_scoped(directory: Services) -> None:
    await setup(directory)
    dkim = DkimService(directory.db)
    acme = await directory.accounts.actor_for("Acme")
    assert (await dkim.record(acme, "acme.example")).domain == "acme.example"
    with pytest.raises(NotFound):
        await dkim.record(acme, "globex.example")
    with pytest.raises(NotFound):
        await dkim.rotate(acme, "globex.example")
    with pytest.raises(NotFound):
        await dkim.record(acme, "not a domain")


async def test_rotate_makes_a_new_selector_that_signs(directory: Services) -> None:
    await setup(directory)
    dkim = DkimService(directory.db)
    before = await dkim.record(OP, "acme.example")
    rotated = await dkim.rotate(OP, "acme.example")
    assert rotated.selector == f"{MONTH}b" != before.selector
    assert rotated.value != before.value
    assert (await dkim.record(OP, "acme.example")) == rotated
    assert (await dkim.signing_key("acme.example"))[0] == rotated.selector  # type: ignore[index]
    again = await dkim.rotate(OP, "acme.example")
    assert again.selector == f"{MONTH}c"
    acme = [k for k in await keys(directory) if k.domain_id == (await keys(directory))[0].domain_id]
    assert [(k.selector, k.active) for k in acme] == [
        (MONTH, False), (f"{MONTH}b", False), (f"{MONTH}c", True)
    ]
    # the other domain's key is untouched
    assert (await dkim.record(OP, "globex.example")).selector == MONTH


async def test_a_domain_without_a_key_gets_one_when_asked(directory: Services) -> None:
    await setup(directory)
    async with directory.db.session() as session:
        for key in await session.scalars(select(DkimKey)):
            await session.delete(key)
        await session.commit()
    dkim = DkimService(directory.db)
    assert await dkim.signing_key("acme.example") is None
    record = await dkim.record(OP, "acme.example")
    assert record.selector == MONTH
    assert (await dkim.signing_key("acme.example"))[0] == MONTH  # type: ignore[index]


async def test_signature_verifies_against_the_published_record(directory: Services) -> None:
    await setup(directory)
    dkim = DkimService(directory.db)
    old = await dkim.record(OP, "acme.example")
    public = old.value.split("p=", 1)[1]
    zone = zone_line(old.selector, "acme.example", public, ttl=300)
    assert zone == f"{old.name}. 300 IN TXT " + " ".join(f'"{s}"' for s in old.strings)
    assert len(old.strings) > 1  # a 2048-bit key needs several strings

    signing = await dkim.signing_key("acme.example")
    assert signing is not None
    selector, private_pem = signing
    signed = await sign(MESSAGE, domain="acme.example", selector=selector,
                        private_key=private_pem)
    with dns_server(zone + "\n") as nameserver:
        assert await verify(signed, nameservers=[nameserver])
        assert not await verify(signed.replace(b"Hello.", b"Goodbye."), nameservers=[nameserver])
        # after rotation, the new selector is not published yet: its mail fails ...
        await dkim.rotate(OP, "acme.example")
        selector, private_pem = await dkim.signing_key("acme.example")  # type: ignore[misc]
        resigned = await sign(MESSAGE, domain="acme.example", selector=selector,
                              private_key=private_pem)
        assert not await verify(resigned, nameservers=[nameserver])
        # ... while mail signed before rotation still verifies against the old record
        assert await verify(signed, nameservers=[nameserver])
    new = await dkim.record(OP, "acme.example")
    zone += "\n" + f'{new.name}. 300 IN TXT ' + " ".join(f'"{s}"' for s in new.strings) + "\n"
    with dns_server(zone) as nameserver:
        assert await verify(resigned, nameservers=[nameserver])
        assert await verify(signed, nameservers=[nameserver])


# -- the CLI ---------------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def documented_shape() -> Any:
    section = DOCS.read_text().split("### `mailward domain dkim", 1)[1].split("\n## ", 1)[0]
    return json.loads(section.split("```json\n", 1)[1].split("\n```", 1)[0])


def test_cli_shows_and_rotates_the_record(tenants: Cli, settings: Settings) -> None:
    cli = tenants
    shown = cli("domain", "dkim", "acme.example").stdout
    match = re.fullmatch(
        rf'{MONTH}\._domainkey\.acme\.example\. IN TXT "v=DKIM1; k=rsa; " "p=[^"]+"( "[^"]+")*\n',
        shown,
    )
    assert match, shown

    record = as_json(cli("domain", "dkim", "acme.example", "--json"))
    assert set(record) == set(documented_shape())
    assert record["selector"] == MONTH
    assert record["name"] == f"{MONTH}._domainkey.acme.example"
    assert record["value"].startswith("v=DKIM1; k=rsa; p=")
    assert "".join(record["strings"]) == record["value"]
    assert all(len(s) <= 255 for s in record["strings"])
    assert shown == f"{record['name']}. IN TXT " + " ".join(
        f'"{s}"' for s in record["strings"]
    ) + "\n"

    # an account sees its own domains only
    assert as_json(cli("domain", "dkim", "acme.example", "-a", "Acme", "--json")) == record
    refused = cli("domain", "dkim", "acme.example", "-a", "Globex", code=1)
    assert error_line(refused) == "error: no domain acme.example"

    rotated = cli("domain", "dkim", "acme.example", "--rotate")
    assert f"new DKIM key for acme.example (selector {MONTH}b)" in rotated.stdout
    assert f"{MONTH}b._domainkey.acme.example. IN TXT " in rotated.stdout
    after = as_json(cli("domain", "dkim", "acme.example", "--json"))
    assert after["selector"] == f"{MONTH}b" and after["value"] != record["value"]
    rotated_json = as_json(cli("domain", "dkim", "acme.example", "--rotate", "--json"))
    assert rotated_json["selector"] == f"{MONTH}c"

    async def signing(directory: Services) -> Any:
        return await DkimService(directory.db).signing_key("acme.example")

    assert run_directory(settings, signing)[0] == f"{MONTH}c"
    cli("domain", "dkim", "nowhere.example", code=1)


# -- the API ---------------------------------------------------------------------------------


async def test_api_record_and_rotation_are_tenant_scoped(
    client: httpx.AsyncClient, op: Headers, customers: Tenants
) -> None:
    alice, bob = customers.alice, customers.bob
    mine = await ok(client.get(f"{API}/domains/acme.example/dkim", headers=alice))
    assert mine["domain"] == "acme.example" and mine["selector"] == MONTH
    assert set(mine) == {"domain", "selector", "name", "value", "strings", "created_at"}
    assert await ok(client.get(f"{API}/domains/acme.example/dkim", headers=op)) == mine

    await error(client.get(f"{API}/domains/acme.example/dkim", headers=bob), 404)
    await error(client.post(f"{API}/domains/acme.example/dkim/rotate", headers=bob), 404)
    await error(client.get(f"{API}/domains/nowhere.example/dkim", headers=op), 404)
    assert await ok(client.get(f"{API}/domains/acme.example/dkim", headers=alice)) == mine

    rotated = await ok(client.post(f"{API}/domains/acme.example/dkim/rotate", headers=alice))
    assert rotated["selector"] == f"{MONTH}b" and rotated["value"] != mine["value"]
    assert await ok(client.get(f"{API}/domains/acme.example/dkim", headers=op)) == rotated
    theirs = await ok(client.get(f"{API}/domains/globex.example/dkim", headers=bob))
    assert theirs["selector"] == MONTH
