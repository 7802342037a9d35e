"""The ``mailward`` CLI: bulk add, set-up and edits, search, delete, ``--account`` scoping."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import WIDE, Cli, as_json, error_line, run_directory

from mailward.app import Services
from mailward.config import Settings

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
    refused = cli("address", "delete", "--all", "--yes", code=1)  # operator, empty search
    assert "would empty every account" in error_line(refused)
    assert total() == 4
    acme_all = cli("address", "delete", "--all", "--yes", "--account", "Acme")
    globex_all = cli("address", "delete", "--all", "--yes", "--account", "Globex")
    deleted = [acme_all.stdout, globex_all.stdout]
    assert sum(int(out.split()[1]) for out in deleted) == 4
    assert total() == 0

    # usage errors, exit 2
    cli("address", "delete", code=2)
    cli("address", "delete", "a@acme.example", "--all", "--yes", code=2)
    cli("address", "delete", "--search", "a", "--yes", code=2)
    cli("address", "delete", "a@acme.example", "--domain", "acme.example", code=2)
    cli("address", "delete", "--all", "--json", code=2)


def test_piped_tables_keep_every_cell_whole(tenants: Cli,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Output to a pipe (no terminal, no COLUMNS) is not folded at 80 columns: each address
    stays on one line, whole, for grep."""
    monkeypatch.delenv("COLUMNS", raising=False)
    destinations = "bob.with.a.long.name@acme.example,ceo.with.a.longer.name@acme.example"
    tenants("address", "add", "--account", "Acme", "--list", "filter",
            input=f"sales.department@acme.example|{destinations}|relay\n")
    [row] = [line for line in tenants("address", "list", "--account", "Acme").stdout
             .splitlines() if "sales.department@acme.example" in line]
    assert all(address in row for address in destinations.split(","))
    assert len(row) > 80


def test_a_locked_mailbox_is_shown_and_unlocked(tenants: Cli, settings: Settings) -> None:
    tenants("address", "add", "-a", "Acme", "-l", "filter", input="box@acme.example|Secret-pass1\n")

    async def guess(d: Services) -> None:
        for _ in range(settings.auth_failures_per_window):
            await d.mail_login.authenticate("box@acme.example", "guess", "192.0.2.7")

    assert "logins" not in tenants("address", "show", "box@acme.example").stdout
    run_directory(settings, guess)
    shown = tenants("address", "show", "box@acme.example", "-a", "Acme").stdout
    assert "logins        locked for 15 min after failed attempts" in shown
    assert "box@acme.example" in error_line(tenants(
        "address", "unlock", "box@acme.example", "-a", "Globex", code=1))  # not theirs
    done = tenants("address", "unlock", "box@acme.example", "-a", "Acme").stdout
    assert done == "logins of box@acme.example unlocked (locked for another 15 min)\n"
    assert as_json(tenants("address", "unlock", "box@acme.example", "--json")) == {
        "email": "box@acme.example", "locked_seconds": 0}
    assert tenants("address", "unlock", "box@acme.example").stdout == (
        "logins of box@acme.example were not locked\n")
    assert run_directory(settings, lambda d: d.mail_login.authenticate(
        "box@acme.example", "Secret-pass1", "192.0.2.7")).ok
