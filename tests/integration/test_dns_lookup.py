"""DNS lookups through dnspython against a real DNS server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dns_server import dns_server, silent_udp_server

from mailward.config import Settings, load_settings
from mailward.dns import DnsTools, Outcome, Record

ZONE = """
acme.example.          300 IN MX 20 backup.acme.example.
acme.example.          300 IN MX 10 mx.acme.example.
acme.example.          3600 IN NS ns1.acme.example.
acme.example.          3600 IN SOA ns1.acme.example. hostmaster.acme.example. 7 3600 600 86400 300
acme.example.          300 IN TXT "v=spf1 mx " "a:mail.example.net ~all"
mx.acme.example.       120 IN A 192.0.2.10
mx.acme.example.       120 IN AAAA 2001:db8::10
backup.acme.example.   300 IN A 192.0.2.20
mail.acme.example.     600 IN CNAME host.acme.example.
gone.acme.example.     600 IN CNAME nowhere.acme.example.
nowhere.acme.example.  600 IN CNAME missing.acme.example.
host.acme.example.     900 IN CNAME mx.acme.example.
away.acme.example.     600 IN CNAME mail.elsewhere.example.
xn--bcher-kva.example. 300 IN A 192.0.2.77
"""


@pytest.fixture
def nameserver() -> Iterator[str]:
    with dns_server(ZONE) as server:
        yield server


def tools_for(tmp_path: Path, nameservers: list[str], **overrides: object) -> DnsTools:
    settings: Settings = load_settings(data_dir=tmp_path, dns_nameservers=nameservers,
                                       **overrides)
    return DnsTools(settings)


async def test_mx_records_carry_priorities_and_ttls(tmp_path: Path, nameserver: str) -> None:
    lookup = await tools_for(tmp_path, [nameserver]).mx("ACME.example")
    assert lookup.outcome is Outcome.ANSWER and lookup.server is None
    assert lookup.name == "acme.example." and lookup.rdtype == "MX"
    assert lookup.records == (
        Record("acme.example.", 300, "IN", "MX", 10, "mx.acme.example."),
        Record("acme.example.", 300, "IN", "MX", 20, "backup.acme.example."),
    )


async def test_addresses_txt_ns_and_soa(tmp_path: Path, nameserver: str) -> None:
    tools = tools_for(tmp_path, [nameserver])
    four, six = await tools.a("mx.acme.example.")
    assert [r.answer for r in four.records] == ["192.0.2.10"] and four.records[0].ttl == 120
    assert [(r.rdtype, r.answer) for r in six.records] == [("AAAA", "2001:db8::10")]
    txt = await tools.txt("acme.example")
    assert [r.answer for r in txt.records] == ["v=spf1 mx a:mail.example.net ~all"]
    ns = await tools.ns("acme.example")
    assert [(r.ttl, r.answer, r.priority) for r in ns.records] == [
        (3600, "ns1.acme.example.", None)]
    soa = await tools.lookup("acme.example", "soa")
    assert soa.records[0].answer.startswith("ns1.acme.example. hostmaster.acme.example. 7 ")
    idn = await tools.a("bücher.example")
    assert idn[0].name == "xn--bcher-kva.example." and idn[0].records[0].answer == "192.0.2.77"


async def test_cname_chains_come_first(tmp_path: Path, nameserver: str) -> None:
    tools = tools_for(tmp_path, [nameserver])
    four, six = await tools.a("mail.acme.example")
    assert four.records == (
        Record("mail.acme.example.", 600, "IN", "CNAME", None, "host.acme.example."),
        Record("host.acme.example.", 900, "IN", "CNAME", None, "mx.acme.example."),
        Record("mx.acme.example.", 120, "IN", "A", None, "192.0.2.10"),
    )
    assert six.records[-1].answer == "2001:db8::10" and len(six.records) == 3
    alias = await tools.cname("mail.acme.example")
    assert [r.answer for r in alias.records] == ["host.acme.example."]
    no_mx = await tools.mx("mail.acme.example")
    assert no_mx.outcome is Outcome.NO_ANSWER and not no_mx.records
    assert "alias of mx.acme.example." in no_mx.detail
    away = await tools.a("away.acme.example")  # the target is in nobody's zone here
    assert away[0].outcome is Outcome.NO_ANSWER
    assert away[0].detail == ("away.acme.example. is an alias of mail.elsewhere.example., "
                              "which has no A records")


async def test_nxdomain_and_no_answer_are_told_apart(tmp_path: Path, nameserver: str) -> None:
    tools = tools_for(tmp_path, [nameserver])
    missing = await tools.mx("missing.acme.example")
    assert missing.outcome is Outcome.NXDOMAIN and not missing.records
    assert missing.detail == "missing.acme.example. does not exist"
    dangling = await tools.a("gone.acme.example")
    assert dangling[0].outcome is Outcome.NXDOMAIN
    assert dangling[0].detail == ("gone.acme.example. is an alias of missing.acme.example., "
                                  "which does not exist")
    no_aaaa = await tools.lookup("backup.acme.example", "AAAA")
    assert no_aaaa.outcome is Outcome.NO_ANSWER
    assert no_aaaa.detail == "backup.acme.example. exists but has no AAAA records"


async def test_silent_server_times_out(tmp_path: Path) -> None:
    with silent_udp_server() as silent:
        tools = tools_for(tmp_path, [silent], dns_timeout_seconds=0.5)
        lookup = await tools.mx("acme.example")
        direct = await tools.mx("acme.example", server=silent)
    assert lookup.outcome is Outcome.TIMEOUT and lookup.detail == "no answer within 0.5 s"
    assert direct.outcome is Outcome.TIMEOUT and direct.server == silent


@pytest.mark.parametrize("rcode", ["SERVFAIL", "REFUSED"])
async def test_failing_servers_are_servfail(tmp_path: Path, rcode: str) -> None:
    with dns_server(ZONE, rcode=rcode) as failing:
        lookup = await tools_for(tmp_path, [failing]).mx("acme.example")
    assert lookup.outcome is Outcome.SERVFAIL
    assert lookup.detail == f"{failing} answered {rcode}"


async def test_direct_lookup_at_one_server(tmp_path: Path, nameserver: str) -> None:
    """``server=`` bypasses the resolvers; without a port the configured one is used."""
    host, port = nameserver.split(":")
    with silent_udp_server() as silent:  # the recursive resolvers would time out
        tools = tools_for(tmp_path, [silent], dns_timeout_seconds=0.5,
                          dns_authoritative_port=int(port), allow_private_mail_servers=True)
        by_default = await tools.mx("acme.example", server=host)
        explicit = await tools.mx("acme.example", server=nameserver)
    assert by_default.outcome is Outcome.ANSWER and by_default.server == nameserver
    assert explicit.records == by_default.records and len(explicit.records) == 2


@pytest.mark.parametrize(("name", "rdtype", "server", "message"), [
    ("", "MX", None, "empty"),
    ("acme..example", "MX", None, "empty label"),
    ("bad_name!.example", "MX", None, "label"),
    ("-lead.example", "A", None, "label"),
    ("a" * 64 + ".example", "A", None, "label"),
    (".".join(["abcdefghi"] * 26), "A", None, "253"),
    ("acme.example", "ANY", None, "record type"),
    ("acme.example", "MX", "ns1.acme.example", "IP address"),
    ("acme.example", "MX", "127.0.0.1:99999", "port"),
])
async def test_bad_input_raises_value_error(tmp_path: Path, name: str, rdtype: str,
                                            server: str | None, message: str) -> None:
    tools = tools_for(tmp_path, ["127.0.0.1:9"])
    with pytest.raises(ValueError, match=message):
        await tools.lookup(name, rdtype, server=server)
