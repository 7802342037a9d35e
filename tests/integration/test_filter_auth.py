"""SPF, DKIM and DMARC of the filter against a loopback DNS server: every result the
checks can give, alignment, the Authentication-Results header, and a silent DNS server
degrading to temperror (no points) instead of hurting the message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dns_server import dns_server, silent_udp_server

from mailward.config import Settings, load_settings
from mailward.dkim.keys import generate_keypair
from mailward.dkim.sign import sign
from mailward.filter.auth import Authenticator, AuthOutcome, findings
from mailward.filter.pipeline import FilterInput

KEY = generate_keypair(1024)  # small: fast, and dkimpy accepts 1024-bit keys
OTHER_KEY = generate_keypair(1024)


def txt(name: str, text: str) -> str:
    chunks = " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))
    return f"{name} 300 IN TXT {chunks}\n"


ZONE = (
    txt("pass.example.", "v=spf1 ip4:192.0.2.10 -all")
    + txt("_dmarc.pass.example.", "v=DMARC1; p=reject")
    + txt("soft.example.", "v=spf1 ~all")
    + txt("broken.example.", "v=spf1 include: -all")
    + txt("quar.example.", "v=spf1 -all")
    + txt("_dmarc.quar.example.", "v=DMARC1; p=quarantine")
    + txt("lax.example.", "v=spf1 -all")
    + txt("_dmarc.lax.example.", "v=DMARC1; p=none")
    + txt("signed.example.", "v=spf1 -all")
    + txt("_dmarc.signed.example.", "v=DMARC1; p=reject")
    + txt("s1._domainkey.signed.example.", f"v=DKIM1; k=rsa; p={KEY.public_b64}")
    + txt("bounces.signed.example.", "v=spf1 ip4:192.0.2.10 -all")
)


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    with dns_server(ZONE) as nameserver:
        yield load_settings(dns_nameservers=[nameserver], dns_timeout_seconds=1,
                            smtp_hostname="mx1.filter.example")


def mail(sender_header: str, body: str = "Hello Bob,\nsee you at ten.\n") -> bytes:
    return (f"From: {sender_header}\r\nTo: bob@acme.example\r\nSubject: Meeting\r\n"
            f"Date: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m1@x.example>\r\n\r\n"
            + body.replace("\n", "\r\n")).encode()


async def check(settings: Settings, sender: str, data: bytes,
                ip: str = "192.0.2.10") -> AuthOutcome:
    return await Authenticator(settings).check(
        FilterInput(sender, ("bob@acme.example",), data, ip, "mail.sender.example"))


async def test_spf_results(settings: Settings) -> None:
    passed = await check(settings, "anna@pass.example", mail("anna@pass.example"))
    assert (passed.spf, passed.dmarc) == ("pass", "pass")
    failed = await check(settings, "anna@pass.example", mail("anna@pass.example"),
                         ip="203.0.113.9")
    assert (failed.spf, failed.dmarc, failed.dmarc_policy) == ("fail", "fail", "reject")
    assert (await check(settings, "x@soft.example", mail("x@soft.example"))).spf \
        == "softfail"
    assert (await check(settings, "x@broken.example", mail("x@broken.example"))).spf \
        == "permerror"
    assert (await check(settings, "x@nothing.example", mail("x@nothing.example"))).spf \
        == "none"
    points = {f.check: f.score for f in findings(failed)}
    assert points == {"spf": 3.0, "dmarc": 9.0}


async def test_dmarc_policies_and_alignment(settings: Settings) -> None:
    quarantine = await check(settings, "x@quar.example", mail("x@quar.example"))
    assert (quarantine.dmarc, quarantine.dmarc_policy) == ("fail", "quarantine")
    lax = await check(settings, "x@lax.example", mail("x@lax.example"))
    assert (lax.dmarc, lax.dmarc_policy) == ("fail", "none")
    # SPF passes for the envelope domain, but From is another organisation: not aligned
    spoof = await check(settings, "anna@pass.example", mail("ceo@signed.example"))
    assert (spoof.spf, spoof.dmarc, spoof.dmarc_policy) == ("pass", "fail", "reject")
    # a subdomain of the same organisation is aligned (relaxed)
    aligned = await check(settings, "x@bounces.signed.example", mail("ceo@signed.example"))
    assert (aligned.spf, aligned.dmarc) == ("pass", "pass")


async def test_dkim_good_bad_and_missing_key(settings: Settings) -> None:
    good = await sign(mail("news@signed.example"), domain="signed.example", selector="s1",
                      private_key=KEY.private_pem.encode())
    outcome = await check(settings, "bounce@elsewhere.example", good, ip="203.0.113.9")
    assert [(s.result, s.domain, s.selector) for s in outcome.dkim] == [
        ("pass", "signed.example", "s1")]
    assert outcome.dmarc == "pass"  # DKIM aligned with From, even though SPF is not

    tampered = good.replace(b"see you at ten", b"wire the money")
    bad = await check(settings, "bounce@elsewhere.example", tampered, ip="203.0.113.9")
    assert bad.dkim[0].result == "fail" and (bad.dmarc, bad.dmarc_policy) == ("fail",
                                                                              "reject")
    wrong_key = await sign(mail("news@signed.example"), domain="signed.example",
                           selector="s1", private_key=OTHER_KEY.private_pem.encode())
    assert (await check(settings, "b@elsewhere.example", wrong_key)).dkim[0].result == "fail"
    no_key = await sign(mail("news@signed.example"), domain="signed.example", selector="s9",
                        private_key=KEY.private_pem.encode())
    missing = await check(settings, "b@elsewhere.example", no_key)
    assert missing.dkim[0].result in ("fail", "permerror") and missing.dmarc == "fail"
    assert (await check(settings, "b@pass.example", mail("b@pass.example"))).dkim == ()


async def test_the_authentication_results_header(settings: Settings) -> None:
    signed = await sign(mail("news@signed.example"), domain="signed.example", selector="s1",
                        private_key=KEY.private_pem.encode())
    outcome = await check(settings, "x@bounces.signed.example", signed)
    assert outcome.header == (
        "mx1.filter.example; spf=pass smtp.mailfrom=x@bounces.signed.example; "
        "dkim=pass header.d=signed.example header.s=s1; dmarc=pass header.from=signed.example; "
        "arc=none")


async def test_a_silent_dns_server_costs_no_points() -> None:
    with silent_udp_server() as nowhere:
        quiet = load_settings(dns_nameservers=[nowhere], dns_timeout_seconds=0.3)
        outcome = await check(quiet, "anna@pass.example", mail("anna@pass.example"))
    assert (outcome.spf, outcome.dmarc) == ("temperror", "temperror")
    assert findings(outcome) == []
