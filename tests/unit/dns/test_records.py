"""The records a customer publishes: contents, zone-file lines, registrar rows, DKIM pieces."""

from __future__ import annotations

import pytest

from mailward.config import Settings, load_settings
from mailward.dns import RecordToPaste, records_to_paste, registrar_rows, zone_lines
from mailward.dns.records import dkim_strings

KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 348 + "IDAQAB"  # 2048-bit size


@pytest.fixture
def settings() -> Settings:
    return load_settings(mx_hosts="mx2.filter.example:20,mx1.filter.example:10",
                         hosting_host="box.host.example", webmail_host="web.host.example")


def test_filtering_only_domains_get_mx_and_nothing_they_did_not_ask_for(
    settings: Settings,
) -> None:
    records = records_to_paste(settings, "Globex.Example.", hosted=False, dkim=None)
    assert [(r.name, r.ttl, r.rdtype, r.priority, r.value) for r in records] == [
        ("globex.example.", 3600, "MX", 10, "mx1.filter.example."),
        ("globex.example.", 3600, "MX", 20, "mx2.filter.example."),
    ]
    with_key = records_to_paste(settings, "globex.example", hosted=False, dkim=("s1", KEY))
    assert [r.rdtype for r in with_key] == ["MX", "MX", "TXT"]  # no SPF/DMARC: their servers


def test_hosted_domains_get_client_names_srv_spf_dkim_and_dmarc(settings: Settings) -> None:
    records = records_to_paste(settings, "acme.example", hosted=True, dkim=("s1", KEY))
    by_name = {(r.name, r.rdtype): r for r in records}
    assert len(by_name) == len(records) - 1  # only the two MX records share a key
    for label in ("mail", "pop", "smtp", "imap", "autoconfig", "autodiscover"):
        assert by_name[f"{label}.acme.example.", "CNAME"].value == "box.host.example."
    assert by_name["webmail.acme.example.", "CNAME"].value == "web.host.example."
    srv = {r.name: (r.priority, r.value) for r in records if r.rdtype == "SRV"}
    assert srv == {
        "_imaps._tcp.acme.example.": (0, "1 993 box.host.example."),
        "_submissions._tcp.acme.example.": (0, "1 465 box.host.example."),
        "_submission._tcp.acme.example.": (0, "1 587 box.host.example."),
        "_pop3s._tcp.acme.example.": (0, "1 995 box.host.example."),
        "_autodiscover._tcp.acme.example.": (0, "1 443 box.host.example."),
    }
    assert by_name["acme.example.", "TXT"].value == '"v=spf1 mx a:box.host.example ~all"'
    assert by_name["_dmarc.acme.example.", "TXT"].value == (
        '"v=DMARC1; p=none; rua=mailto:postmaster@acme.example"')
    assert by_name["s1._domainkey.acme.example.", "TXT"].value.startswith(
        '"v=DKIM1; k=rsa; " "p=MIIBIjAN')
    assert all(r.purpose and r.ttl == 3600 for r in records)


def test_idn_domains_are_published_in_ascii(settings: Settings) -> None:
    [first, *_] = records_to_paste(settings, "bücher.example", hosted=True, dkim=None)
    assert first.name == "xn--bcher-kva.example."
    with pytest.raises(ValueError, match="label"):
        records_to_paste(settings, "bad domain.example", hosted=True, dkim=None)


def test_zone_lines_align_columns_under_purpose_comments(settings: Settings) -> None:
    records = records_to_paste(settings, "acme.example", hosted=True, dkim=None)
    lines = zone_lines(records)
    assert len(lines) == 2 * len(records)
    assert lines[0] == "; incoming mail goes through our filtering tier"
    assert lines[1] == ("acme.example.                    3600 IN MX    10 "
                        "mx1.filter.example.")
    assert lines[5] == ("mail.acme.example.               3600 IN CNAME "
                        "box.host.example.")
    assert "_submissions._tcp.acme.example.  3600 IN SRV   0 1 465 box.host.example." in lines
    assert "_autodiscover._tcp.acme.example. 3600 IN SRV   0 1 443 box.host.example." in lines
    assert lines[-1] == ('_dmarc.acme.example.             3600 IN TXT   '
                         '"v=DMARC1; p=none; rua=mailto:postmaster@acme.example"')
    mx_only = zone_lines(records_to_paste(settings, "acme.example", hosted=False, dkim=None))
    assert mx_only[1::2] == ["acme.example. 3600 IN MX 10 mx1.filter.example.",
                             "acme.example. 3600 IN MX 20 mx2.filter.example."]
    assert zone_lines([]) == []


def test_registrar_rows_are_relative_without_trailing_dots(settings: Settings) -> None:
    records = records_to_paste(settings, "acme.example", hosted=True, dkim=("s1", KEY))
    rows = registrar_rows(records, "acme.example")
    assert rows[0] == {"host": "@", "type": "MX", "priority": "10",
                       "value": "mx1.filter.example", "ttl": "3600"}
    assert {"host": "mail", "type": "CNAME", "priority": "", "value": "box.host.example",
            "ttl": "3600"} in rows
    assert {"host": "_imaps._tcp", "type": "SRV", "priority": "0",
            "value": "1 993 box.host.example", "ttl": "3600"} in rows
    txt = {row["host"]: row["value"] for row in rows if row["type"] == "TXT"}
    assert txt["@"] == "v=spf1 mx a:box.host.example ~all"
    assert txt["s1._domainkey"] == f"v=DKIM1; k=rsa; p={KEY}"  # one text, unquoted
    assert txt["_dmarc"] == "v=DMARC1; p=none; rua=mailto:postmaster@acme.example"
    other = RecordToPaste("x.other.example.", 300, "CNAME", None, "y.example.", "test")
    assert registrar_rows([other], "acme.example")[0]["host"] == "x.other.example."


def test_long_dkim_keys_are_split_into_255_byte_strings() -> None:
    strings = dkim_strings(KEY)
    assert strings[0] == "v=DKIM1; k=rsa; "
    assert all(len(s.encode()) <= 255 for s in strings)
    assert [len(s) for s in strings[1:]] == [255, len("p=" + KEY) - 255]
    assert "".join(strings) == f"v=DKIM1; k=rsa; p={KEY}"
    assert dkim_strings("ab\ncd ") == ["v=DKIM1; k=rsa; ", "p=abcd"]  # pasted whitespace
