"""The hash locks that `make run` and `make test` install from cover pyproject.toml.

`make run` installs requirements/run.txt and `make test` requirements/dev.txt with pip's
``--require-hashes``, then the project itself without its dependencies; a dependency added
to pyproject.toml but not locked (`make lock`) would be missing only on a fresh machine.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def pins(name: str) -> dict[str, tuple[str, int]]:
    """``{package: (version, number of hashes)}`` of ``requirements/<name>``."""
    found: dict[str, tuple[str, int]] = {}
    current = ""
    for line in (REPO / "requirements" / name).read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match[1])
            found[current] = (match[2], 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
    return found


def declared() -> tuple[list[Requirement], list[Requirement]]:
    """``(runtime and build requirements, dev requirements)`` of pyproject.toml."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project, build = pyproject["project"], pyproject["build-system"]["requires"]
    runtime = [Requirement(r) for r in [*project["dependencies"], *build]]
    dev = [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    return runtime, dev


def test_every_dependency_is_locked_at_a_version_it_allows() -> None:
    runtime, dev = declared()
    for lock, wanted in (("run.txt", runtime), ("dev.txt", runtime + dev)):
        locked = pins(lock)
        for requirement in wanted:
            name = canonicalize_name(requirement.name)
            assert name in locked, f"{name} is missing from requirements/{lock}: `make lock`"
            version = locked[name][0]
            assert requirement.specifier.contains(version, prereleases=True), (
                f"requirements/{lock} pins {name}=={version}, pyproject.toml wants "
                f"{requirement.specifier}: `make lock`")


def test_every_pin_has_a_hash_and_both_locks_agree() -> None:
    run, dev = pins("run.txt"), pins("dev.txt")
    assert all(hashes for _, hashes in (run | dev).values())
    assert {name: version for name, (version, _) in run.items()} == {
        name: dev[name][0] for name in run}
