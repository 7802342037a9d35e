"""``mailward trace``: searching traces, a message's story and pruning from the command
line, both backends (the traces are seeded as in ``test_trace_read.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cli_helpers import WIDE, Cli, as_json, documented_shapes, error_line, keys_of, run_directory
from test_trace_read import MESSAGE_ID, SUBJECT, World, seed

from mailward.cli.trace import parse_time
from mailward.config import Settings


@pytest.fixture
def world(cli: Cli, settings: Settings) -> World:
    return run_directory(settings, seed)


def search(cli: Cli, *args: str) -> Any:
    return as_json(cli("trace", "search", "--json", *args))


def ids(found: Any) -> list[str]:
    return [item["trace_id"] for item in found["items"]]


def test_search_as_operator_and_as_an_account(cli: Cli, world: World) -> None:
    w = world
    everything = search(cli)
    assert ids(everything) == [*w.recent, w.refused, w.shared] and everything["next"] is None
    shared = everything["items"][-1]
    assert {k: v for k, v in shared.items() if not k.endswith(("_at", "cursor"))} == {
        "trace_id": w.shared, "sender": "news@sender.example",
        "recipients": ["alice@acme.example", "carol@acme.example", "bob@globex.example",
                       "ext@elsewhere.example"],
        "subject": SUBJECT, "message_id": MESSAGE_ID, "peer": "192.0.2.10",
        "outcome": "delivered", "queue_ids": [w.shared, w.copy], "events": 12}
    assert datetime.fromisoformat(shared["first_at"]) == w.now - timedelta(hours=2)
    assert ids(search(cli, "--account", "Acme")) == [*w.recent, w.shared]
    assert ids(search(cli, "-a", "Globex")) == [w.refused, w.shared]
    globex_view = search(cli, "-a", "Globex", "--queue-id", w.shared)["items"][0]
    assert (globex_view["recipients"], globex_view["outcome"]) == (
        ["bob@globex.example"], "quarantined")
    assert search(cli, "-a", "Acme", "--ip", "198.51.100.7")["items"] == []


def test_search_fields(cli: Cli, world: World) -> None:
    w = world
    assert ids(search(cli, "--sender", "News@Sender.example")) == [w.shared]
    assert ids(search(cli, "--recipient", "bob@globex.example")) == [w.refused, w.shared]
    assert ids(search(cli, "--subject", "quarterly")) == [w.shared]
    assert ids(search(cli, "--message-id", MESSAGE_ID.strip("<>"))) == [w.shared]
    assert ids(search(cli, "--queue-id", w.copy)) == [w.shared]
    assert ids(search(cli, "--ip", "198.51.100.7")) == [w.refused]
    assert ids(search(cli, "--outcome", "refused")) == [w.refused]
    assert ids(search(cli, "--since", "11d", "--until", "1d")) == [w.old]
    since = (w.now - timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%S")
    assert ids(search(cli, "--since", since)) == [*w.recent, w.refused]
    assert ids(search(cli, "--recipient", "alice@acme.example", "--since", "2w")) == [
        w.shared, w.old]


def test_paging(cli: Cli, world: World) -> None:
    w = world
    seen: list[str] = []
    after: list[str] = []
    while True:
        page = search(cli, "--limit", "3", *after)
        seen += ids(page)
        if page["next"] is None:
            break
        after = ["--after", page["next"]]
    assert seen == [*w.recent, w.refused, w.shared]
    table = cli("trace", "search", "-n", "3", env=WIDE).stdout
    more = table.splitlines()[-1]
    assert more.startswith("3 trace(s), newest first (times in UTC); more: --after ")
    rest = cli("trace", "search", "-n", "3", "--after", more.rsplit(" ", 1)[1], "--json")
    assert ids(as_json(rest)) == [*w.recent[3:], w.refused]


def test_human_listing(cli: Cli, world: World) -> None:
    w = world
    lines = cli("trace", "search", env=WIDE).stdout.splitlines()
    row = next(line for line in lines if w.shared in line)
    assert "news@sender.example" in row and SUBJECT in row and "delivered" in row
    assert "bob@globex.example" in row
    refused = next(line for line in lines if w.refused in line)
    assert "refused" in refused and "spammer@bad.example" in refused
    assert lines[-1] == "7 trace(s), newest first (times in UTC)"
    assert cli("trace", "search", "--sender", "nobody@x.example").stdout == "no traces match\n"


def test_show(cli: Cli, world: World) -> None:
    w = world
    story = as_json(cli("trace", "show", w.shared, "--json"))
    assert story["summary"]["trace_id"] == w.shared
    kinds = [e["kind"] for e in story["events"]]
    assert kinds == ["connect", "mail", "rcpt", "rcpt", "rcpt", "data", "verdict", "verdict",
                     "mailbox", "forward", "attempt", "attempt"]
    verdict = story["events"][7]
    assert (verdict["recipient"], verdict["outcome"], verdict["detail"]["score"]) == (
        "bob@globex.example", "quarantined", 12.0)
    acme = as_json(cli("trace", "show", w.copy.lower(), "-a", "Acme", "--json"))
    assert "bob@globex.example" not in {e["recipient"] for e in acme["events"]}
    assert len(acme["events"]) == 10

    text = cli("trace", "show", w.shared, env=WIDE).stdout
    lines = text.splitlines()
    assert lines[0] == f"trace id    {w.shared}"
    assert f"queue ids   {w.shared}, {w.copy}" in lines
    assert "outcome     delivered" in lines
    assert "12 event(s)" in text
    deferred = next(line for line in lines if "deferred" in line)
    assert w.copy in deferred and "ext@elsewhere.example" in deferred
    assert 'reply="451 4.7.1 try later"' in deferred and "server=mx.elsewhere.example" in deferred
    quarantined = next(line for line in lines if "quarantined" in line)
    assert "score=12.0" in quarantined and "findings=bayes" in quarantined
    assert "helo=mx.sender.example" in next(line for line in lines if "connect" in line)

    hidden = cli("trace", "show", w.refused, "--account", "Acme", code=1)
    assert error_line(hidden) == f"error: no trace '{w.refused}'"
    missing = cli("trace", "show", "0123456789ABCDEF", code=1)
    assert error_line(missing) == "error: no trace '0123456789ABCDEF'"


def test_prune(cli: Cli, world: World) -> None:
    w = world
    # the default 30 days: nothing is that old
    assert as_json(cli("trace", "prune", "--json")) == {
        "events": 0, "counts": 0, "top": 0, "gauges": 0, "outbox": 0, "deliveries": 0}
    pruned = cli("trace", "prune", env={"MAILWARD_TRACE_RETENTION_DAYS": "9"}).stdout
    assert pruned.startswith("pruned 4 trace event(s), 0 counter(s)")
    assert cli("trace", "show", w.old, code=1)
    assert as_json(cli("trace", "show", w.shared, "--json"))["summary"]["trace_id"] == w.shared


def test_usage_errors(cli: Cli) -> None:
    for args in (("--since", "yesterday"), ("--limit", "0"), ("--limit", "201")):
        result = cli("trace", "search", *args, code=2)
        assert "Invalid value" in result.stderr or "Usage" in result.stderr
    bad = cli("trace", "search", "--outcome", "lost", code=1)
    assert error_line(bad).startswith("error: outcome must be one of accepted, bounced")
    bad = cli("trace", "search", "--after", "nonsense", code=1)
    assert error_line(bad) == "error: not a trace search cursor: 'nonsense'"


def test_parse_time() -> None:
    now = datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert parse_time("90m", now) == now - timedelta(minutes=90)
    assert parse_time("1w", now) == now - timedelta(days=7)
    assert parse_time("2026-12-01", now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_time("2026-12-01T10:00:00Z", now) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert parse_time("2026-12-01T10:00+02:00", now) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert parse_time(None, now) is None


def test_json_matches_the_documented_shapes(cli: Cli, world: World) -> None:
    """docs/cli.md's trace shapes have the keys the commands print."""
    w = world
    documented = documented_shapes("### Trace JSON shapes")
    actual = {"trace-page": as_json(cli("trace", "search", "--json")),
              "trace-story": as_json(cli("trace", "show", w.shared, "--json")),
              "trace-pruned": as_json(cli("trace", "prune", "--json"))}
    assert sorted(documented) == sorted(actual)
    for name, example in documented.items():
        assert keys_of(actual[name]) == keys_of(example), name
    summary = keys_of(documented["trace-page"]["items"][0])
    assert keys_of(actual["trace-page"]["items"][0]) == summary
    assert keys_of(actual["trace-story"]["summary"]) == summary
    event = keys_of(documented["trace-story"]["events"][0])  # detail: what the event says
    assert {key: keys_of(value) for key, value in actual["trace-story"]["events"][0].items()
            if key != "detail"} == {key: value for key, value in event.items()
                                    if key != "detail"}
