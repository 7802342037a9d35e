"""Fixtures of the integration tests: the CLI runner against the test database."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import Cli, invoke
from typer.testing import Result


@pytest.fixture
def cli(mailward_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("address", "list", code=0, input=...)`` against the test database."""
    monkeypatch.chdir(tmp_path)  # no stray ./mailward.toml

    def run(*args: str, input: str | None = None, code: int = 0,
            env: dict[str, str] | None = None) -> Result:
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
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_hashing_env: dict[str, str]
) -> Path:
    """A data dir that does not exist yet, with the default SQLite database in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWARD_CONFIG", raising=False)
    monkeypatch.delenv("MAILWARD_DATABASE_URL", raising=False)
    data_dir = tmp_path / "fresh"
    monkeypatch.setenv("MAILWARD_DATA_DIR", str(data_dir))
    for key, value in fast_hashing_env.items():
        monkeypatch.setenv(key, value)
    return data_dir
