"""The ``mailward`` CLI: init, serve, errors before set-up, and the real executables."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cli_helpers import WIDE, Cli, as_json, exe, invoke, run_directory

from mailward.config import Settings

# -- init --------------------------------------------------------------------------------


def test_init_creates_one_operator_and_is_idempotent(cli: Cli, settings: Settings) -> None:
    assert "no operator user" in cli("init", "--check", code=1).stdout

    first = cli("init")
    assert "database is up to date" in first.stdout  # the fixture migrated it already
    lines = dict(
        line.strip().split(":", 1) for line in first.stdout.splitlines()
        if line.startswith("  ")
    )
    login, password = lines["login"].strip(), lines["password"].strip()
    assert login == "admin" and len(password) >= 16
    assert lines["web"].strip() == settings.web_url

    path = settings.data_dir / "initial-operator.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert f"login: admin\npassword: {password}\nweb: {settings.web_url}\n" in text
    actor = run_directory(settings, lambda d: d.accounts.authenticate("admin", password))
    assert actor is not None and actor.is_operator

    second = cli("init")
    assert "database is up to date" in second.stdout
    assert "an operator user exists; nothing created" in second.stdout
    assert str(path) in second.stdout
    assert password not in second.stdout
    assert run_directory(settings, lambda d: d.accounts.count_operators()) == 1
    assert "ready" in cli("init", "--check").stdout

    again = as_json(cli("init", "--json"))
    assert again == {
        "database": "up-to-date", "operator_created": False, "login": None, "password": None,
        "web_url": settings.web_url, "credentials_file": str(path),
    }
    path.unlink()
    assert "still in" not in cli("init").stdout
    assert as_json(cli("init", "--check", "--json")) == {
        "migrated": True, "operator_exists": True, "ready": True,
    }


def test_init_on_a_fresh_install(fresh_env: Path) -> None:
    check = invoke(["init", "--check"], code=1)
    assert "needs migrating" in check.stdout
    assert not fresh_env.exists()  # --check creates nothing

    created = json.loads(invoke(["init", "--json"]).stdout)
    assert created["database"] == "migrated"
    assert created["operator_created"] is True and created["login"] == "admin"
    assert created["credentials_file"] == str(fresh_env / "initial-operator.txt")
    assert (fresh_env / "mailward.db").is_file()
    assert stat.S_IMODE((fresh_env / "initial-operator.txt").stat().st_mode) == 0o600
    assert created["password"] in (fresh_env / "initial-operator.txt").read_text()
    invoke(["init", "--check"])


def test_commands_before_init_and_bad_config(fresh_env: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    invoke(["init"])
    (fresh_env / "mailward.db").unlink()
    result = invoke(["account", "list"], code=1)
    assert result.stderr == (
        "error: database: no such table: accounts (run `mailward init` first)\n"
    )
    monkeypatch.setenv("MAILWARD_PORT_WEB", "not-a-port")
    result = invoke(["account", "list"], code=1)
    assert result.stderr.startswith("error: invalid configuration: port_web: ")
    assert len(result.stderr.splitlines()) == 1


def test_version() -> None:
    assert invoke(["--version"]).stdout.startswith("mailward 0.1")


# -- serve ------------------------------------------------------------------------------


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Settings, set[str]]]:
    """Record what ``serve`` would run (the real ``parse_roles`` still checks the roles)."""
    import mailward.server

    calls: list[tuple[Settings, set[str]]] = []

    def run_until_stopped(settings: Settings, roles: set[str] | None = None) -> None:
        calls.append((settings, roles or set()))

    monkeypatch.setattr(mailward.server, "run_until_stopped", run_until_stopped)
    return calls


def test_serve_runs_the_chosen_roles(cli: Cli, settings: Settings,
                                     fake_run: list[tuple[Settings, set[str]]]) -> None:
    cli("serve", "--roles", "web")
    cli("serve")
    assert [(s.db_url, roles) for s, roles in fake_run] == [
        (settings.db_url, {"web"}),
        (settings.db_url, {"mx", "delivery", "submission", "imap", "pop3", "managesieve",
                           "web"}),  # "all"
    ]
    bad = cli("serve", "--roles", "web,bogus", code=2)
    assert bad.stderr.startswith("error: unknown role 'bogus' (known: all, mx, ")
    assert len(fake_run) == 2


def test_serve_needs_init(fresh_env: Path, fake_run: list[tuple[Settings, set[str]]]) -> None:
    result = invoke(["serve"], code=1)
    assert "run `mailward init` first" in result.stderr
    assert fake_run == []


def test_serve_on_a_busy_port_is_a_one_line_error(cli: Cli) -> None:
    cli("init")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("serve", env={"MAILWARD_PORT_WEB": str(port)}, code=1)
    assert result.stderr.startswith(
        f"error: web: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_real_serve_answers_and_stops_cleanly_on_sigterm(
    mailward_env: dict[str, str], tmp_path: Path
) -> None:
    assert exe(sys.executable, "-m", "mailward", "init", cwd=tmp_path).returncode == 0
    # every listener on a port of its own choosing: a developer's `make run` may hold the
    # default ones
    ports = ("web", "mx", "submission", "submissions", "imap", "imaps", "pop3", "pop3s",
             "managesieve", "metrics")
    env = {**os.environ, **WIDE, **{f"MAILWARD_PORT_{name.upper()}": "0" for name in ports}}
    with subprocess.Popen(
        [str(Path(sys.executable).with_name("mailward")), "serve"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as server:
        try:
            assert server.stdout is not None
            url = None
            for line in server.stdout:  # ends if the server dies; pytest's timeout is the bound
                if line.startswith("web "):
                    url = line.split()[1]
                    break
            if url is None:  # it died: say why
                server.kill()
                pytest.fail(f"serve did not start: {server.communicate(timeout=10)[1]}")
            assert url.startswith("http://127.0.0.1:")
            page = httpx.get(f"{url}/", timeout=10)
            assert page.status_code == 200 and "mailfilter1.example.net" in page.text
            spec = httpx.get(f"{url}/api/v1/openapi.json", timeout=10).json()
            assert spec["openapi"].startswith("3.1")
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=30) == 0
        finally:
            if server.poll() is None:
                server.kill()


# -- the real executables ---------------------------------------------------------------


def test_console_script_and_module(mailward_env: dict[str, str], tmp_path: Path) -> None:
    script = str(Path(sys.executable).with_name("mailward"))
    init = exe(sys.executable, "-m", "mailward", "init", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "login:    admin" in init.stdout
    added = exe(script, "account", "add", "Acme", cwd=tmp_path)
    assert (added.returncode, added.stdout) == (0, "added account Acme\n"), added.stderr
    listed = exe(script, "account", "list", "--json", cwd=tmp_path)
    assert [a["name"] for a in json.loads(listed.stdout)] == ["Acme"]
    again = exe(script, "account", "add", "Acme", cwd=tmp_path)
    assert (again.returncode, again.stderr) == (1, "error: account 'Acme' already exists\n")
    usage = exe(sys.executable, "-m", "mailward", "account", "add", cwd=tmp_path)
    assert usage.returncode == 2 and "Usage: mailward account add" in usage.stderr


def test_bulk_add_through_stdin_subprocess(tenants: Cli, tmp_path: Path) -> None:
    script = str(Path(sys.executable).with_name("mailward"))
    lines = "info@acme.example\n\nbob@acme.example|Secret-pass1\ninfo@globex.example\n"
    result = exe(script, "address", "add", "--account", "Acme", "--list", "filter", "-",
                  cwd=tmp_path, input=lines)
    assert result.returncode == 1, result.stderr
    assert "  line 4: info@globex.example: globex.example is not one of your domains" in (
        result.stdout.splitlines()
    )
    assert "  line 3: bob@acme.example (mailbox)" in result.stdout.splitlines()
    assert "Secret-pass1" not in result.stdout + result.stderr
    as_module = exe(sys.executable, "-m", "mailward", "address", "add", "--list", "no-filter",
                     "--json", cwd=tmp_path, input="info@acme.example\n")
    assert as_module.returncode == 0, as_module.stderr
    assert json.loads(as_module.stdout)["results"][0]["status"] == "updated"
