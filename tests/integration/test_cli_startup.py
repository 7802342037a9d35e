"""The ``mailward`` command starts light: a command imports only what it needs.

Wall times are printed by ``bench/cli_startup.py``; these tests check the deterministic
part behind them: which modules a real ``mailward`` process has imported after ``--help``
and after a listing, and that the lazily loaded commands behave as the eager ones did.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from cli_helpers import Cli, exe

from mailward.cli import app
from mailward.cli.app import COMMANDS
from mailward.cli.lazy import LazyGroup

# Runs ``mailward ARGS...`` through the console-script entry point inside one interpreter,
# then prints as JSON the modules that process imported.
PROBE = """
import json, sys
from mailward.cli import main
sys.argv = ["mailward", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\nMODULES " + json.dumps([code, sorted(sys.modules)]))
"""

HEAVY = ("sqlalchemy", "alembic", "litestar", "pydantic_settings", "aiosmtpd", "dkim", "dns")
ABOVE_DIRECTORY = ("mailward.app", "mailward.queue", "mailward.filter", "mailward.quarantine",
                   "mailward.routing", "mailward.web", "mailward.server", "mailward.inbound",
                   "mailward.store", "mailward.dns", "litestar", "alembic", "aiosmtpd")


def probe(*args: str, cwd: Path) -> tuple[int, str, set[str]]:
    """Exit code, output before the probe's line, and the modules imported."""
    done = exe(sys.executable, "-c", PROBE, *args, cwd=cwd)
    output, _, line = done.stdout.rpartition("\nMODULES ")
    assert line, f"no module list:\n{done.stdout}\n{done.stderr}"
    code, modules = json.loads(line)
    return code, output, set(modules)


def loaded(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m in prefixes or m.startswith(tuple(
        f"{p}." for p in prefixes)))


def test_help_lists_every_command_without_importing_any(tmp_path: Path) -> None:
    code, output, modules = probe("--help", cwd=tmp_path)
    assert code == 0
    for name, entry in COMMANDS.items():
        assert f" {name} " in output and entry.help in output, name
    assert loaded(modules, HEAVY) == []
    mailward = sorted(m for m in modules if m.startswith("mailward"))
    assert mailward == ["mailward", "mailward.cli", "mailward.cli.app", "mailward.cli.lazy"]


def test_a_listing_imports_the_directory_and_nothing_above_it(cli: Cli, tmp_path: Path) -> None:
    cli("account", "add", "Acme")
    code, output, modules = probe("account", "list", "--json", cwd=tmp_path)
    assert code == 0
    assert [view["name"] for view in json.loads(output)] == ["Acme"]
    assert "mailward.directory" in modules  # it did run the service
    assert loaded(modules, ABOVE_DIRECTORY) == []
    others = {entry.target.partition(":")[0] for entry in COMMANDS.values()}
    others -= {"mailward.cli.accounts"}
    others |= {"mailward.cli.context", "mailward.cli.schema"}  # every service; Alembic
    assert sorted(others & modules) == []


def test_each_help_line_is_the_commands_own() -> None:
    """The registry's one-line help is what the loaded command says of itself, and every
    command module's Typer app or function is where the registry says."""
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    assert list(group.commands) == list(COMMANDS)
    for name, entry in COMMANDS.items():
        command = group.load(name)
        assert command.name == name
        assert (command.help or "").split("\n\n")[0].replace("\n", " ") == entry.help, name


@pytest.mark.parametrize(("args", "message"), [
    (["nosuch"], "No such command 'nosuch'."),
    (["acount", "list"], "No such command 'acount'. Did you mean 'account'?"),
    (["account", "nosuch"], "No such command 'nosuch'."),
    (["--bogus"], "No such option: --bogus"),
])
def test_usage_errors_are_as_before(tmp_path: Path, args: list[str], message: str) -> None:
    done = exe(sys.executable, "-m", "mailward", *args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Usage: mailward" in done.stderr


def test_groups_and_commands_still_show_their_own_help(tmp_path: Path) -> None:
    bare = exe(sys.executable, "-m", "mailward", cwd=tmp_path)
    assert bare.returncode == 2 and "Usage: mailward [OPTIONS] COMMAND" in bare.stdout
    group = exe(sys.executable, "-m", "mailward", "account", cwd=tmp_path)
    assert group.returncode == 2
    for line in ("Usage: mailward account [OPTIONS] COMMAND", "Customer accounts (operator only).",
                 "List customer accounts.", "Create a customer account"):
        assert line in group.stdout
    command = exe(sys.executable, "-m", "mailward", "queue", "list", "--help", cwd=tmp_path)
    assert command.returncode == 0
    assert "Usage: mailward queue list [OPTIONS]" in command.stdout
    assert "--json" in command.stdout
    version = exe(sys.executable, "-m", "mailward", "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("mailward ")


def test_completing_a_command_name_imports_no_command(tmp_path: Path) -> None:
    code = (
        "import json, sys, typer.main\n"
        "from mailward.cli import app\n"
        "group = typer.main.get_command(app)\n"
        "ctx = group.make_context('mailward', [], resilient_parsing=True)\n"
        "names = [c.value for c in group.shell_complete(ctx, 'a')]\n"
        "print(json.dumps([names, sorted(sys.modules)]))\n"
    )
    done = exe(sys.executable, "-c", code, cwd=tmp_path)
    names, modules = json.loads(done.stdout)
    assert names == ["account", "address", "audit"]
    assert loaded(set(modules), ("mailward.cli.accounts", *HEAVY)) == []
