"""The offline replay of a labelled corpus through the filter pipeline, shared by
bench/filter_accuracy.py (figures on test.tar.gz) and scripts/train-combiner (training on
train.tar.gz), so both see exactly the same findings.

Each message becomes a ``FilterInput`` with the envelope taken from its headers: the client
IP and HELO of the first ``Received:`` header (top down, past the corpus owner's own relays)
naming a public IP (192.0.2.1 and mail.example.com when none does), the sender from
``Return-Path:`` (else ``From:``). The pipeline is ``filter_pipeline(settings)`` with no
blocklist zones and ``dns_nameservers`` a DNS server in a thread of this process on
127.0.0.1 answering NXDOMAIN to everything (``support.EmptyDns``): no packet leaves the
host, SPF, DKIM and DMARC find no records (none, not temperror) and nothing is listed. In
that empty world no client has reverse DNS (ptr-missing) and rules judge the 2002 dates
against today (date-long-ago): findings every message gets alike.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from email.utils import getaddresses

from support import EmptyDns, empty_dns

from mailward.config import Settings
from mailward.filter import FilterInput, FilterPipeline, FilterVerdict, filter_pipeline
from mailward.filter.features import header_text, parse_message

__all__ = ["FALLBACK_PEER", "REPLAY_ARTIFACTS", "Replay", "envelope", "inputs_of",
           "read_corpus", "replay"]

# when no Received: header names an outside client (mail written on the corpus owner's
# hosts): TEST-NET-1 and a plain, neutral host name
FALLBACK_PEER, FALLBACK_HELO = "192.0.2.1", "mail.example.com"
RECIPIENTS = ("user@example.com",)  # no check reads the recipients
# findings the offline replay causes, not the messages: an empty DNS world has no PTR
# records, and a 2002 corpus scored today is dated long ago
REPLAY_ARTIFACTS = frozenset(("ptr-missing", "rule:date-long-ago"))
# The corpus owner's own relays (dogma.slashnull.org, mandark.labs.netnoteinc.com,
# mail.webnote.net), by address as SpamAssassin's trusted_networks (spam forges their
# names in HELO): hops between them are internal, the client is the host that handed the
# message to the first of them.
CORPUS_RELAYS = frozenset(("212.17.35.15", "213.105.180.140", "193.120.211.219"))
_BY = re.compile(r"(?is)\s+by\s+")
_HELO_TOKEN = re.compile(r"(?is)^\s*from\s+(\S+)")
_HELO_QMAIL = re.compile(r"(?i)\(HELO\s+([^\s)]+)\)")
_ADDRESSES = (re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]"),  # "(rdns [1.2.3.4])"
              re.compile(r"\((\d{1,3}(?:\.\d{1,3}){3})\)"),  # qmail: "(1.2.3.4)"
              re.compile(r"^\s*from\s+(\d{1,3}(?:\.\d{1,3}){3})\b"))  # "from 1.2.3.4"


def read_corpus(path: str) -> list[tuple[str, bytes, bool]]:
    """(member name, raw message, is spam) of every ham/ and spam/ member, in name order."""
    out = []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            label = member.name.split("/", 1)[0]
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None and label in ("ham", "spam"):
                out.append((member.name, handle.read(), label == "spam"))
    out.sort()
    return out


def _public_ip(clause: str) -> str | None:
    for pattern in _ADDRESSES:
        for match in pattern.finditer(clause):
            try:
                address = ipaddress.ip_address(match.group(1))
            except ValueError:
                continue
            if address.is_global and str(address) not in CORPUS_RELAYS:
                return str(address)
    return None


def envelope(data: bytes) -> tuple[str, str, str]:
    """``(peer, helo, sender)`` as the receiving MX would have seen them."""
    msg = parse_message(data)
    if msg is None:
        return FALLBACK_PEER, FALLBACK_HELO, ""
    helo, peer = FALLBACK_HELO, None
    for value in msg.get_all("Received", []):
        text = " ".join(str(value).split())
        clause = _BY.split(text, maxsplit=1)[0]  # "from HELO (rdns [IP])", before "by"
        token = _HELO_TOKEN.match(clause)
        if token is None:
            continue  # "(qmail 123 invoked ...)", "(from user@localhost)"
        peer = _public_ip(clause)
        if peer is not None:
            helo = (_HELO_QMAIL.search(clause) or token).group(1).strip("()")
            break
    values = msg.get_all("Return-Path") or msg.get_all("From") or [""]
    found = getaddresses([header_text(str(values[0]))])
    sender = found[0][1] if found else ""  # "" for <>, the null sender
    return peer or FALLBACK_PEER, helo, sender if "@" in sender else ""


def inputs_of(corpus: Sequence[tuple[str, bytes, bool]]) -> list[FilterInput]:
    """One ``FilterInput`` per message, its envelope from its headers."""
    inputs = []
    for _, data, _ in corpus:
        peer, helo, sender = envelope(data)
        inputs.append(FilterInput(sender, RECIPIENTS, data, peer, helo))
    return inputs


class Replay:
    """The offline world: the empty DNS server and settings whose checks ask only it."""

    def __init__(self, dns: EmptyDns) -> None:
        self.dns = dns
        self.settings = Settings(spam_filter=True, dns_nameservers=[dns.address],
                                 dns_timeout_seconds=2.0, filter_dnsbl=[], filter_rhsbl=[],
                                 filter_uribl=[])

    def pipeline(self, *, raw: bool = False) -> FilterPipeline:
        """``filter_pipeline(settings)``, having made sure its checks ask only the empty
        DNS; ``raw``: without the combiner (each finding keeps its check's own points)."""
        pipeline = filter_pipeline(self.settings)
        resolvers = [getattr(check, "resolver", None) for check in pipeline.checks]
        resolvers += [getattr(getattr(check, "authenticator", None), "resolver", None)
                      for check in pipeline.checks]
        servers = {f"{ns.address}:{ns.port}" for r in resolvers if r is not None
                   for ns in r.nameservers}
        assert servers == {self.dns.address}, \
            f"a check would ask {servers}, not only {self.dns.address}"
        return replace(pipeline, combiner=None) if raw else pipeline

    def run(self, inputs: Sequence[FilterInput], *, raw: bool = False,
            pipeline: FilterPipeline | None = None) -> list[FilterVerdict]:
        """Every message through a fresh pipeline (or ``pipeline``), one at a time."""
        chosen = pipeline or self.pipeline(raw=raw)

        async def run_all() -> list[FilterVerdict]:
            return [await chosen.run(message) for message in inputs]

        return asyncio.run(run_all())


@contextmanager
def replay() -> Iterator[Replay]:
    """The offline world for as long as the block runs."""
    with empty_dns() as dns:
        yield Replay(dns)
