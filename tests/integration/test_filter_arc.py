"""ARC (RFC 8617) in the filter's authentication check, against a loopback DNS server: a
mailing list that breaks the author's DKIM signature and seals the message, trusted or
not (``filter_trusted_arc_sealers``), a seal broken after sealing, no seal at all, and a
silent DNS server degrading to temperror (no points)."""

from __future__ import annotations

from collections.abc import Iterator

import authres
import dkim
import pytest
from dns_server import silent_udp_server
from dns_world import World, dns_world

from mailward.config import Settings, load_settings
from mailward.dkim.keys import generate_keypair
from mailward.filter.auth import Authenticator, AuthOutcome, findings, vouches_for
from mailward.filter.pipeline import FilterInput

AUTHOR_KEY = generate_keypair(1024)  # small: fast, and dkimpy accepts 1024-bit keys
LIST_KEY = generate_keypair(1024)
FORGER_KEY = generate_keypair(1024)
LIST_HOST = "lists.example.org"
FORWARDER_IP = "203.0.113.25"  # the list's outgoing server: not in author.example's SPF


def txt(name: str, text: str) -> str:
    chunks = " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))
    return f"{name} 300 IN TXT {chunks}\n"


ZONE = (
    txt("author.example.", "v=spf1 ip4:192.0.2.10 -all")
    + txt("_dmarc.author.example.", "v=DMARC1; p=reject")
    + txt("s1._domainkey.author.example.", f"v=DKIM1; k=rsa; p={AUTHOR_KEY.public_b64}")
    + txt(f"{LIST_HOST}.", "v=spf1 ip4:203.0.113.25 -all")
    + txt(f"arc._domainkey.{LIST_HOST}.", f"v=DKIM1; k=rsa; p={LIST_KEY.public_b64}")
)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with dns_world(ZONE) as world:
        yield world


def configured(world: World, *trusted: str) -> Settings:
    base = load_settings(smtp_hostname="mx1.filter.example")
    return world.settings(base, filter_trusted_arc_sealers=list(trusted))


def authored() -> bytes:
    """A message from anna@author.example, DKIM-signed by author.example."""
    message = (b"From: Anna <anna@author.example>\r\nTo: dev@lists.example.org\r\n"
               b"Subject: Release plan\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n"
               b"Message-ID: <plan@author.example>\r\n\r\nShipping on Friday.\r\n")
    signature = dkim.sign(message, b"s1", b"author.example",
                          AUTHOR_KEY.private_pem.encode(),
                          include_headers=[b"from", b"to", b"subject", b"date"])
    return signature + message


ARRIVED_GENUINE = ("spf=pass smtp.mailfrom=anna@author.example; "
                   "dkim=pass header.d=author.example; dmarc=pass header.from=author.example")


def through_the_list(key: bytes = LIST_KEY.private_pem.encode(),
                     selector: bytes = b"arc", arrival: str = ARRIVED_GENUINE) -> bytes:
    """What the list sends on: a footer added (the author's signature breaks), its own
    Authentication-Results of what it saw on arrival (``arrival``), and its ARC set
    sealing that."""
    headers, body = authored().split(b"\r\n\r\n", 1)
    footer = b"--\r\ndev mailing list: https://lists.example.org/dev\r\n"
    received = f"Authentication-Results: {LIST_HOST}; {arrival}\r\n".encode()
    message = received + headers + b"\r\n\r\n" + body + footer
    arc_set = dkim.arc_sign(message, selector, LIST_HOST.encode(), key, LIST_HOST.encode())
    assert len(arc_set) == 3  # ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results
    return b"".join(arc_set) + message


async def check(settings: Settings, data: bytes, ip: str = FORWARDER_IP) -> AuthOutcome:
    # a forwarder keeping the author's envelope sender: SPF fails for author.example
    return await Authenticator(settings).check(
        FilterInput("anna@author.example", ("bob@acme.example",), data, ip,
                    "out.lists.example.org"))


def points(outcome: AuthOutcome) -> dict[str, float]:
    return {f.check: f.score for f in findings(outcome)}


async def test_a_trusted_sealer_overrides_the_dmarc_failure(world: World) -> None:
    outcome = await check(configured(world, LIST_HOST), through_the_list())
    assert (outcome.spf, outcome.dkim[0].result) == ("fail", "fail")
    assert (outcome.arc, outcome.arc_sealer, outcome.arc_trusted) == ("pass", LIST_HOST, True)
    # DMARC did fail (that is the truth), but its p=reject is not applied
    assert (outcome.dmarc, outcome.dmarc_policy, outcome.dmarc_override) == ("fail", "", "arc")
    assert points(outcome) == {"spf": 3.0, "dkim": 2.0, "dmarc": 0.0, "arc": -0.5}
    [dmarc_finding] = [f for f in findings(outcome) if f.check == "dmarc"]
    assert f"overridden by trusted ARC sealer {LIST_HOST}" in dmarc_finding.reason

    assert "; arc=pass" in outcome.header and "dmarc=fail header.from=author.example" \
        in outcome.header
    parsed = authres.AuthenticationResultsHeader.parse(
        f"Authentication-Results: {outcome.header}")  # still RFC 8601
    assert parsed.authserv_id == "mx1.filter.example"
    assert [(r.method, r.result) for r in parsed.results] == [
        ("spf", "fail"), ("dkim", "fail"), ("dmarc", "fail"), ("arc", "pass")]

    # a listed parent domain trusts its subdomains' seals too
    parent = await check(configured(world, "Example.ORG."), through_the_list())
    assert (parent.dmarc_override, parent.dmarc_policy) == ("arc", "")


async def test_a_trusted_sealer_excuses_only_what_it_saw_pass(world: World) -> None:
    trusted = configured(world, LIST_HOST)
    # an aligned DKIM pass (a subdomain of the author's domain) or SPF pass is enough
    for arrival in ("dkim=pass header.d=mail.author.example; dmarc=none",
                    "spf=pass smtp.mailfrom=bounces@author.example"):
        outcome = await check(trusted, through_the_list(arrival=arrival))
        assert (outcome.dmarc_override, outcome.dmarc_policy) == ("arc", ""), arrival
    # the list itself received a forgery, or passes for some other domain only, or wrote
    # nothing readable: its seal vouches for nothing, and p=reject stands
    for arrival in ("spf=fail smtp.mailfrom=anna@author.example; dkim=none; "
                    "dmarc=fail header.from=author.example",
                    "dkim=pass header.d=elsewhere.example; "
                    "spf=pass smtp.mailfrom=x@elsewhere.example; "
                    "dmarc=pass header.from=elsewhere.example",
                    "none"):
        outcome = await check(trusted, through_the_list(arrival=arrival))
        assert (outcome.arc, outcome.arc_trusted) == ("pass", True), arrival
        assert (outcome.dmarc, outcome.dmarc_policy, outcome.dmarc_override) == (
            "fail", "reject", ""), arrival
        [dmarc_finding] = [f for f in findings(outcome) if f.check == "dmarc"]
        assert dmarc_finding.score == 9.0
        assert f"trusted ARC sealer {LIST_HOST} recorded no pass" in dmarc_finding.reason


def test_vouches_for_reads_the_recorded_results() -> None:
    recorded = ("i=2; lists.example.org; dkim=pass header.d=news.author.example "
                "header.s=s1; dmarc=fail header.from=author.example")
    assert vouches_for(recorded, "author.example")
    assert vouches_for(recorded, "www.author.example")  # relaxed alignment, like DMARC's
    assert not vouches_for(recorded, "other.example")
    assert not vouches_for("i=1; lists.example.org; dmarc=pass header.from=author.example",
                           "sub.author.example")  # DMARC's own pass names one domain
    for broken in ("", "i=1;", "i=1; ;;; dkim", "dkim=pass header.d=author.example"):
        assert not vouches_for(broken, "author.example"), broken
    assert not vouches_for(recorded, "")


async def test_an_untrusted_sealer_changes_nothing(world: World) -> None:
    for trusted in ((), ("other-lists.example",), ("ample.org",), ("sts.example.org",)):
        outcome = await check(configured(world, *trusted), through_the_list())
        assert (outcome.arc, outcome.arc_sealer) == ("pass", LIST_HOST)
        assert not outcome.arc_trusted
        assert (outcome.dmarc, outcome.dmarc_policy, outcome.dmarc_override) == (
            "fail", "reject", "")
        assert points(outcome) == {"spf": 3.0, "dkim": 2.0, "dmarc": 9.0}
        assert "arc=pass" in outcome.header


async def test_a_trusted_seal_on_a_dmarc_pass_overrides_nothing(world: World) -> None:
    # sent again from the author's own server: SPF passes, DMARC passes, nothing to excuse
    outcome = await check(configured(world, LIST_HOST), through_the_list(), ip="192.0.2.10")
    assert (outcome.dmarc, outcome.dmarc_override, outcome.arc) == ("pass", "", "pass")
    assert points(outcome) == {"spf": -0.5, "dkim": 2.0, "dmarc": -1.0, "arc": -0.5}


async def test_a_message_changed_after_sealing_fails_arc(world: World) -> None:
    tampered = through_the_list().replace(b"Shipping on Friday", b"Shipping on Monday")
    outcome = await check(configured(world, LIST_HOST), tampered)
    assert (outcome.arc, outcome.arc_sealer, outcome.arc_trusted) == ("fail", "", False)
    # no passing chain, so the trusted list is no excuse for the DMARC failure
    assert (outcome.dmarc, outcome.dmarc_policy, outcome.dmarc_override) == (
        "fail", "reject", "")
    assert points(outcome) == {"spf": 3.0, "dkim": 2.0, "dmarc": 9.0, "arc": 1.0}
    assert "; arc=fail" in outcome.header


async def test_a_forged_or_unpublished_seal_fails_arc(world: World) -> None:
    # someone else sealing in the trusted list's name, and a selector with no key in DNS
    for sealed in (through_the_list(key=FORGER_KEY.private_pem.encode()),
                   through_the_list(selector=b"gone")):
        outcome = await check(configured(world, LIST_HOST), sealed)
        assert (outcome.arc, outcome.arc_trusted) == ("fail", False)
        assert (outcome.dmarc_policy, outcome.dmarc_override) == ("reject", "")
        assert points(outcome)["dmarc"] == 9.0


async def test_no_arc_headers_is_none(world: World) -> None:
    direct = await check(configured(world, LIST_HOST), authored(), ip="192.0.2.10")
    assert (direct.spf, direct.dkim[0].result, direct.dmarc) == ("pass", "pass", "pass")
    assert (direct.arc, direct.arc_sealer, direct.dmarc_override) == ("none", "", "")
    assert "arc" not in points(direct)
    assert direct.header.endswith("; arc=none")


async def test_a_silent_dns_server_is_temperror_and_costs_no_points() -> None:
    with silent_udp_server() as nowhere:
        quiet = load_settings(dns_nameservers=[nowhere], dns_timeout_seconds=0.3,
                              filter_trusted_arc_sealers=[LIST_HOST])
        outcome = await check(quiet, through_the_list())
    assert (outcome.arc, outcome.arc_sealer, outcome.dmarc_override) == ("temperror", "", "")
    assert [s.result for s in outcome.dkim] == ["temperror"]
    assert (outcome.spf, outcome.dmarc) == ("temperror", "temperror")
    assert findings(outcome) == []
    assert "arc=temperror" in outcome.header
