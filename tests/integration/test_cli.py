"""The ``mailward`` command line against a real database (SQLite and PostgreSQL).

Most tests drive the Typer app in-process with ``CliRunner`` (the ``mailward_env``
fixture points it at the test database); a few run the real console script and
``python -m mailward`` as subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mailward.cli import app
from mailward.config import Settings
from mailward.db import Database
from mailward.directory import Directory

FAST_HASHING_ENV = {
    "MAILWARD_ARGON2_TIME_COST": "1",
    "MAILWARD_ARGON2_MEMORY_KIB": "1024",
    "MAILWARD_ARGON2_PARALLELISM": "1",
}
WIDE = {"COLUMNS": "200"}  # keep Rich tables from folding cells in assertions

Cli = Callable[..., Result]


def _invoke(args: list[str], *, input: str | None = None, code: int = 0,
            env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(app, args, input=input, env=env)
    if result.exit_code != code:
        detail = ""
        if result.exc_info and not isinstance(result.exception, SystemExit):
            detail = "".join(traceback.format_exception(*result.exc_info))
        pytest.fail(
            f"mailward {' '.join(args)}: exit {result.exit_code}, wanted {code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{detail}"
        )
    return result


@pytest.fixture
def cli(mailward_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``cli("address", "list", code=0, input=...)`` against the test database."""
    monkeypatch.chdir(tmp_path)  # no stray ./mailward.toml

    def invoke(*args: str, input: str | None = None, code: int = 0,
               env: dict[str, str] | None = None) -> Result:
        return _invoke(list(args), input=input, code=code, env=env)

    return invoke


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def error_line(result: Result) -> str:
    """The ``error:`` line that ends stderr (the test runner leaves prompts before it)."""
    before, _, reason = result.stderr.rpartition("error: ")
    assert before.endswith(("\n", ":")) or not before, result.stderr
    assert reason.endswith("\n") and reason.count("\n") == 1, result.stderr
    return "error: " + reason.rstrip("\n")


@pytest.fixture
def tenants(cli: Cli) -> Cli:
    """Two customer accounts: Acme (acme.example, hosting) and Globex (globex.example)."""
    cli("account", "add", "Acme")
    cli("account", "add", "Globex")
    cli("domain", "add", "acme.example", "--account", "Acme", "--hosting")
    cli("domain", "add", "globex.example", "--account", "Globex")
    return cli


def run_directory(settings: Settings, action: Callable[[Directory], Any]) -> Any:
    async def go() -> Any:
        db = Database(settings.db_url)
        try:
            return await action(Directory(db, settings))
        finally:
            await db.dispose()

    return asyncio.run(go())


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


@pytest.fixture
def fresh_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir that does not exist yet, with the default SQLite database in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWARD_CONFIG", raising=False)
    monkeypatch.delenv("MAILWARD_DATABASE_URL", raising=False)
    data_dir = tmp_path / "fresh"
    monkeypatch.setenv("MAILWARD_DATA_DIR", str(data_dir))
    for key, value in FAST_HASHING_ENV.items():
        monkeypatch.setenv(key, value)
    return data_dir


def test_init_on_a_fresh_install(fresh_env: Path) -> None:
    check = _invoke(["init", "--check"], code=1)
    assert "needs migrating" in check.stdout
    assert not fresh_env.exists()  # --check creates nothing

    created = json.loads(_invoke(["init", "--json"]).stdout)
    assert created["database"] == "migrated"
    assert created["operator_created"] is True and created["login"] == "admin"
    assert created["credentials_file"] == str(fresh_env / "initial-operator.txt")
    assert (fresh_env / "mailward.db").is_file()
    assert stat.S_IMODE((fresh_env / "initial-operator.txt").stat().st_mode) == 0o600
    assert created["password"] in (fresh_env / "initial-operator.txt").read_text()
    _invoke(["init", "--check"])


def test_commands_before_init_and_bad_config(fresh_env: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _invoke(["init"])
    (fresh_env / "mailward.db").unlink()
    result = _invoke(["account", "list"], code=1)
    assert result.stderr == (
        "error: database: no such table: accounts (run `mailward init` first)\n"
    )
    monkeypatch.setenv("MAILWARD_PORT_WEB", "not-a-port")
    result = _invoke(["account", "list"], code=1)
    assert result.stderr.startswith("error: invalid configuration: port_web: ")
    assert len(result.stderr.splitlines()) == 1


def test_version() -> None:
    assert _invoke(["--version"]).stdout.startswith("mailward 0.1")


# -- accounts, users, tokens ------------------------------------------------------------


def test_account_commands(cli: Cli) -> None:
    assert cli("account", "add", "Acme").stdout == "added account Acme\n"
    duplicate = cli("account", "add", "Acme", code=1)
    assert duplicate.stderr == "error: account 'Acme' already exists\n"
    created = as_json(cli("account", "add", "  Globex   Corp ", "--json"))
    assert set(created) == {"id", "name", "created_at"} and created["name"] == "Globex Corp"

    listed = as_json(cli("account", "list", "--json"))
    assert [a["name"] for a in listed] == ["Acme", "Globex Corp"]
    assert "Globex Corp" in cli("account", "list", env=WIDE).stdout

    cli("domain", "add", "acme.example", "--account", "Acme")
    refused = cli("account", "delete", "Acme", code=1)
    assert refused.stderr == "error: account 'Acme' still owns 1 domain(s)\n"
    cli("domain", "delete", "acme.example", "--yes")
    assert as_json(cli("account", "delete", "Acme", "--json")) == {"deleted": "Acme"}
    assert cli("account", "delete", "Acme", code=1).stderr == "error: no account 'Acme'\n"
    assert [a["name"] for a in as_json(cli("account", "list", "--json"))] == ["Globex Corp"]


def test_users_and_tokens(cli: Cli, settings: Settings) -> None:
    cli("account", "add", "Acme")
    added = cli("user", "add", "Ops", "--password-stdin", input="Secret-pass1\n")
    assert added.stdout == "added operator user ops\n"

    mismatch = cli("user", "add", "alice", "--account", "Acme",
                   input="Secret-pass1\nSecret-pass2\n", code=1)
    assert error_line(mismatch) == "error: passwords do not match"
    weak = cli("user", "add", "alice", "--password-stdin", input="short\n", code=1)
    assert weak.stderr == "error: password must be at least 8 characters\n"
    alice = as_json(cli("user", "add", "alice", "--account", "Acme", "--json",
                        input="Rabbit-hole9\nRabbit-hole9\n"))
    assert alice == {"id": alice["id"], "login": "alice", "role": "account-admin",
                     "account": "Acme"}
    assert "Rabbit-hole9" not in cli("account", "list").stdout
    actor = run_directory(settings, lambda d: d.accounts.authenticate("alice", "Rabbit-hole9"))
    assert actor is not None and not actor.is_operator

    plain = cli("token", "create", "ops")
    token = plain.stdout.strip()
    assert token.startswith("mw_") and len(plain.stdout.splitlines()) == 1
    assert "shown only now" in plain.stderr
    assert run_directory(settings, lambda d: d.accounts.actor_for_token(token)).is_operator
    named = as_json(cli("token", "create", "alice", "--name", "backup", "--json"))
    assert set(named) == {"id", "name", "login", "token"}
    assert (named["name"], named["login"]) == ("backup", "alice")
    assert cli("token", "create", "nobody", code=1).stderr == "error: no user 'nobody'\n"


# -- domains ----------------------------------------------------------------------------


def test_domain_commands(tenants: Cli) -> None:
    cli = tenants
    idn = as_json(cli("domain", "add", "Bücher.Example", "--account", "Globex", "--json"))
    assert idn == {
        "name": "xn--bcher-kva.example", "display_name": "bücher.example", "account": "Globex",
        "hosting": False, "created_at": idn["created_at"],
    }
    taken = cli("domain", "add", "ACME.example.", "--account", "Globex", code=1)
    assert taken.stderr == "error: domain acme.example is already in use\n"
    missing = cli("domain", "add", "new.example", "--account", "Nope", code=1)
    assert missing.stderr == "error: no account 'Nope'\n"

    everything = as_json(cli("domain", "list", "--json"))
    assert [(d["name"], d["account"], d["hosting"]) for d in everything] == [
        ("acme.example", "Acme", True), ("globex.example", "Globex", False),
        ("xn--bcher-kva.example", "Globex", False),
    ]
    globex = as_json(cli("domain", "list", "--account", "Globex", "--json"))
    assert [d["name"] for d in globex] == ["globex.example", "xn--bcher-kva.example"]
    assert "bücher.example (xn--bcher-kva.example)" in cli("domain", "list", env=WIDE).stdout
    cli("address", "add", "--list", "filter", input="Info@Bücher.example\n")
    found = as_json(cli("address", "list", "--domain", "BÜCHER.example.", "--json"))
    assert [a["email"] for a in found["items"]] == ["info@xn--bcher-kva.example"]

    assert cli("domain", "hosting", "globex.example", "on").stdout == (
        "hosting on for globex.example\n"
    )
    assert as_json(cli("domain", "hosting", "acme.example", "OFF", "--json"))["hosting"] is False
    cli("domain", "hosting", "acme.example", "maybe", code=2)
    refused = cli("domain", "hosting", "acme.example", "on", "--account", "Acme", code=2)
    assert "--account" in refused.stderr  # operator-only commands take no --account

    cli("address", "add", "--list", "filter", input="info@globex.example\n")
    busy = cli("domain", "delete", "globex.example", "--yes", code=1)
    assert busy.stderr == "error: domain globex.example still has 1 address(es)\n"
    declined = cli("domain", "delete", "globex.example", "--force", input="n\n", code=1)
    assert "Delete domain globex.example and its 1 address(es)?" in declined.stderr
    cli("domain", "delete", "globex.example", "--force", "--json", code=2)
    deleted = as_json(cli("domain", "delete", "globex.example", "--force", "--yes", "--json"))
    assert deleted == {"domain": "globex.example", "deleted_addresses": 1}
    accepted = cli("domain", "delete", "bücher.example", "--force", input="y\n")
    assert accepted.stdout.endswith(
        "deleted domain xn--bcher-kva.example and its 1 address(es)\n"
    )
    assert [d["name"] for d in as_json(cli("domain", "list", "--json"))] == ["acme.example"]


# -- bulk add ---------------------------------------------------------------------------

BULK_FILE = """\
new@acme.example
   \t
box@ACME.example|Secret-pass1
fw@acme.example|a@x.example, b@x.example|relay

not-an-address
someone@globex.example
moved@acme.example
same@acme.example
typo@acme.example|Secret-pass2|rely
weak@acme.example|abc
fwd@acme.example|Secret-pass3
x@acme.example|a|b|c
box@acme.example
"""

EXPECTED_BULK = [
    # line, status, address, kind, reason (prefix), warning (prefix)
    (1, "added", "new@acme.example", "pending", None, None),
    (3, "added", "box@acme.example", "mailbox", None, None),
    (4, "added", "fw@acme.example", "forwarder", None, None),
    (6, "invalid", None, None, "'not-an-address' is not a valid address: ", None),
    (7, "invalid", "someone@globex.example", None,
     "globex.example is not one of your domains", None),
    (8, "updated", "moved@acme.example", "pending", None, None),
    (9, "unchanged", "same@acme.example", "pending", None, None),
    (10, "added", "typo@acme.example", "mailbox", None,
     "third field is 'rely', not 'relay': set up as a mailbox whose password is the second "
     "field; add '|relay' if a forwarder was meant"),
    (11, "invalid", "weak@acme.example", None, "password must be at least 8 characters", None),
    (12, "invalid", "fwd@acme.example", "forwarder",
     "is an alias/forwarder: giving it a password would drop its forwarding; set it up "
     "again explicitly", None),
    (13, "invalid", None, None, "4 '|'-separated fields; at most 3 are allowed",
     None),
    (14, "unchanged", "box@acme.example", "mailbox", None, None),
]


def _bulk_fixture(cli: Cli, tmp_path: Path) -> Path:
    """Acme with addresses already on each list, and the bulk file to add to "filter"."""
    cli("address", "add", "--account", "Acme", "--list", "no-filter",
        input="moved@acme.example\nfwd@acme.example|dest@elsewhere.example|relay\n")
    cli("address", "add", "--account", "Acme", "--list", "filter", input="same@acme.example\n")
    path = tmp_path / "addresses.txt"
    path.write_text(BULK_FILE)
    return path


def test_bulk_add_json_reports_every_category(tenants: Cli, tmp_path: Path) -> None:
    path = _bulk_fixture(tenants, tmp_path)
    result = tenants("address", "add", "--account", "Acme", "--list", "filter", "--json",
                     str(path), code=1)
    data = as_json(result)
    assert list(data) == ["list", "counts", "results"]
    assert data["list"] == "filter"
    assert data["counts"] == {
        "invalid": 5, "added": 4, "updated": 1, "unchanged": 2, "warnings": 1,
    }
    assert all(
        set(r) == {"line", "input", "status", "address", "kind", "reason", "warning"}
        for r in data["results"]
    )
    got = [(r["line"], r["status"], r["address"], r["kind"]) for r in data["results"]]
    assert got == [row[:4] for row in EXPECTED_BULK]
    for row, (*_, reason, warning) in zip(data["results"], EXPECTED_BULK, strict=True):
        if reason is None:
            assert row["reason"] is None
        else:
            assert row["reason"].startswith(reason), row
        assert row["warning"] == warning
    assert [r["input"] for r in data["results"] if r["line"] in (6, 11)] == [
        "not-an-address", "weak@acme.example",  # the address part only: no password
    ]
    assert "Secret-pass" not in result.stdout + result.stderr

    # the valid lines were applied; the invalid ones changed nothing
    shown = {a["email"]: a for a in as_json(
        tenants("address", "list", "--account", "Acme", "--json"))["items"]}
    assert {e: (a["list"], a["kind"]) for e, a in shown.items()} == {
        "box@acme.example": ("filter", "mailbox"),
        "fw@acme.example": ("filter", "forwarder"),
        "fwd@acme.example": ("no-filter", "forwarder"),
        "moved@acme.example": ("filter", "pending"),
        "new@acme.example": ("filter", "pending"),
        "same@acme.example": ("filter", "pending"),
        "typo@acme.example": ("filter", "mailbox"),
    }
    assert shown["fw@acme.example"]["destinations"] == ["a@x.example", "b@x.example"]


def test_bulk_add_human_report(tenants: Cli, tmp_path: Path) -> None:
    path = _bulk_fixture(tenants, tmp_path)
    result = tenants("address", "add", "-a", "Acme", "-l", "filter", str(path), code=1)
    lines = result.stdout.splitlines()

    def section(title: str) -> list[str]:
        start = next(i for i, line in enumerate(lines) if line.startswith(title))
        end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")),
                   len(lines))
        return lines[start:end]

    invalid = section("Invalid")
    assert invalid[0] == (
        "Invalid: not a valid line or not one of your domains; not applied (5):"
    )
    assert invalid[1].startswith("  line 6: not-an-address: 'not-an-address' is not a valid")
    assert invalid[2:] == [
        "  line 7: someone@globex.example: globex.example is not one of your domains",
        "  line 11: weak@acme.example: password must be at least 8 characters",
        "  line 12: fwd@acme.example: is an alias/forwarder: giving it a password would drop "
        "its forwarding; set it up again explicitly",
        "  line 13: x@acme.example: 4 '|'-separated fields; at most 3 are allowed",
    ]
    assert section("Added") == [
        "Added to filter (4):",
        "  line 1: new@acme.example (pending, needs setup)",
        "  line 3: box@acme.example (mailbox)",
        "  line 4: fw@acme.example (forwarder)",
        "  line 10: typo@acme.example (mailbox)",
    ]
    assert section("Updated") == [
        "Updated: moved from no-filter to filter (1):",
        "  line 8: moved@acme.example (pending, needs setup)",
    ]
    assert section("Unchanged") == [
        "Unchanged: already on filter (2):",
        "  line 9: same@acme.example (pending, needs setup)",
        "  line 14: box@acme.example (mailbox)",
    ]
    assert section("Warnings") == [
        "Warnings (1):",
        "  line 10: typo@acme.example: third field is 'rely', not 'relay': set up as a "
        "mailbox whose password is the second field; add '|relay' if a forwarder was meant",
    ]
    assert lines[-2:] == [
        "4 added, 1 updated, 2 unchanged, 5 invalid, 1 warning(s)",
        "5 invalid line(s) were not applied; the other 7 line(s) were applied.",
    ]
    assert "Secret-pass" not in result.stdout + result.stderr


def test_bulk_add_large_input_all_valid(tenants: Cli, tmp_path: Path) -> None:
    count = 1500  # above the progress-bar threshold
    path = tmp_path / "many.txt"
    path.write_text("".join(f"user{n:05d}@acme.example\n\n" for n in range(count)))
    result = tenants("address", "add", "--list", "no-filter", "--summary", str(path))
    assert result.stdout == f"{count} added, 0 updated, 0 unchanged, 0 invalid, 0 warning(s)\n"

    page = as_json(tenants("address", "list", "--list", "no-filter", "--per-page", "500",
                           "--page", "3", "--json"))
    assert (page["total"], page["pages"], len(page["items"])) == (count, 3, 500)
    assert page["items"][-1]["email"] == f"user{count - 1:05d}@acme.example"
    stdin = tenants("address", "add", "--list", "filter", "--json", "-", input=path.read_text())
    counts = as_json(stdin)["counts"]
    assert counts == {"invalid": 0, "added": 0, "updated": count, "unchanged": 0,
                      "warnings": 0}


def test_bulk_add_input_problems(tenants: Cli, tmp_path: Path) -> None:
    empty = tenants("address", "add", "--list", "filter", input="\n  \n")
    assert empty.stdout == "no address lines in the input (blank lines are ignored)\n"
    assert as_json(tenants("address", "add", "--list", "filter", "--json", input="")) == {
        "list": "filter",
        "counts": {"invalid": 0, "added": 0, "updated": 0, "unchanged": 0, "warnings": 0},
        "results": [],
    }
    missing = tenants("address", "add", "--list", "filter", str(tmp_path / "nope.txt"), code=2)
    assert "cannot read" in missing.stderr
    tenants("address", "add", input="a@acme.example\n", code=2)  # --list is required
    tenants("address", "add", "--list", "both", input="a@acme.example\n", code=2)


# -- set-up and editing -----------------------------------------------------------------


def test_setup_and_edit_addresses(tenants: Cli) -> None:
    cli = tenants
    cli("address", "add", "-a", "Acme", "--list", "filter",
        input="box@acme.example\nfw@acme.example\nother@acme.example\n")

    mismatch = cli("address", "setup", "box@acme.example", "--mailbox",
                   input="Secret-pass1\nSecret-pass2\n", code=1)
    assert error_line(mismatch) == "error: passwords do not match"
    assert "Secret-pass" not in mismatch.stdout + mismatch.stderr
    assert as_json(cli("address", "show", "box@acme.example", "--json"))["kind"] == "pending"

    weak = cli("address", "setup", "box@acme.example", "--mailbox", "--password-stdin",
               input="box@acme.example\n", code=1)
    assert weak.stderr == "error: password may not contain the address\n"
    done = cli("address", "setup", "Box@Acme.example", "--mailbox", "-a", "Acme",
               input="Secret-pass1\nSecret-pass1\n")
    assert done.stdout.strip().endswith("box@acme.example is set up as a mailbox")
    again = cli("address", "setup", "box@acme.example", "--forward", "x@y.example", code=1)
    assert again.stderr == "error: box@acme.example is already set up as mailbox\n"

    fw = as_json(cli("address", "setup", "fw@acme.example", "--forward",
                     "a@x.example,b@x.example", "--json"))
    assert (fw["kind"], fw["destinations"]) == ("forwarder", ["a@x.example", "b@x.example"])
    loop = cli("address", "forward", "fw@acme.example", "fw@acme.example", code=1)
    assert loop.stderr == (
        "error: destination 'fw@acme.example' is the address itself (a mail loop)\n"
    )
    too_long = cli("address", "forward", "fw@acme.example",
                   ",".join(f"user{n}@destination.example" for n in range(6)), code=1)
    assert too_long.stderr.startswith("error: destination is ")
    changed = cli("address", "forward", "fw@acme.example", "c@x.example")
    assert changed.stdout == "fw@acme.example forwards to c@x.example\n"

    refused = cli("address", "autocc", "fw@acme.example", "d@x.example", code=1)
    assert refused.stderr == (
        "error: fw@acme.example is an alias/forwarder: it has no mailbox, so it cannot auto-cc\n"
    )
    assert as_json(cli("address", "show", "fw@acme.example", "--json"))["kind"] == "forwarder"
    pending = cli("address", "autocc", "other@acme.example", "d@x.example", code=1)
    assert pending.stderr == "error: other@acme.example needs setting up as a mailbox first\n"

    autocc = as_json(cli("address", "autocc", "box@acme.example", "d@x.example", "--json"))
    assert (autocc["kind"], autocc["destinations"]) == ("autocc", ["d@x.example"])
    shown = cli("address", "show", "box@acme.example").stdout
    assert "mailbox → auto-cc" in shown and "d@x.example" in shown
    assert cli("address", "password", "box@acme.example", "--password-stdin",
               input="Newer-pass2\n").stdout == "password changed for box@acme.example\n"
    no_password = cli("address", "password", "fw@acme.example", "--password-stdin",
                      input="Newer-pass2\n", code=1)
    assert no_password.stderr.startswith("error: fw@acme.example is forwarder: it has no")
    plain = as_json(cli("address", "autocc", "box@acme.example", "--remove", "--json"))
    assert (plain["kind"], plain["destinations"]) == ("mailbox", [])
    cli("address", "autocc", "box@acme.example", "--remove", code=1)

    moved = as_json(cli("address", "move", "box@acme.example", "--list", "no-filter", "--json"))
    assert moved["list"] == "no-filter"
    assert cli("address", "show", "nobody@acme.example", code=1).stderr == (
        "error: no address 'nobody@acme.example'\n"
    )

    # wrong combinations are usage errors (exit 2)
    cli("address", "setup", "other@acme.example", code=2)
    cli("address", "setup", "other@acme.example", "--mailbox", "--forward", "a@x.example",
        code=2)
    cli("address", "setup", "other@acme.example", "--forward", "a@x.example",
        "--password-stdin", code=2)
    cli("address", "autocc", "box@acme.example", code=2)
    cli("address", "autocc", "box@acme.example", "d@x.example", "--remove", code=2)


# -- scoping ----------------------------------------------------------------------------


def test_account_scoping(tenants: Cli) -> None:
    cli = tenants
    cli("address", "add", "-a", "Acme", "--list", "filter",
        input="info@acme.example\nsales@acme.example|Secret-pass1\n")
    cli("address", "add", "-a", "Globex", "--list", "filter", input="info@globex.example\n")
    before = as_json(cli("address", "list", "-a", "Acme", "--json"))

    seen = as_json(cli("address", "list", "-a", "Globex", "--json"))
    assert [a["email"] for a in seen["items"]] == ["info@globex.example"]
    assert seen["total"] == 1
    assert as_json(cli("address", "list", "-a", "Globex", "--search", "acme", "--json")) == {
        "items": [], "total": 0, "page": 1, "per_page": 50, "pages": 1,
    }
    assert [d["name"] for d in as_json(cli("domain", "list", "-a", "Globex", "--json"))] == [
        "globex.example",
    ]

    not_found = "error: no address 'info@acme.example'\n"
    assert cli("address", "show", "info@acme.example", "-a", "Globex", code=1).stderr == (
        not_found
    )
    assert cli("address", "delete", "info@acme.example", "-a", "Globex", "--yes",
               code=1).stderr == not_found
    mixed = cli("address", "delete", "info@globex.example", "info@acme.example", "-a",
                "Globex", "--yes", code=1)
    assert mixed.stderr == not_found  # all or none: Globex's own address is kept too
    cli("address", "setup", "info@acme.example", "--forward", "x@y.example", "-a", "Globex",
        code=1)
    cli("address", "move", "info@acme.example", "--list", "no-filter", "-a", "Globex", code=1)
    cli("address", "password", "sales@acme.example", "--password-stdin", "-a", "Globex",
        input="Hijack-pass1\n", code=1)
    bulk = as_json(cli("address", "add", "-a", "Globex", "--list", "no-filter", "--json",
                       input="info@acme.example\n", code=1))
    assert bulk["results"][0]["reason"] == "acme.example is not one of your domains"
    wiped = as_json(cli("address", "delete", "--all", "--yes", "-a", "Globex", "--json"))
    assert wiped == {"count": 1, "addresses": None}  # only its own
    by_domain = cli("address", "delete", "--all", "--domain", "acme.example", "-a", "Globex",
                    input="y\n")
    assert by_domain.stdout == "no addresses match\n"

    assert as_json(cli("address", "list", "-a", "Acme", "--json")) == before
    assert as_json(cli("address", "list", "--json"))["total"] == 2
    unknown = cli("address", "list", "--account", "Nope", code=1)
    assert unknown.stderr == "error: no account 'Nope'\n"
    operator_view = cli("account", "list")
    assert "Acme" in operator_view.stdout and "Globex" in operator_view.stdout


# -- search, pagination, delete ---------------------------------------------------------


def _populate(cli: Cli) -> None:
    cli("address", "add", "--list", "filter", input="".join(
        f"sales{n}@acme.example\n" for n in range(1, 6)
    ) + "info@acme.example|Secret-pass1\nhelp@acme.example|a@x.example|relay\n")
    cli("address", "add", "--list", "no-filter", input=(
        "sales@globex.example\ninfo@globex.example\nceo@globex.example|Secret-pass1\n"
        "bounce@acme.example\nsales_x@acme.example\n"
    ))


def test_search_filter_and_pagination(tenants: Cli) -> None:
    cli = tenants
    _populate(cli)

    def emails(*args: str) -> list[str]:
        return [a["email"] for a in as_json(cli("address", "list", "--json", *args))["items"]]

    assert emails("--search", "SALES") == [
        "sales1@acme.example", "sales2@acme.example", "sales3@acme.example",
        "sales4@acme.example", "sales5@acme.example", "sales@globex.example",
        "sales_x@acme.example",
    ]
    assert emails("--search", "sales_") == ["sales_x@acme.example"]  # '_' is literal
    assert emails("--domain", "globex.example") == [
        "ceo@globex.example", "info@globex.example", "sales@globex.example",
    ]
    assert emails("--list", "no-filter", "--domain", "acme.example") == [
        "bounce@acme.example", "sales_x@acme.example",
    ]
    assert emails("--kind", "mailbox") == ["ceo@globex.example", "info@acme.example"]
    assert emails("--kind", "forwarder") == ["help@acme.example"]
    assert emails("--search", "info", "--account", "Acme") == ["info@acme.example"]

    page = as_json(cli("address", "list", "--per-page", "5", "--page", "2", "--json"))
    assert list(page) == ["items", "total", "page", "per_page", "pages"]
    assert (page["total"], page["page"], page["per_page"], page["pages"]) == (12, 2, 5, 3)
    assert [a["email"] for a in page["items"]] == [
        "sales1@acme.example", "sales2@acme.example", "sales3@acme.example",
        "sales4@acme.example", "sales5@acme.example",
    ]
    assert set(page["items"][0]) == {
        "email", "domain", "list", "kind", "destinations", "quota_bytes", "used_bytes",
        "needs_setup",
    }
    assert page["items"][0]["needs_setup"] is True
    assert as_json(cli("address", "list", "--page", "9", "--json"))["items"] == []

    table = cli("address", "list", "--per-page", "5", "--page", "3", env=WIDE).stdout
    assert table.splitlines()[-1] == "11-12 of 12 address(es), page 3 of 3"
    sales_x = next(line for line in table.splitlines() if "sales_x@acme.example" in line)
    assert "no-filter" in sales_x and "needs setup" in sales_x
    info = next(line for line in cli("address", "list", "--search", "info@acme",
                                     env=WIDE).stdout.splitlines() if "info@acme" in line)
    assert "mailbox" in info and "0 B / 2 GB" in info and "needs setup" not in info
    assert cli("address", "list", "--search", "zzz").stdout == "no addresses match\n"
    bad = cli("address", "list", "--per-page", "0", code=1)
    assert bad.stderr == "error: per_page must be between 1 and 500\n"
    cli("address", "list", "--kind", "mailboxes", code=2)


def test_delete_one_several_and_all_matching(tenants: Cli) -> None:
    cli = tenants
    _populate(cli)

    def total(*args: str) -> int:
        return as_json(cli("address", "list", "--json", *args))["total"]

    one = cli("address", "delete", "help@acme.example", "--yes")
    assert one.stdout == "deleted 1 address(es): help@acme.example\n"
    declined = cli("address", "delete", "sales1@acme.example", "sales2@acme.example",
                   input="n\n", code=1)
    assert "Delete 2 address(es): sales1@acme.example, sales2@acme.example?" in declined.stderr
    assert total() == 11
    several = cli("address", "delete", "sales1@acme.example", "SALES2@acme.example",
                  input="y\n")
    assert several.stdout.strip().endswith(
        "deleted 2 address(es): sales1@acme.example, sales2@acme.example"
    )
    missing = cli("address", "delete", "sales3@acme.example", "gone@acme.example", "--yes",
                  code=1)
    assert missing.stderr == "error: no address 'gone@acme.example'\n"
    assert total("--search", "sales3") == 1  # all or none
    as_list = as_json(cli("address", "delete", "sales3@acme.example", "--yes", "--json"))
    assert as_list == {"count": 1, "addresses": ["sales3@acme.example"]}

    matching = cli("address", "delete", "--all", "--search", "sales", "--domain", "acme.example",
                   input="y\n")
    assert ("Delete all 3 address(es) containing 'sales' of domain acme.example?"
            in matching.stderr)
    assert matching.stdout.strip().endswith("deleted 3 address(es)")
    assert total("--search", "sales") == 1  # sales@globex.example stays
    by_list = as_json(cli("address", "delete", "--all", "--list", "no-filter", "--kind",
                          "mailbox", "--yes", "--json"))
    assert by_list == {"count": 1, "addresses": None}
    assert total() == 4
    cli("address", "delete", "--all", input="n\n", code=1)
    assert total() == 4
    assert cli("address", "delete", "--all", "--yes").stdout == "deleted 4 address(es)\n"
    assert total() == 0

    # usage errors, exit 2
    cli("address", "delete", code=2)
    cli("address", "delete", "a@acme.example", "--all", "--yes", code=2)
    cli("address", "delete", "--search", "a", "--yes", code=2)
    cli("address", "delete", "a@acme.example", "--domain", "acme.example", code=2)
    cli("address", "delete", "--all", "--json", code=2)


# -- the documented --json shapes -------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def documented_shapes() -> dict[str, Any]:
    """The ``#### name`` + JSON example blocks of docs/cli.md's "JSON shapes" section."""
    section = DOCS.read_text().split("## JSON shapes", 1)[1]
    shapes = {}
    for block in section.split("\n#### ")[1:]:
        name = block.split("\n", 1)[0].strip()
        example = block.split("```json\n", 1)[1].split("\n```", 1)[0]
        shapes[name] = json.loads(example)
    return shapes


def keys_of(value: Any) -> Any:
    """The key structure of a JSON value (objects recursively; lists and scalars flat)."""
    if isinstance(value, dict):
        return {key: keys_of(item) for key, item in value.items()}
    return "list" if isinstance(value, list) else "scalar"


def test_json_shapes_match_docs(tenants: Cli) -> None:
    cli = tenants
    actual = {
        "account": as_json(cli("account", "add", "Initech", "--json")),
        "account-deleted": as_json(cli("account", "delete", "Initech", "--json")),
        "user": as_json(cli("user", "add", "bob", "-a", "Acme", "--password-stdin", "--json",
                            input="Bob-pass99\n")),
        "token": as_json(cli("token", "create", "bob", "--json")),
        "domain": as_json(cli("domain", "add", "initech.example", "-a", "Acme", "--json")),
        "bulk": as_json(cli("address", "add", "-l", "filter", "--json", code=1,
                            input="x@initech.example\nnobody@else.example\n")),
        "address": as_json(cli("address", "show", "x@initech.example", "--json")),
        "page": as_json(cli("address", "list", "--json")),
        "address-deleted": as_json(cli("address", "delete", "x@initech.example", "--yes",
                                       "--json")),
        "domain-deleted": as_json(cli("domain", "delete", "initech.example", "--yes",
                                      "--json")),
        "init": as_json(cli("init", "--json")),
        "check": as_json(cli("init", "--check", "--json")),
    }
    documented = documented_shapes()
    assert sorted(documented) == sorted(actual)
    for name, example in documented.items():
        assert keys_of(actual[name]) == keys_of(example), name
    assert keys_of(actual["bulk"]["results"][0]) == keys_of(documented["bulk"]["results"][0])
    assert keys_of(actual["page"]["items"][0]) == keys_of(documented["address"])


# -- serve ------------------------------------------------------------------------------


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Settings, set[str]]]:
    """Stand-in for ``mailward.server`` with its interface: parse_roles() and run()."""
    calls: list[tuple[Settings, set[str]]] = []
    module = types.ModuleType("mailward.server")

    def parse_roles(text: str) -> set[str]:
        roles = {"mx", "delivery", "submission", "imap", "pop3", "web"}
        if text == "all":
            return roles
        chosen = {part.strip() for part in text.split(",")}
        if unknown := chosen - roles:
            raise ValueError(f"unknown role {sorted(unknown)[0]!r}")
        return chosen

    async def run(settings: Settings, roles: set[str] | None = None, *, ready=None) -> None:  # type: ignore[no-untyped-def]
        calls.append((settings, roles or set()))

    module.parse_roles = parse_roles  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mailward.server", module)
    return calls


def test_serve_runs_the_chosen_roles(cli: Cli, settings: Settings,
                                     fake_server: list[tuple[Settings, set[str]]]) -> None:
    cli("serve", "--roles", "web,mx")
    cli("serve")
    assert [(s.db_url, roles) for s, roles in fake_server] == [
        (settings.db_url, {"web", "mx"}),
        (settings.db_url, {"mx", "delivery", "submission", "imap", "pop3", "web"}),
    ]
    bad = cli("serve", "--roles", "web,bogus", code=2)
    assert bad.stderr == "error: unknown role 'bogus'\n"
    assert len(fake_server) == 2


def test_serve_needs_init(fresh_env: Path, fake_server: list[tuple[Settings, set[str]]]) -> None:
    result = _invoke(["serve"], code=1)
    assert "run `mailward init` first" in result.stderr
    assert fake_server == []


# -- the real executables ---------------------------------------------------------------


def _exe(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, input=input, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=60, check=False)


def test_console_script_and_module(mailward_env: dict[str, str], tmp_path: Path) -> None:
    script = str(Path(sys.executable).with_name("mailward"))
    init = _exe(sys.executable, "-m", "mailward", "init", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert "login:    admin" in init.stdout
    added = _exe(script, "account", "add", "Acme", cwd=tmp_path)
    assert (added.returncode, added.stdout) == (0, "added account Acme\n"), added.stderr
    listed = _exe(script, "account", "list", "--json", cwd=tmp_path)
    assert [a["name"] for a in json.loads(listed.stdout)] == ["Acme"]
    again = _exe(script, "account", "add", "Acme", cwd=tmp_path)
    assert (again.returncode, again.stderr) == (1, "error: account 'Acme' already exists\n")
    usage = _exe(sys.executable, "-m", "mailward", "account", "add", cwd=tmp_path)
    assert usage.returncode == 2 and "Usage: mailward account add" in usage.stderr


def test_bulk_add_through_stdin_subprocess(tenants: Cli, tmp_path: Path) -> None:
    script = str(Path(sys.executable).with_name("mailward"))
    lines = "info@acme.example\n\nbob@acme.example|Secret-pass1\ninfo@globex.example\n"
    result = _exe(script, "address", "add", "--account", "Acme", "--list", "filter", "-",
                  cwd=tmp_path, input=lines)
    assert result.returncode == 1, result.stderr
    assert "  line 4: info@globex.example: globex.example is not one of your domains" in (
        result.stdout.splitlines()
    )
    assert "  line 3: bob@acme.example (mailbox)" in result.stdout.splitlines()
    assert "Secret-pass1" not in result.stdout + result.stderr
    as_module = _exe(sys.executable, "-m", "mailward", "address", "add", "--list", "no-filter",
                     "--json", cwd=tmp_path, input="info@acme.example\n")
    assert as_module.returncode == 0, as_module.stderr
    assert json.loads(as_module.stdout)["results"][0]["status"] == "updated"
