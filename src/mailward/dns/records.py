"""The records a customer publishes for a domain, as zone-file lines or registrar form rows.

Every domain gets one MX per filtering host. A hosted domain (mailboxes here) also gets
the client host names (CNAMEs), RFC 6186/8314 SRV records for mail client set-up, SPF
naming our sending hosts, and DMARC. The DKIM record is added whenever a key is given.

Filtering-only domains get no SPF and no DMARC: their mail leaves from the customer's own
servers, which only the customer knows; an SPF record naming just our hosts would make
their own mail fail SPF.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailward.config import Settings
from mailward.dkim.keys import txt_strings, txt_value
from mailward.dns.model import RecordToPaste
from mailward.net.resolver import absolute_name

__all__ = ["TTL", "dkim_strings", "records_to_paste", "registrar_rows", "zone_lines"]

TTL = 3600
CLIENT_NAMES = ("mail", "pop", "smtp", "imap")  # → hosting host; "webmail" → webmail host
# (service label, standard port, what it is) for mail client set-up; priority 0, weight 1
SRV_SERVICES = (
    ("_imaps._tcp", 993, "IMAP over TLS (RFC 6186)"),
    ("_submissions._tcp", 465, "mail submission over TLS (RFC 8314)"),
    ("_submission._tcp", 587, "mail submission with STARTTLS (RFC 6186)"),
    ("_pop3s._tcp", 995, "POP3 over TLS (RFC 6186)"),
)


def records_to_paste(
    settings: Settings, domain: str, *, hosted: bool, dkim: tuple[str, str] | None
) -> list[RecordToPaste]:
    """What to publish for ``domain``; ``dkim`` is ``(selector, public key base64)``.

    SRV records carry the standard public ports (993/465/587/995), not the dev ports.
    """
    apex = absolute_name(domain)
    host = f"{settings.hosting_host}."
    records = [
        RecordToPaste(apex, TTL, "MX", mx.priority, f"{mx.host}.",
                      "incoming mail goes through our filtering tier")
        for mx in settings.mx_hosts
    ]
    if hosted:
        records += [
            RecordToPaste(f"{label}.{apex}", TTL, "CNAME", None, host,
                          f"mail clients reach the mailboxes as {label}.{apex[:-1]}")
            for label in CLIENT_NAMES
        ]
        records += [
            RecordToPaste(f"webmail.{apex}", TTL, "CNAME", None, f"{settings.webmail_host}.",
                          "webmail address for the domain's users"),
            RecordToPaste(f"autoconfig.{apex}", TTL, "CNAME", None, host,
                          "mail client automatic configuration (autoconfig)"),
            RecordToPaste(f"autodiscover.{apex}", TTL, "CNAME", None, host,
                          "Outlook automatic configuration (autodiscover)"),
        ]
        records += [
            RecordToPaste(f"{service}.{apex}", TTL, "SRV", 0, f"1 {port} {host}",
                          f"mail client set-up finds {what}")
            for service, port, what in SRV_SERVICES
        ]
        records.append(RecordToPaste(f"_autodiscover._tcp.{apex}", TTL, "SRV", 0,
                                     f"1 443 {host}", "Outlook finds its set-up service"))
        records.append(RecordToPaste(
            apex, TTL, "TXT", None, _quoted([f"v=spf1 mx a:{settings.hosting_host} ~all"]),
            "SPF: our servers send the domain's mail (merge with any existing v=spf1 "
            "record: only one is allowed)",
        ))
    if dkim is not None:
        selector, public_b64 = dkim
        records.append(RecordToPaste(
            absolute_name(f"{selector}._domainkey.{apex}"), TTL, "TXT", None,
            _quoted(dkim_strings(public_b64)),
            "DKIM: receivers verify the signature of mail we send for the domain",
        ))
    if hosted:
        records.append(RecordToPaste(
            f"_dmarc.{apex}", TTL, "TXT", None,
            _quoted([f"v=DMARC1; p=none; rua=mailto:postmaster@{apex[:-1]}"]),
            "DMARC: reports about mail using the domain go to its postmaster",
        ))
    return records


def zone_lines(records: Sequence[RecordToPaste]) -> list[str]:
    """BIND zone-file lines with aligned columns, each record's purpose as a comment above.

    ``acme.example.  3600 IN MX    10 mailfilter1.example.net.``
    """
    if not records:
        return []
    name_width = max(len(r.name) for r in records)
    ttl_width = max(len(str(r.ttl)) for r in records)
    type_width = max(len(r.rdtype) for r in records)
    lines = []
    for r in records:
        rdata = r.value if r.priority is None else f"{r.priority} {r.value}"
        lines.append(f"; {r.purpose}")
        lines.append(f"{r.name:<{name_width}} {r.ttl:>{ttl_width}} IN "
                     f"{r.rdtype:<{type_width}} {rdata}")
    return lines


def registrar_rows(records: Sequence[RecordToPaste], domain: str) -> list[dict[str, str]]:
    """Rows for a registrar's DNS form: host, type, priority, value, ttl (all text).

    ``host`` is relative to ``domain`` (``"@"`` for the apex). Host names in ``value`` lose
    their trailing dot and TXT values are the unquoted text, as such forms usually expect.
    """
    apex = absolute_name(domain)
    rows = []
    for r in records:
        if r.name == apex:
            host = "@"
        elif r.name.endswith("." + apex):
            host = r.name[: -len(apex) - 1]
        else:
            host = r.name
        value = "".join(_unquoted(r.value)) if r.rdtype == "TXT" else r.value.rstrip(".")
        rows.append({
            "host": host,
            "type": r.rdtype,
            "priority": "" if r.priority is None else str(r.priority),
            "value": value,
            "ttl": str(r.ttl),
        })
    return rows


def dkim_strings(public_b64: str) -> list[str]:
    """``v=DKIM1; k=rsa; p=...`` as TXT strings, cut as ``mailward domain dkim`` shows them."""
    return txt_strings(txt_value("".join(public_b64.split())))


def _quoted(strings: Sequence[str]) -> str:
    """TXT character-strings in zone form: ``"a" "b"`` (our texts hold no quotes)."""
    return " ".join(f'"{s}"' for s in strings)


def _unquoted(value: str) -> list[str]:
    return re.findall(r'"([^"]*)"', value)
