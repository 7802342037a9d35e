"""``mailward queue``: the mail queue from the command line, both backends.

The seeding helpers and the docs parser here are shared with ``test_api_queue.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cli_helpers import (
    WIDE,
    Cli,
    as_json,
    documented_shapes,
    error_line,
    keys_of,
    run_directory,
)
from sqlalchemy import update

from mailward.app import Services
from mailward.cli.queue import QueueState
from mailward.config import Settings
from mailward.db import QueuedRecipient, QueueStatus
from mailward.queue.admin import STATUSES
from mailward.queue.spool import NewRecipient

MESSAGE = b"Subject: Quarterly report\r\nFrom: x@sender.example\r\n\r\nbody\r\n"
SUBJECT = "Quarterly report"
LONG_ERROR = ("4.4.1 connection refused by mx.acme.example: the remote host did not answer "
              "on port 25 (mx.acme.example)")
HELD_ERROR = "4.3.5 the domain has no mail server settings; mail is held"

# The seeded queue in list order (oldest message first), as (message, recipient).
ORDER = [
    ("shared", "a@acme.example"),
    ("shared", "b@globex.example"),
    ("deferred", "c@acme.example"),
    ("held", "d@globex.example"),
    ("active", "e@acme.example"),
    ("forward", "out@elsewhere.example"),
]


async def set_rows(directory: Services, *recipients: str, **values: Any) -> None:
    """Change queued recipients directly (what the delivery worker would do)."""
    async with directory.db.session() as session, session.begin():
        await session.execute(
            update(QueuedRecipient).where(QueuedRecipient.recipient.in_(recipients))
            .values(**values)
        )


def later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


async def seed(directory: Services) -> dict[str, str]:
    """Five messages (see ``ORDER``): Acme and Globex recipients in every state, one
    message with recipients in both accounts and one forward leaving us (no account)."""
    spool = directory.queue.spool
    ids = {
        "shared": await spool.enqueue(
            sender="x@sender.example", data=MESSAGE, origin="mx", peer="192.0.2.10",
            recipients=[NewRecipient("a@acme.example"), NewRecipient("b@globex.example")],
        ),
    }
    for name, recipient in (("deferred", "c@acme.example"), ("held", "d@globex.example"),
                            ("active", "e@acme.example")):
        ids[name] = await spool.enqueue(sender="x@sender.example", data=MESSAGE, origin="mx",
                                        recipients=[NewRecipient(recipient)])
    ids["forward"] = await spool.enqueue(sender="a@acme.example", data=b"no headers\r\n",
                                         origin="forward",
                                         recipients=[NewRecipient("out@elsewhere.example")])
    await set_rows(directory, "c@acme.example", status=QueueStatus.DEFERRED, attempts=2,
                   last_error=LONG_ERROR, next_attempt_at=later())
    await set_rows(directory, "d@globex.example", status=QueueStatus.DEFERRED, attempts=1,
                   last_error=HELD_ERROR, next_attempt_at=later())
    await set_rows(directory, "e@acme.example", status=QueueStatus.ACTIVE,
                   lease_until=later(), next_attempt_at=later())
    return ids


def expected(ids: dict[str, str], *recipients: str) -> list[tuple[str, str]]:
    """``(queue_id, recipient)`` of the seeded rows with these recipients, in list order."""
    return [(ids[name], rcpt) for name, rcpt in ORDER if rcpt in recipients]


def rows(page: Any) -> list[tuple[str, str]]:
    return [(item["queue_id"], item["recipient"]) for item in page["items"]]


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def spool_file(settings: Settings, queue_id: str) -> Path | None:
    """The message's spool file (``None`` on PostgreSQL: the bytes are in the row)."""
    async def find(directory: Services) -> Path | None:
        spool = directory.queue.spool
        return None if spool.in_database else spool.path_of(queue_id)

    return run_directory(settings, find)


# -- the documented JSON shapes ----------------------------------------------------------

QUEUE_SHAPES = "### Queue JSON shapes"


def check_shapes(actual: dict[str, Any]) -> None:
    """``actual`` holds one real ``queue-page``, ``queue-entry`` and ``queue-message``."""
    documented = documented_shapes(QUEUE_SHAPES)
    assert sorted(documented) == sorted(actual) == ["queue-entry", "queue-message", "queue-page"]
    for name, example in documented.items():
        assert keys_of(actual[name]) == keys_of(example), name
    entry = keys_of(documented["queue-entry"])
    assert keys_of(actual["queue-page"]["items"][0]) == entry
    assert keys_of(actual["queue-message"]["recipients"][0]) == entry


# -- the tests ---------------------------------------------------------------------------


def test_states_match_the_service() -> None:
    assert tuple(QueueState) == STATUSES


def test_list_filters_and_pages(tenants: Cli, settings: Settings) -> None:
    cli = tenants
    assert cli("queue", "list").stdout == "the queue is empty\n"
    assert cli("queue", "list", "--status", "held").stdout == "no queued mail matches\n"
    ids = run_directory(settings, seed)

    def listing(*args: str) -> Any:
        return as_json(cli("queue", "list", "--json", *args))

    everything = listing()
    assert rows(everything) == expected(ids, *(r for _, r in ORDER))
    assert (everything["total"], everything["page"], everything["per_page"],
            everything["pages"]) == (6, 1, 50, 1)
    by_status = {
        "queued": ("a@acme.example", "b@globex.example", "out@elsewhere.example"),
        "deferred": ("c@acme.example",),
        "held": ("d@globex.example",),
        "active": ("e@acme.example",),
    }
    for status, recipients in by_status.items():
        assert rows(listing("--status", status)) == expected(ids, *recipients), status
    assert rows(listing("-s", "HELD")) == expected(ids, "d@globex.example")
    acme = ("a@acme.example", "c@acme.example", "e@acme.example")
    assert rows(listing("--domain", "ACME.example.")) == expected(ids, *acme)
    assert rows(listing("-d", "acme.example", "-s", "queued")) == expected(ids, "a@acme.example")
    assert listing("--domain", "nowhere.example")["total"] == 0

    second = listing("--per-page", "2", "--page", "2")
    assert rows(second) == expected(ids, "c@acme.example", "d@globex.example")
    assert (second["total"], second["pages"]) == (6, 3)
    assert cli("queue", "list", "--page", "9").stdout == (
        "page 9 is empty: 6 queued recipient(s) on 1 page(s)\n")
    bad_page = cli("queue", "list", "--per-page", "0", code=1)
    assert error_line(bad_page) == "error: page must be ≥ 1 and per_page 1-1000"

    table = cli("queue", "list", env=WIDE).stdout
    lines = table.splitlines()
    for queue_id, recipient in expected(ids, *(r for _, r in ORDER)):
        assert any(queue_id in line and recipient in line for line in lines), recipient
    deferred = next(line for line in lines if "c@acme.example" in line)
    assert "deferred" in deferred and " 2 " in deferred
    assert LONG_ERROR[:59] + "…" in deferred and LONG_ERROR not in table  # one short line
    assert "delivering" in next(line for line in lines if "e@acme.example" in line)
    assert "now" in next(line for line in lines if "a@acme.example" in line)
    assert lines[-1] == "1-6 of 6 queued recipient(s), page 1 of 1 (times in UTC)"


def test_a_bad_status_is_a_usage_error(tenants: Cli) -> None:
    refused = tenants("queue", "list", "--status", "bogus", code=2)
    assert "--status" in refused.stderr and "'bogus' is not one of" in refused.stderr
    assert "held" in refused.stderr


def test_show_a_message(tenants: Cli, settings: Settings) -> None:
    cli = tenants
    ids = run_directory(settings, seed)
    view = as_json(cli("queue", "show", ids["shared"], "--json"))
    assert {k: v for k, v in view.items() if k not in ("received_at", "recipients")} == {
        "queue_id": ids["shared"], "sender": "x@sender.example", "subject": SUBJECT,
        "size": len(MESSAGE), "origin": "mx", "peer": "192.0.2.10"}
    assert [(r["recipient"], r["status"], r["attempts"]) for r in view["recipients"]] == [
        ("a@acme.example", "queued", 0), ("b@globex.example", "queued", 0)]
    assert when(view["received_at"]) <= datetime.now(UTC)
    assert as_json(cli("queue", "show", ids["shared"].lower(), "--json")) == view

    shown = cli("queue", "show", ids["deferred"], env=WIDE).stdout
    for fragment in (f"queue id  {ids['deferred']}", "sender    x@sender.example",
                     f"subject   {SUBJECT}", f"size      {len(MESSAGE)} B", "origin    mx",
                     "peer      -", "received  ", "1 recipient(s)", LONG_ERROR):
        assert fragment in shown, fragment  # the last error in full
    forward = cli("queue", "show", ids["forward"]).stdout
    assert "subject   -" in forward and "origin    forward" in forward

    missing = cli("queue", "show", "0123456789ABCDEF", code=1)
    assert error_line(missing) == "error: no queued message '0123456789ABCDEF'"


def test_retry_makes_waiting_recipients_due_now(tenants: Cli, settings: Settings) -> None:
    cli = tenants
    ids = run_directory(settings, seed)
    before = as_json(cli("queue", "show", ids["deferred"], "--json"))["recipients"][0]
    assert when(before["next_attempt_at"]) > datetime.now(UTC)

    done = cli("queue", "retry", ids["deferred"])
    assert done.stdout == f"queued message {ids['deferred']}: 1 recipient(s) due now\n"
    after = as_json(cli("queue", "show", ids["deferred"], "--json"))["recipients"][0]
    assert when(after["next_attempt_at"]) <= datetime.now(UTC)
    assert (after["status"], after["attempts"], after["last_error"]) == (
        "deferred", 2, LONG_ERROR)  # only the time changes
    assert cli("queue", "list", "-s", "deferred", env=WIDE).stdout.count(" now ") == 1

    held = as_json(cli("queue", "retry", ids["held"], "--json"))
    assert when(held["recipients"][0]["next_attempt_at"]) <= datetime.now(UTC)

    busy = cli("queue", "retry", ids["active"])  # being delivered: left alone
    assert busy.stdout == (
        f"queued message {ids['active']}: 0 recipient(s) due now (1 being delivered already)\n")
    active = as_json(cli("queue", "show", ids["active"], "--json"))["recipients"][0]
    assert active["status"] == "active" and when(active["next_attempt_at"]) > datetime.now(UTC)
    cli("queue", "retry", "0123456789ABCDEF", code=1)


def test_delete_removes_the_message(tenants: Cli, settings: Settings) -> None:
    cli = tenants
    ids = run_directory(settings, seed)
    path = spool_file(settings, ids["deferred"])
    assert path is None or path.exists()

    declined = cli("queue", "delete", ids["deferred"], input="n\n", code=1)
    assert f"Delete queued message {ids['deferred']} for 1 recipient(s): c@acme.example?" in (
        declined.stderr)
    assert "No bounce is sent" in declined.stderr
    cli("queue", "show", ids["deferred"])
    cli("queue", "delete", ids["deferred"], "--json", code=2)  # --json needs --yes

    deleted = cli("queue", "delete", ids["deferred"], input="y\n")
    assert deleted.stdout.endswith(  # after the echoed answer
        f"deleted queued message {ids['deferred']} for 1 recipient(s): c@acme.example\n")
    assert path is None or not path.exists()
    cli("queue", "show", ids["deferred"], code=1)
    assert len(as_json(cli("queue", "list", "--json"))["items"]) == 5

    gone = as_json(cli("queue", "delete", ids["shared"], "--yes", "--json"))
    assert gone["queue_id"] == ids["shared"]  # what was deleted
    assert [r["recipient"] for r in gone["recipients"]] == ["a@acme.example", "b@globex.example"]
    assert rows(as_json(cli("queue", "list", "--json"))) == expected(
        ids, "d@globex.example", "e@acme.example", "out@elsewhere.example")
    missing = cli("queue", "delete", ids["shared"], "--yes", code=1)
    assert error_line(missing) == f"error: no queued message '{ids['shared']}'"


def test_accounts_only_see_their_own_recipients(tenants: Cli, settings: Settings) -> None:
    cli = tenants
    ids = run_directory(settings, seed)
    acme = ("a@acme.example", "c@acme.example", "e@acme.example")
    assert rows(as_json(cli("queue", "list", "-a", "Acme", "--json"))) == expected(ids, *acme)
    assert rows(as_json(cli("queue", "list", "-a", "Globex", "--json"))) == expected(
        ids, "b@globex.example", "d@globex.example")
    assert as_json(cli("queue", "list", "-a", "Acme", "-d", "globex.example",
                       "--json"))["total"] == 0
    shared = as_json(cli("queue", "show", ids["shared"], "-a", "Globex", "--json"))
    assert [r["recipient"] for r in shared["recipients"]] == ["b@globex.example"]

    # Acme's own message and the forward leaving us are invisible to Globex / to accounts.
    for queue_id, account in ((ids["deferred"], "Globex"), (ids["forward"], "Acme")):
        for args in (("show", queue_id), ("retry", queue_id), ("delete", queue_id, "--yes")):
            refused = cli("queue", *args, "--account", account, code=1)
            assert error_line(refused) == f"error: no queued message '{queue_id}'", args
    deferred = as_json(cli("queue", "show", ids["deferred"], "--json"))["recipients"][0]
    assert when(deferred["next_attempt_at"]) > datetime.now(UTC)  # the retry did nothing

    # Globex retries and deletes only its own recipient of the shared message.
    run_directory(settings, lambda d: set_rows(d, "a@acme.example", "b@globex.example",
                                               next_attempt_at=later()))
    cli("queue", "retry", ids["shared"], "-a", "Globex")
    times = {r["recipient"]: when(r["next_attempt_at"]) for r in
             as_json(cli("queue", "show", ids["shared"], "--json"))["recipients"]}
    assert times["b@globex.example"] <= datetime.now(UTC) < times["a@acme.example"]

    path = spool_file(settings, ids["shared"])
    removed = as_json(cli("queue", "delete", ids["shared"], "-a", "Globex", "--yes", "--json"))
    assert [r["recipient"] for r in removed["recipients"]] == ["b@globex.example"]
    left = as_json(cli("queue", "show", ids["shared"], "--json"))
    assert [r["recipient"] for r in left["recipients"]] == ["a@acme.example"]
    assert path is None or path.exists()  # Acme's recipient still needs the message
    cli("queue", "show", ids["shared"], "-a", "Globex", code=1)
    cli("queue", "delete", ids["shared"], "-a", "Acme", "--yes")
    assert path is None or not path.exists()
    cli("queue", "show", ids["shared"], code=1)
    cli("queue", "list", "-a", "Nobody", code=1)


def test_json_shapes_match_docs(tenants: Cli, settings: Settings) -> None:
    cli = tenants
    ids = run_directory(settings, seed)
    message = as_json(cli("queue", "show", ids["deferred"], "--json"))
    check_shapes({
        "queue-page": as_json(cli("queue", "list", "--json")),
        "queue-entry": as_json(cli("queue", "list", "--json"))["items"][0],
        "queue-message": message,
    })
    retried = as_json(cli("queue", "retry", ids["deferred"], "--json"))
    deleted = as_json(cli("queue", "delete", ids["deferred"], "--yes", "--json"))
    assert keys_of(retried) == keys_of(deleted) == keys_of(message)
