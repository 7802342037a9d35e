"""Shared helpers for the ``mailward`` CLI tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from mailward.app import Services
from mailward.cli import app
from mailward.config import Settings
from mailward.db import Database

WIDE = {"COLUMNS": "200"}  # keep Rich tables from folding cells in assertions

Cli = Callable[..., Result]


def invoke(args: list[str], *, input: str | None = None, code: int = 0,
           env: dict[str, str] | None = None) -> Result:
    """Run the Typer app in-process; fail the test unless it exits with ``code``."""
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


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def error_line(result: Result) -> str:
    """The ``error:`` line that ends stderr (the test runner leaves prompts before it)."""
    before, _, reason = result.stderr.rpartition("error: ")
    assert before.endswith(("\n", ":")) or not before, result.stderr
    assert reason.endswith("\n") and reason.count("\n") == 1, result.stderr
    return "error: " + reason.rstrip("\n")


def run_directory(settings: Settings, action: Callable[[Services], Any]) -> Any:
    """Check the database directly, through the services."""
    async def go() -> Any:
        db = Database(settings.db_url)
        try:
            return await action(Services(db, settings))
        finally:
            await db.dispose()

    return asyncio.run(go())


def exe(*args: str, cwd: Path, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a real executable with the test environment."""
    return subprocess.run(args, cwd=cwd, input=input, capture_output=True, text=True,
                          env={**os.environ, **WIDE}, timeout=60, check=False)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def documented_shapes(heading: str) -> dict[str, Any]:
    """The ``#### name`` + JSON example blocks under ``heading`` in docs/cli.md."""
    section = DOCS.read_text().split(heading, 1)[1].split("\n## ", 1)[0]
    shapes = {}
    for block in section.split("\n#### ")[1:]:
        name = block.split("\n", 1)[0].strip()
        shapes[name] = json.loads(block.split("```json\n", 1)[1].split("\n```", 1)[0])
    return shapes


def keys_of(value: Any, items: bool = False) -> Any:
    """The key structure of a JSON value: objects recursively, scalars flat, lists flat or,
    with ``items``, with their first item's structure."""
    if isinstance(value, dict):
        return {key: keys_of(item, items) for key, item in value.items()}
    if isinstance(value, list):
        return ["list", keys_of(value[0], items)] if items and value else "list"
    return "scalar"
