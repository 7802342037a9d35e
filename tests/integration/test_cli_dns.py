"""``mailward dns``: lookups against real DNS servers on loopback, and the records to publish."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator

import pytest
from cli_helpers import WIDE, Cli, as_json, documented_shapes, error_line, keys_of
from dns_server import dns_server
from dnslib import RCODE, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

ZONE = """
acme.example.      300 IN MX 20 mailfilter2.example.net.
acme.example.      300 IN MX 10 mailfilter1.example.net.
acme.example.      300 IN TXT "v=spf1 mx ~all"
www.acme.example.  300 IN A 192.0.2.10
www.acme.example.  300 IN AAAA 2001:db8::10
"""
OTHER_ZONE = "acme.example. 60 IN MX 5 inbound.elsewhere.example.\n"


@pytest.fixture
def nameserver() -> Iterator[str]:
    with dns_server(ZONE) as address:
        yield address


def using(cli: Cli, nameserver: str, **more: str) -> Cli:
    """``cli`` with ``dns_nameservers`` pointing at ``nameserver`` (and wide tables)."""
    env = {"MAILWARD_DNS_NAMESERVERS": nameserver, **WIDE, **more}

    def run(*args: str, code: int = 0) -> object:
        return cli(*args, code=code, env=env)

    return run  # type: ignore[return-value]


def rows(table: str) -> list[list[str]]:
    """The body cells of a Rich table (box-drawing lines dropped)."""
    found = []
    for line in table.splitlines():
        if line.startswith("│"):
            found.append([cell.strip() for cell in line.strip("│").split("│")])
    return found


def header(table: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith("┃"))
    return [cell.strip() for cell in line.strip("┃").split("┃")]


# -- lookups -----------------------------------------------------------------------------------


def test_mx_lookup_table_and_json(cli: Cli, nameserver: str) -> None:
    dns = using(cli, nameserver)
    table = dns("dns", "mx", "acme.example").stdout
    assert header(table) == ["Name", "TTL", "Class", "Type", "Priority", "Answer"]
    assert rows(table) == [
        ["acme.example.", "300", "IN", "MX", "10", "mailfilter1.example.net."],
        ["acme.example.", "300", "IN", "MX", "20", "mailfilter2.example.net."],
    ]
    assert as_json(dns("dns", "mx", "ACME.example.", "--json")) == {
        "name": "acme.example.", "rdtype": "MX", "outcome": "answer", "server": None,
        "detail": "", "records": [
            {"name": "acme.example.", "ttl": 300, "rdclass": "IN", "rdtype": "MX",
             "priority": 10, "answer": "mailfilter1.example.net."},
            {"name": "acme.example.", "ttl": 300, "rdclass": "IN", "rdtype": "MX",
             "priority": 20, "answer": "mailfilter2.example.net."},
        ]}
    assert rows(dns("dns", "a", "www.acme.example").stdout) == [
        ["www.acme.example.", "300", "IN", "A", "", "192.0.2.10"]]
    assert rows(dns("dns", "aaaa", "www.acme.example").stdout) == [
        ["www.acme.example.", "300", "IN", "AAAA", "", "2001:db8::10"]]
    assert rows(dns("dns", "txt", "acme.example").stdout) == [
        ["acme.example.", "300", "IN", "TXT", "", "v=spf1 mx ~all"]]


def test_lookups_need_no_database(cli: Cli, nameserver: str) -> None:
    nowhere = "postgresql+asyncpg://nobody@127.0.0.1:1/nothing"
    dns = using(cli, nameserver, MAILWARD_DATABASE_URL=nowhere)
    assert "mailfilter1.example.net." in dns("dns", "mx", "acme.example").stdout


def test_lookups_that_find_nothing_are_told_apart(cli: Cli, nameserver: str) -> None:
    dns = using(cli, nameserver)
    missing = dns("dns", "mx", "ghost.example", code=1)
    assert missing.stdout == ""
    assert error_line(missing) == (
        "error: no such domain: ghost.example. does not exist (NXDOMAIN)")
    as_data = as_json(dns("dns", "mx", "ghost.example", "--json", code=1))
    assert (as_data["outcome"], as_data["records"]) == ("nxdomain", [])

    empty = dns("dns", "mx", "www.acme.example", code=1)
    assert empty.stdout == ""
    assert error_line(empty) == (
        "error: no answer: www.acme.example. exists but has no MX records")
    assert as_json(dns("dns", "mx", "www.acme.example", "--json", code=1))["outcome"] == (
        "no-answer")

    bad = dns("dns", "mx", "bad..name", code=1)
    assert error_line(bad).startswith("error: 'bad..name'")


def test_server_option_asks_that_server_directly(cli: Cli, nameserver: str) -> None:
    dns = using(cli, nameserver)
    with dns_server(OTHER_ZONE) as other:
        direct = dns("dns", "mx", "acme.example", "--server", other).stdout
        assert rows(direct) == [["acme.example.", "60", "IN", "MX", "5",
                                 "inbound.elsewhere.example."]]
        assert f"asked {other} directly" in direct
        assert as_json(dns("dns", "mx", "acme.example", "--server", other, "--json"))[
            "server"] == other
        missing = dns("dns", "mx", "www.acme.example", "--server", other, code=1)
        assert error_line(missing).endswith(f"(NXDOMAIN) (asked {other})")
    refused = dns("dns", "mx", "acme.example", "--server", "ns.example", code=1)
    assert "not a nameserver IP address" in error_line(refused)


class Failing(BaseResolver):
    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        reply = request.reply()
        reply.header.rcode = RCODE.SERVFAIL
        return reply


@contextlib.contextmanager
def failing_server() -> Iterator[str]:
    server = DNSServer(Failing(), address="127.0.0.1", port=0,
                       logger=DNSLogger(log="-request,-reply,-truncated,-error", prefix=False))
    server.start_thread()
    try:
        yield f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()
        server.server.server_close()


def test_timeouts_and_server_failures(cli: Cli) -> None:
    with failing_server() as failing:
        dns = using(cli, failing)
        broken = dns("dns", "mx", "acme.example", code=1)
        assert error_line(broken).startswith("error: server failure looking up acme.example. MX")
        assert "SERVFAIL" in error_line(broken)
        assert as_json(dns("dns", "mx", "acme.example", "--json", code=1))["outcome"] == (
            "servfail")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # never answers
        silent.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        dns = using(cli, address, MAILWARD_DNS_TIMEOUT_SECONDS="0.3")
        waited = dns("dns", "mx", "acme.example", code=1)
        assert error_line(waited).startswith("error: timeout: ")
        assert "acme.example. MX" in error_line(waited)


# -- records to publish ------------------------------------------------------------------------


def record_lines(zone: str) -> list[str]:
    return [line for line in zone.splitlines() if line and not line.startswith(";")]


def test_records_of_a_hosted_domain(tenants: Cli) -> None:
    cli = tenants
    dkim = as_json(cli("domain", "dkim", "acme.example", "--json"))
    zone = cli("dns", "records", "acme.example", "--account", "Acme").stdout
    lines = zone.splitlines()
    assert lines[0].startswith("; ") and len(lines) == 2 * len(record_lines(zone))
    for index in range(0, len(lines), 2):  # every record has its purpose above it
        assert lines[index].startswith("; ") and not lines[index + 1].startswith(";")
    records = [re.sub(r"\s+", " ", line) for line in record_lines(zone)]
    assert "acme.example. 3600 IN MX 10 mailfilter1.example.net." in records
    assert "acme.example. 3600 IN MX 20 mailfilter2.example.net." in records
    assert "mail.acme.example. 3600 IN CNAME mail.example.net." in records
    dkim_line = " ".join(f'"{s}"' for s in dkim["strings"])
    assert f"{dkim['name']}. 3600 IN TXT {dkim_line}" in records

    # pasted into a real DNS server, the lookups find what was printed
    with dns_server(zone) as published:
        dns = using(cli, published)
        assert rows(dns("dns", "mx", "acme.example").stdout) == [
            ["acme.example.", "3600", "IN", "MX", "10", "mailfilter1.example.net."],
            ["acme.example.", "3600", "IN", "MX", "20", "mailfilter2.example.net."],
        ]
        assert as_json(dns("dns", "txt", dkim["name"], "--json"))["records"][0]["answer"] == (
            dkim["value"])
        assert rows(dns("dns", "cname", "mail.acme.example").stdout) == [
            ["mail.acme.example.", "3600", "IN", "CNAME", "", "mail.example.net."]]

    table = cli("dns", "records", "acme.example", "--registrar", env=WIDE).stdout
    assert header(table) == ["Host", "Type", "Priority", "Value", "TTL"]
    cells = rows(table)
    assert ["@", "MX", "10", "mailfilter1.example.net", "3600"] in cells
    assert ["mail", "CNAME", "", "mail.example.net", "3600"] in cells
    # the DKIM key is too long for a cell: it follows the table, whole on one line
    assert [f"{dkim['selector']}._domainkey", "TXT", "", "(1) below", "3600"] in cells
    assert table.endswith(f"(1) {dkim['selector']}._domainkey TXT:\n{dkim['value']}\n")

    data = as_json(cli("dns", "records", "acme.example", "--json"))
    assert set(data) == {"domain", "hosted", "records", "zone", "registrar"}
    assert (data["domain"], data["hosted"]) == ("acme.example", True)
    assert data["zone"] == lines
    assert set(data["records"][0]) == {"name", "ttl", "rdtype", "priority", "value", "purpose"}
    assert data["records"][0] == {
        "name": "acme.example.", "ttl": 3600, "rdtype": "MX", "priority": 10,
        "value": "mailfilter1.example.net.", "purpose": data["records"][0]["purpose"]}
    assert data["registrar"][0] == {"host": "@", "type": "MX", "priority": "10",
                                    "value": "mailfilter1.example.net", "ttl": "3600"}


def test_records_follow_the_operators_settings(tenants: Cli) -> None:
    env = {"MAILWARD_MX_HOSTS": "in-a.operator.test:5,in-b.operator.test:15",
           "MAILWARD_HOSTING_HOST": "box.operator.test"}
    data = as_json(tenants("dns", "records", "acme.example", "--json", env=env))
    mx = [(r["priority"], r["value"]) for r in data["records"] if r["rdtype"] == "MX"]
    assert mx == [(5, "in-a.operator.test."), (15, "in-b.operator.test.")]
    assert {"name": "mail.acme.example.", "value": "box.operator.test."} in [
        {"name": r["name"], "value": r["value"]} for r in data["records"]
        if r["rdtype"] == "CNAME"]


def test_records_of_a_filtering_only_domain(tenants: Cli) -> None:
    data = as_json(tenants("dns", "records", "globex.example", "--account", "Globex",
                           "--json"))
    assert (data["domain"], data["hosted"]) == ("globex.example", False)
    types = [r["rdtype"] for r in data["records"]]
    assert types.count("MX") == 2 and "CNAME" not in types
    dkim = as_json(tenants("domain", "dkim", "globex.example", "--json"))
    assert [r["name"] for r in data["records"] if r["rdtype"] == "TXT"] == [dkim["name"] + "."]

def test_accounts_only_see_their_own_domains(tenants: Cli) -> None:
    cli = tenants
    for args in (("acme.example",), ("acme.example", "--registrar"), ("acme.example", "--json")):
        refused = cli("dns", "records", *args, "--account", "Globex", code=1)
        assert refused.stdout == ""
        assert error_line(refused) == "error: no domain acme.example"
    missing = cli("dns", "records", "nowhere.example", code=1)
    assert error_line(missing) == "error: no domain nowhere.example"
    unknown = cli("dns", "records", "acme.example", "--account", "Initech", code=1)
    assert "Initech" in error_line(unknown)


# -- the documented JSON shapes ----------------------------------------------------------------

def test_json_shapes_match_docs(tenants: Cli, nameserver: str) -> None:
    actual = {
        "lookup": as_json(using(tenants, nameserver)("dns", "mx", "acme.example", "--json")),
        "dns-records": as_json(tenants("dns", "records", "acme.example", "--json")),
        "dns-recheck": as_json(using(tenants, nameserver)("dns", "recheck", "--json")),
        "dns-status": as_json(tenants("dns", "status", "--json", code=1)),  # both fail
    }
    actual["dns-recheck"][0]["notified"] = ["admin@acme.example"]  # a list of addresses
    documented = documented_shapes("### DNS JSON shapes")
    assert sorted(documented) == sorted(actual)
    for name, example in documented.items():
        assert keys_of(actual[name], items=True) == keys_of(example, items=True), name
