"""The per-process lookup caches (recipients, routes, domain facts, filter policies): a
hit asks the database nothing; a change is seen at once by the process that made it and,
made by another process, as soon as this one reads the lookup generation again (at most
a second later: here the caches' clock is moved instead of waited for)."""

from __future__ import annotations

import ast
import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

import mailward
from mailward.app import Services
from mailward.config import Settings
from mailward.db import AddressList, Database
from mailward.db.generation import CHECK_SECONDS, WATCHED
from mailward.db.models import Base, LookupGeneration
from mailward.directory import Actor, Verdict
from mailward.filter.policy import PolicyStore
from mailward.routing.routes import Router

OP = Actor.operator()
SRC = Path(mailward.__file__).parent


class Clock:
    """A clock the test moves: nothing expires and no re-check happens by itself."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement ``db`` sends while the block runs."""
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)


@pytest.fixture
async def world(directory: Services) -> AsyncIterator[tuple[Services, Clock]]:
    await directory.accounts.create(OP, "Acme")
    await directory.domains.create(OP, "acme.example", account="Acme")
    await directory.bulk.add_lines(OP, ["ann@acme.example"], AddressList.FILTER)
    await directory.servers.add(OP, "acme.example", "mx.customer.example", preference=10)
    clock = Clock()
    directory.db.lookups.clock = clock
    yield directory, clock


async def _answers(services: Services, settings: Settings) -> tuple[Any, ...]:
    """What the MX and the delivery workers ask for one message to acme.example."""
    ann = await services.recipients.lookup("ann@acme.example")
    bob = await services.recipients.lookup("bob+news@acme.example")
    route = await Router(services.db, settings).route("acme.example", "mx")
    policy = (await PolicyStore(services.db, settings).policies(["ann@acme.example"])
              )["ann@acme.example"]
    return (ann.verdict, bob.verdict, [str(h) for h in route.hops], policy.thresholds.tag,
            [r.sender for r in policy.rules])


BEFORE = (Verdict.ACCEPTED, Verdict.UNLISTED, ["mx.customer.example:25"], 5.0, [])


async def test_cache_hits_ask_the_database_nothing(world: tuple[Services, Clock],
                                                   settings: Settings) -> None:
    services, clock = world
    with statements(services.db) as first:
        assert await _answers(services, settings) == BEFORE
    assert first  # filled from the database
    with statements(services.db) as again:
        assert await _answers(services, settings) == BEFORE
    assert again == []
    clock.now += CHECK_SECONDS  # a second on: one look at the generation, nothing else
    with statements(services.db) as later:
        assert await _answers(services, settings) == BEFORE
    assert len(later) == 1 and "lookup_generation" in later[0]


async def test_this_process_sees_its_changes_at_once(world: tuple[Services, Clock],
                                                     settings: Settings) -> None:
    services, _clock = world  # the clock stands still: only the commits clear the caches
    assert await _answers(services, settings) == BEFORE
    await services.bulk.add_lines(OP, ["bob@acme.example"], AddressList.FILTER)
    await services.servers.edit(OP, "acme.example", "mx.customer.example",
                                host="mx2.customer.example")
    await services.filter.set_policy(OP, {"tag_score": 3.0}, domain="acme.example")
    await services.filter.add_sender(OP, "spam.example", "block", domain="acme.example")
    assert await _answers(services, settings) == (
        Verdict.ACCEPTED, Verdict.ACCEPTED, ["mx2.customer.example:25"], 3.0,
        ["spam.example"])
    await services.addresses.delete(OP, ["ann@acme.example", "bob@acme.example"])
    assert (await services.recipients.lookup("ann@acme.example")).verdict is Verdict.UNLISTED
    # another Database of this process (another pool, same database) clears them too
    other = Database(services.db.url)
    try:
        await Services(other, settings).servers.delete(OP, "acme.example",
                                                       "mx2.customer.example")
    finally:
        await other.dispose()
    route = await Router(services.db, settings).route("acme.example", "mx")
    assert route.hops == () and route.temporary


CHANGES = """
import asyncio
from mailward.app import Services
from mailward.config import load_settings
from mailward.db import AddressList, Database
from mailward.directory import Actor

async def main() -> None:
    op, db = Actor.operator(), Database(load_settings().db_url)
    services = Services(db, load_settings())
    await services.servers.add(op, "acme.example", "mx9.customer.example", preference=5)
    await services.addresses.delete(op, ["ann@acme.example"])
    await services.bulk.add_lines(op, ["carol@acme.example"], AddressList.FILTER)
    await services.filter.add_sender(op, "spam.example", "block", domain="acme.example")
    await db.dispose()

asyncio.run(main())
"""


async def _in_another_process(env: dict[str, str], code: str) -> None:
    """Run ``code`` in a process of its own (another node, or another worker)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()


async def test_another_process_change_is_seen_within_a_second(
    world: tuple[Services, Clock], settings: Settings, mailward_env: dict[str, str]
) -> None:
    services, clock = world
    lookup = services.recipients
    assert await _answers(services, settings) == BEFORE
    assert (await lookup.lookup("carol@acme.example")).verdict is Verdict.UNLISTED
    with statements(services.db) as sent:  # a dictionary attack repeats itself for free
        for _ in range(3):
            assert (await lookup.lookup("carol@acme.example")).verdict is Verdict.UNLISTED
    assert sent == []
    await _in_another_process(mailward_env, CHANGES)
    assert await _answers(services, settings) == BEFORE  # within the second: cached
    assert (await lookup.lookup("carol@acme.example")).verdict is Verdict.UNLISTED
    clock.now += CHECK_SECONDS
    ann, bob, hops, _tag, rules = await _answers(services, settings)
    assert (ann, bob, rules) == (Verdict.UNLISTED, Verdict.UNLISTED, ["spam.example"])
    assert hops == ["mx9.customer.example:25", "mx.customer.example:25"]
    assert (await lookup.lookup("carol@acme.example")).verdict is Verdict.ACCEPTED


async def test_usage_moves_the_generation_only_across_the_quota(
    world: tuple[Services, Clock]
) -> None:
    services, _clock = world
    await services.domains.set_hosting(OP, "acme.example", True)
    await services.bulk.add_lines(OP, ["box@acme.example|Secret-pass-9"],
                                  AddressList.NO_FILTER)
    await services.addresses.set_quota(OP, "box@acme.example", 1000)
    lookup = services.recipients
    found = await lookup.lookup("box@acme.example")
    assert found.address_id is not None and not found.over_quota
    before = await _generation(services.db)
    await lookup.record_usage(found.address_id, 500)  # still room: no cache cleared
    assert await _generation(services.db) == before
    assert not (await lookup.lookup("box@acme.example")).over_quota
    await lookup.record_usage(found.address_id, 1000)  # full: every process must know
    assert await _generation(services.db) == before + 1
    assert (await lookup.lookup("box@acme.example")).over_quota
    await lookup.record_usage(found.address_id, 10)
    assert not (await lookup.lookup("box@acme.example")).over_quota


async def _generation(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(LookupGeneration.value)) or 0)


# -- no write path goes around the generation --------------------------------------------


def _written_table(statement: str) -> str | None:
    words = statement.replace('"', " ").split()
    if len(words) > 2 and words[0].upper() in ("INSERT", "DELETE"):
        return words[2].lower()
    if len(words) > 1 and words[0].upper() == "UPDATE":
        return words[1].lower()
    return None


async def test_every_directory_write_moves_the_generation(
    directory: Services, settings: Settings
) -> None:
    """Each transaction that writes a watched table also moves the counter (watched at
    the wire: whatever path the write took through the ORM)."""
    sync_engine = directory.db.engine.sync_engine
    open_writes: dict[int, set[str]] = {}
    unmoved: list[set[str]] = []

    def sent(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        table = _written_table(statement)
        if table is not None:
            open_writes.setdefault(id(conn), set()).add(table)

    def committed(conn: Any) -> None:
        tables = open_writes.pop(id(conn), set())
        if tables & WATCHED and "lookup_generation" not in tables:
            unmoved.append(tables)

    def rolled_back(conn: Any) -> None:
        open_writes.pop(id(conn), None)

    event.listen(sync_engine, "before_cursor_execute", sent)
    event.listen(sync_engine, "commit", committed)
    event.listen(sync_engine, "rollback", rolled_back)
    try:
        s = directory
        await s.resellers.create(OP, "Resell")  # no watched table
        steps = [
            lambda: s.accounts.create(OP, "Acme"),
            lambda: s.domains.create(OP, "acme.example", account="Acme"),
            lambda: s.domains.set_hosting(OP, "acme.example", True),
            lambda: s.bulk.add_lines(OP, ["ann@acme.example|Secret-pass-9",
                                          "fwd@acme.example"], AddressList.FILTER),
            lambda: s.bulk.add_lines(OP, ["ann@acme.example|Other-pass-9"],
                                     AddressList.FILTER),  # an update in bulk
            lambda: s.addresses.set_quota(OP, "ann@acme.example", 10_000),
            lambda: s.addresses.set_list(OP, "ann@acme.example", AddressList.NO_FILTER),
            lambda: s.addresses.setup_forwarder(OP, "fwd@acme.example", "ann@acme.example"),
            lambda: s.servers.add(OP, "acme.example", "mx.customer.example", preference=10),
            lambda: s.servers.edit(OP, "acme.example", "mx.customer.example",
                                   preference=20),
            lambda: s.servers.delete(OP, "acme.example", "mx.customer.example"),
            lambda: s.servers.auto_configure_hosting(OP, "acme.example"),
            lambda: s.filter.set_policy(OP, {"tag_score": 3.0}, domain="acme.example"),
            lambda: s.filter.set_policy(OP, {"tag_score": 2.0}, address="ann@acme.example"),
            lambda: s.filter.add_sender(OP, "spam.example", "block", domain="acme.example"),
            lambda: s.filter.remove_sender(OP, "spam.example", domain="acme.example"),
            lambda: s.addresses.delete(OP, ["fwd@acme.example"]),
            lambda: s.domains.delete(OP, "acme.example", force=True),
            lambda: s.accounts.delete(OP, "Acme"),
        ]
        for number, step in enumerate(steps):
            before = await _generation(directory.db)
            await step()
            assert await _generation(directory.db) > before, f"step {number} moved nothing"
    finally:
        event.remove(sync_engine, "before_cursor_execute", sent)
        event.remove(sync_engine, "commit", committed)
        event.remove(sync_engine, "rollback", rolled_back)
    assert unmoved == []


def test_every_way_a_watched_row_changes_is_a_watched_write() -> None:
    """A row of a watched table also changes when a row it refers to is deleted (ON
    DELETE): that table must be watched too (reseller deletion only unsets
    ``accounts.reseller_id``, which no lookup reads). Nothing writes a watched table
    around the session (an engine connection, or SQL text the session cannot read)."""
    for name in WATCHED:
        for fk in Base.metadata.tables[name].foreign_keys:
            if fk.ondelete and fk.ondelete.upper() in ("CASCADE", "SET NULL", "SET DEFAULT"):
                assert fk.column.table.name in WATCHED or (
                    name, fk.parent.name) == ("accounts", "reseller_id"), fk
    models = {m.class_.__name__ for m in Base.registry.mappers
              if getattr(m.local_table, "name", None) in WATCHED}
    for path in SRC.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        engine_calls = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                        and n.attr in ("begin", "connect")
                        and isinstance(n.value, ast.Attribute) and n.value.attr == "engine"]
        assert not (engine_calls and names & models), f"{path}: writes around the session?"
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.lower()
                for table in WATCHED:
                    for verb in (f"update {table} ", f"insert into {table}",
                                 f"delete from {table}"):
                        assert verb not in text, f"{path}: SQL text writes {table}"
