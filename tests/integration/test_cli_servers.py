"""``mailward servers``: mail server settings from the command line, both backends."""

from __future__ import annotations

from cli_helpers import Cli, as_json, error_line


def test_add_list_edit_delete(tenants: Cli) -> None:
    cli = tenants
    empty = cli("servers", "list", "acme.example")
    assert empty.stdout == "" and "held (deferred)" in empty.stderr
    first = as_json(cli("servers", "add", "acme.example", "backup.acme.example",
                        "--preference", "20", "--json"))
    assert first == {"id": first["id"], "domain": "acme.example", "host": "backup.acme.example",
                     "port": 25, "preference": 20, "address": "backup.acme.example:25"}
    added = cli("servers", "add", "acme.example", "[2001:db8::25]:2525", "-p", "10")
    assert added.stdout == (
        "added mail server [2001:db8::25]:2525 (preference 10) for acme.example\n")
    cli("servers", "add", "acme.example", "192.0.2.7", "-p", "30", "--port", "587")
    listed = as_json(cli("servers", "list", "acme.example", "--json"))
    assert [s["address"] for s in listed] == [
        "[2001:db8::25]:2525", "backup.acme.example:25", "192.0.2.7:587"]
    table = cli("servers", "list", "acme.example").stdout
    assert table.index("[2001:db8::25]:2525") < table.index("backup.acme.example:25")

    edited = as_json(cli("servers", "edit", "acme.example", "192.0.2.7:587", "--preference",
                         "5", "--host", "mx.acme.example", "--json"))
    assert (edited["address"], edited["preference"]) == ("mx.acme.example:587", 5)
    cli("servers", "edit", "acme.example", "mx.acme.example", code=2)  # nothing to change
    cli("servers", "delete", "acme.example", "backup.acme.example", input="n\n", code=1)
    gone = as_json(cli("servers", "delete", "acme.example", "backup.acme.example", "--yes",
                       "--json"))
    assert gone["address"] == "backup.acme.example:25"
    remaining = as_json(cli("servers", "list", "acme.example", "--json"))
    assert [s["address"] for s in remaining] == ["mx.acme.example:587", "[2001:db8::25]:2525"]


def test_bad_servers_get_one_line_errors(tenants: Cli) -> None:
    cli = tenants
    cases = {
        ("nohost", "10"): "error: 'nohost' is not a fully qualified host name or an IP address",
        ("mx.acme.example", "70000"): "error: preference 70000 is out of range 0-65535",
        ("mx.acme.example:0", "10"): "error: port 0 is out of range 1-65535",
    }
    for (server, preference), message in cases.items():
        result = cli("servers", "add", "acme.example", server, "-p", preference, code=1)
        assert error_line(result) == message
    cli("servers", "add", "acme.example", "mx.acme.example", "-p", "10")
    dup = cli("servers", "add", "acme.example", "MX.acme.example.:25", "-p", "20", code=1)
    assert error_line(dup) == "error: acme.example already lists mail server mx.acme.example:25"
    loop = cli("servers", "add", "acme.example", "mailfilter1.example.net", "-p", "5", code=1)
    assert "would loop" in error_line(loop)


def test_auto_configure_throws_the_switch(tenants: Cli) -> None:
    cli = tenants
    cli("servers", "add", "acme.example", "old-host.acme.example", "-p", "10")
    cli("servers", "auto-configure", "acme.example", input="n\n", code=1)
    assert [s["host"] for s in as_json(cli("servers", "list", "acme.example", "--json"))] == [
        "old-host.acme.example"]
    done = cli("servers", "auto-configure", "acme.example", "--yes")
    assert done.stdout.startswith("Hosting setup done\n") and "mail.example.net:25" in done.stdout
    again = as_json(cli("servers", "auto-configure", "acme.example", "--yes", "--json"))
    assert again == {"message": "Hosting setup done", "servers": [
        {"id": again["servers"][0]["id"], "domain": "acme.example", "host": "mail.example.net",
         "port": 25, "preference": 0, "address": "mail.example.net:25"}]}
    refused = cli("servers", "auto-configure", "globex.example", "--yes", code=1)
    assert "globex.example has no hosting" in error_line(refused)


def test_accounts_only_see_their_own_domains(tenants: Cli) -> None:
    cli = tenants
    cli("servers", "add", "acme.example", "mx.acme.example", "-p", "10", "--account", "Acme")
    for args in (
        ("list", "acme.example"),
        ("add", "acme.example", "evil.example.net", "-p", "0"),
        ("delete", "acme.example", "mx.acme.example", "--yes"),
        ("auto-configure", "acme.example", "--yes"),
    ):
        refused = cli("servers", *args, "--account", "Globex", code=1)
        assert error_line(refused) == "error: no domain acme.example"
    mine = as_json(cli("servers", "list", "acme.example", "--account", "Acme", "--json"))
    assert [s["address"] for s in mine] == ["mx.acme.example:25"]
