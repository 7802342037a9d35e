"""Fixtures of the integration tests: the CLI runner against the test database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from api_server import (
    ALICE_PASSWORD,
    API,
    BOB_PASSWORD,
    OPERATOR_PASSWORD,
    Headers,
    Tenants,
    login,
    ok,
    running_server,
)
from cli_helpers import Cli, invoke
from hosting_helpers import hosting  # noqa: F401 - fixture for the hosting-tier tests
from typer.testing import Result

from mailward.config import Settings
from mailward.directory import Actor, Directory


@pytest.fixture
def cli(mailward_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("address", "list", code=0, input=...)`` against the test database."""
    monkeypatch.chdir(tmp_path)  # no stray ./mailward.toml

    def run(
        *args: str, input: str | None = None, code: int = 0, env: dict[str, str] | None = None
    ) -> Result:
        return invoke(list(args), input=input, code=code, env=env)

    return run


@pytest.fixture
def tenants(cli: Cli) -> Cli:
    """Two customer accounts: Acme (acme.example, hosting) and Globex (globex.example)."""
    cli("account", "add", "Acme")
    cli("account", "add", "Globex")
    cli("domain", "add", "acme.example", "--account", "Acme", "--hosting")
    cli("domain", "add", "globex.example", "--account", "Globex")
    return cli


@pytest.fixture
def fresh_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config_env: dict[str, str]
) -> Path:
    """A data dir that does not exist yet, with the default SQLite database in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWARD_CONFIG", raising=False)
    monkeypatch.delenv("MAILWARD_DATABASE_URL", raising=False)
    data_dir = tmp_path / "fresh"
    monkeypatch.setenv("MAILWARD_DATA_DIR", str(data_dir))
    for key, value in config_env.items():
        monkeypatch.setenv(key, value)
    return data_dir


# -- the JSON API over a real socket -------------------------------------------------------


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running_server(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http


@pytest.fixture
async def op(client: httpx.AsyncClient, directory: Directory) -> Headers:
    """Bearer headers of an operator (seeded directly: the API cannot create operators)."""
    await directory.accounts.create_user(Actor.operator(), "root", OPERATOR_PASSWORD)
    return await login(client, "root", OPERATOR_PASSWORD)


@pytest.fixture
async def customers(client: httpx.AsyncClient, op: Headers) -> Tenants:
    for account, domain, user, password in (
        ("Acme", "acme.example", "alice@acme.example", ALICE_PASSWORD),
        ("Globex", "globex.example", "bob@globex.example", BOB_PASSWORD),
    ):
        await ok(client.post(f"{API}/accounts", json={"name": account}, headers=op), 201)
        body = {"name": domain, "account": account, "hosting": True}
        await ok(client.post(f"{API}/domains", json=body, headers=op), 201)
        body = {"login": user, "password": password}
        await ok(client.post(f"{API}/accounts/{account}/users", json=body, headers=op), 201)
    return Tenants(
        alice=await login(client, "alice@acme.example", ALICE_PASSWORD),
        bob=await login(client, "bob@globex.example", BOB_PASSWORD),
    )
