"""``mailward init``: data dir, migrations, and the first operator user (idempotent)."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from alembic.util import CommandError

from mailward.app import Services
from mailward.config import Settings
from mailward.db import Database
from mailward.db.migrate import head_revision, upgrade
from mailward.directory import Actor, InvalidInput

from .output import EXIT_FAILURE, esc, fail, handled, out, print_json
from .runner import JsonOption, settings
from .schema import is_migrated

INITIAL_LOGIN = "admin"


@dataclass(slots=True)
class InitOutcome:
    migrated: bool  # True when this run applied migrations
    login: str | None = None  # set when this run created the operator
    password: str | None = None


def init(
    check: Annotated[
        bool,
        typer.Option("--check", help="Only report: exit 0 if migrated and an operator exists, "
                                     "else 1. Creates nothing."),
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Create the data dir, migrate the database and create the first operator user."""
    config = settings()
    if check:
        _check(config, json_)
        return
    try:
        config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"cannot create data dir {config.data_dir}: {exc.strerror or exc}")
    with handled():
        try:
            outcome = asyncio.run(_init(config))
        except CommandError as exc:  # e.g. the database is newer than this release
            fail(f"cannot migrate the database: {exc}")
    path = config.operator_credentials_file
    if outcome.password is not None:
        try:
            _write_credentials(path, outcome, config)
        except OSError as exc:
            # The password is printed below, so it is not lost.
            typer.echo(f"warning: cannot write {path}: {exc.strerror or exc}", err=True)
    if json_:
        print_json({
            "database": "migrated" if outcome.migrated else "up-to-date",
            "operator_created": outcome.login is not None,
            "login": outcome.login,
            "password": outcome.password,
            "web_url": config.web_url,
            "credentials_file": str(path) if path.exists() else None,
        })
        return
    _report(config, outcome, path)


async def _init(config: Settings) -> InitOutcome:
    url = config.db_url
    outcome = InitOutcome(migrated=False)
    if not await is_migrated(url):
        await upgrade(url)
        outcome.migrated = True
    db = Database(url)
    try:
        services = Services(db, config)
        if await services.accounts.count_operators():
            return outcome
        password = _new_password(services)
        user = await services.accounts.create_user(
            Actor.operator("init").via("cli"), INITIAL_LOGIN, password
        )
        outcome.login, outcome.password = user.login, password
        return outcome
    finally:
        await db.dispose()


def _new_password(services: Services) -> str:
    """A random password that meets the configured strength rule."""
    nbytes = max(18, services.passwords.min_length)
    while True:
        password = secrets.token_urlsafe(nbytes)[: max(24, services.passwords.min_length)]
        try:
            services.passwords.check_strength(password)
        except InvalidInput:
            continue
        return password


def _write_credentials(path: Path, outcome: InitOutcome, config: Settings) -> None:
    """Write the new login and password to a file only its owner can read (0600)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"# mailward: initial operator credentials, created {stamp}.\n"
        "# Delete this file once the password is stored somewhere safe.\n"
        f"login: {outcome.login}\n"
        f"password: {outcome.password}\n"
        f"web: {config.web_url}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when the file existed with a wider mode
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _report(config: Settings, outcome: InitOutcome, path: Path) -> None:
    console = out()
    if outcome.migrated:
        revision = head_revision(config.db_url)
        console.print(f"database migrated to the newest schema (revision {esc(revision)})")
    else:
        console.print("database is up to date")
    if outcome.password is None:
        console.print("an operator user exists; nothing created")
        if path.exists():
            console.print(f"initial credentials are still in {esc(path)}; delete that file "
                          "once the password is stored elsewhere")
        return
    console.print("created the operator user:")
    console.print(f"  login:    {esc(outcome.login)}")
    console.print(f"  password: {esc(outcome.password)}")
    console.print(f"  web:      {esc(config.web_url)}")
    if path.exists():
        console.print(f"these are also in {esc(path)} (mode 0600); delete that file once the "
                      "password is stored elsewhere")


def _check(config: Settings, json_: bool) -> None:
    async def state() -> tuple[bool, int]:
        if not await is_migrated(config.db_url):
            return False, 0
        db = Database(config.db_url)
        try:
            return True, await Services(db, config).accounts.count_operators()
        finally:
            await db.dispose()

    with handled():
        migrated, operators = asyncio.run(state())
    ready = migrated and operators > 0
    if json_:
        print_json({"migrated": migrated, "operator_exists": operators > 0, "ready": ready})
    elif ready:
        out().print("ready: database up to date, an operator user exists")
    elif not migrated:
        out().print("not initialised: the database needs migrating (run `mailward init`)")
    else:
        out().print("not initialised: no operator user yet (run `mailward init`)")
    if not ready:
        raise typer.Exit(EXIT_FAILURE)
