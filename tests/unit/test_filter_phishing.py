"""Phishing signals: homographs and small edits of the recipients' own domains and of
well-known brands in From and in links, link text naming another host than its target; and
the benign cases that must stay quiet (the exact domain, a brand's other suffixes, a
newsletter's own tracking links, short names)."""

from __future__ import annotations

from mailward.filter.parsed import PARSES, parse
from mailward.filter.phishing import (
    MAX_ANCHORS,
    SCORES,
    PhishingCheck,
    findings_in,
    lookalike,
    osa_distance,
    skeleton,
)
from mailward.filter.pipeline import FilterInput, FilterPipeline, Finding

OWN = ("ann@northwind-traders.com",)
CYRILLIC_A = "\u0430"


def message(sender: str, body: str = "Hello.\r\n", *, html: bool = False,
            display: str = "Service") -> bytes:
    kind = "text/html; charset=utf-8" if html else "text/plain; charset=utf-8"
    return (f"From: {display} <{sender}>\r\nTo: {OWN[0]}\r\nSubject: Your account\r\n"
            f"Content-Type: {kind}\r\n\r\n{body}").encode()


def found(data: bytes, recipients: tuple[str, ...] = OWN) -> dict[str, Finding]:
    return {f.check: f for f in findings_in(parse(data), recipients)}


def test_a_cyrillic_a_in_the_from_domain_is_a_homograph_of_the_brand() -> None:
    fake = f"p{CYRILLIC_A}ypal.com".encode("idna").decode()  # xn--pypal-4ve.com
    got = found(message(f"service@{fake}"))
    assert list(got) == ["phishing-homograph"]
    assert got["phishing-homograph"].reason == (
        f"From domain p{CYRILLIC_A}ypal.com ({fake}) imitates paypal.com")
    assert got["phishing-homograph"].score > 0
    # written as UTF-8 in the header (SMTPUTF8), it is the same domain
    assert list(found(message(f"service@p{CYRILLIC_A}ypal.com"))) == ["phishing-homograph"]


def test_a_homograph_of_the_recipients_own_domain_in_a_link() -> None:
    fake = f"northwind-tr{CYRILLIC_A}ders.com".encode("idna").decode()
    got = found(message("it@helpdesk.example", f"Log in: https://{fake}/owa\r\n"))
    assert got["phishing-homograph"].reason.startswith(
        f"link to northwind-tr{CYRILLIC_A}ders.com ({fake}) imitates northwind-traders.com")


def test_small_edits_of_a_brand_or_of_the_own_domain_in_from() -> None:
    got = found(message("service@paypa1.com"))
    assert got["phishing-lookalike"].reason == "From domain paypa1.com looks like paypal.com"
    assert found(message("billing@northwind-tradres.com"))["phishing-lookalike"].reason == (
        "From domain northwind-tradres.com looks like northwind-traders.com")  # transposed
    assert found(message("ceo@nortwind-traders.com"))["phishing-lookalike"].reason == (
        "From domain nortwind-traders.com looks like northwind-traders.com")  # one letter less
    assert "phishing-lookalike" in found(message("x@rnicrosoft.com"))  # rn for m
    # a domain shown in the display name counts too
    got = found(message("bounce@mailer.example", display='"security@paypai.com"'))
    assert got["phishing-lookalike"].reason == (
        "From display name domain paypai.com looks like paypal.com")


def test_a_lookalike_link_domain() -> None:
    got = found(message("news@shop.example", "Your file: https://www.dropbx.com/s/1\r\n"))
    assert got["phishing-lookalike-link"].reason == "link to dropbx.com looks like dropbox.com"


def test_link_text_naming_a_brand_but_leading_elsewhere() -> None:
    body = '<p><a href="http://evil.example/x">https://paypal.com/login</a></p>'
    got = found(message("service@mailer.example", body, html=True))
    assert got["phishing-link-impersonation"].reason == (
        "link text names paypal.com but leads to evil.example")
    # a bare name of the recipient's own domain, to an IP address
    body = '<a href="http://192.0.2.7/login">northwind-traders.com</a>'
    got = found(message("it@helpdesk.example", body, html=True))
    assert got["phishing-link-impersonation"].reason == (
        "link text names northwind-traders.com but leads to 192.0.2.7")


def test_link_text_naming_another_host_is_a_weak_signal() -> None:
    body = ('<a href="http://other-host.net/r">https://www.garden-tools.com/offer</a> '
            '<a href="http://other-host.net/s">www.kitchen-things.com</a>')
    got = found(message("offers@mailer.example", body, html=True))
    assert list(got) == ["phishing-link-mismatch"]
    assert got["phishing-link-mismatch"].reason == (
        "link text names garden-tools.com but leads to other-host.net (and 1 more)")
    assert got["phishing-link-mismatch"].score < SCORES["phishing-link-impersonation"]


def test_benign_newsletters_and_the_exact_domains_are_not_flagged() -> None:
    # a newsletter: link text on the sender's domain, hrefs to its tracking subdomain
    newsletter = ('<a href="https://click.garden-tools.com/ls/click?upn=abc">'
                  'https://www.garden-tools.com/spring</a> '
                  '<a href="https://garden-tools.com/shop">shop.garden-tools.com</a> '
                  '<a href="https://links.esp-mailer.net/c/1">https://www.garden-tools.com/</a>'
                  '<a href="https://r.esp-mailer.net/?u=https%3A%2F%2Fwww.partner-shop.com">'
                  'https://www.partner-shop.com</a>'
                  '<a href="https://example.org/a">Read more</a>'
                  '<a href="mailto:x@y.example">www.garden-tools.com</a>')
    assert found(message("news@garden-tools.com", newsletter, html=True)) == {}
    # the recipient's own domain exactly, and its subdomains, in From and links
    own = ('<a href="https://mail.northwind-traders.com/owa">'
           'https://northwind-traders.com/</a> https://northwind-traders.com/x')
    assert found(message("boss@northwind-traders.com", own, html=True)) == {}
    # brands themselves, their other suffixes, subdomains; one brand linking another
    assert found(message("service@paypal.com", "https://www.paypal.de/ https://paypal.co.uk/ "
                                                 "https://www.amazon.de/ https://m.facebook.com/"
                                                 " https://instagram.com/p/1")) == {}
    # short names have too many innocent neighbours for edit distance
    assert found(message("info@upc.com", "https://www.dhb.de/ https://visit.ch/")) == {}


def test_edit_distance_and_skeletons() -> None:
    assert osa_distance("paypal", "paypal") == 0
    assert osa_distance("paypal", "pyapal") == 1  # a transposition is one edit
    assert osa_distance("paypal", "paypl") == 1
    assert osa_distance("abcdef", "uvwxyz") == 3  # capped
    assert skeleton(f"p{CYRILLIC_A}yp{CYRILLIC_A}l") == "paypal"
    assert skeleton("rnicrosoft") == "microsoft" and skeleton("g00gle") == "google"
    assert lookalike("bankofamerca.com") == "bankofamerica.com"
    assert lookalike("bnkofamercia.com") == "bankofamerica.com"  # distance 2: a long name
    assert lookalike("paypal.com") == "" and lookalike("paypal.de") == ""
    assert lookalike("pypl.com") == ""  # distance 2 from a six-letter name: not taken


def test_the_links_read_are_capped() -> None:
    filler = '<a href="https://garden-tools.com/x">more</a>' * MAX_ANCHORS
    late = '<a href="http://evil.example/">https://paypal.com/</a>'
    assert found(message("x@mailer.example", filler + late, html=True)) == {}
    assert "phishing-link-impersonation" in found(
        message("x@mailer.example", late + filler, html=True))


async def test_in_the_pipeline_the_check_reads_the_one_parse() -> None:
    data = message("service@paypa1.com")
    before = PARSES.copy()
    verdict = await FilterPipeline([PhishingCheck()]).run(FilterInput(
        "service@paypa1.com", OWN, data, "192.0.2.1", "mail.example"))
    assert PARSES - before == {"message": 1}
    assert [(f.check, f.score) for f in verdict.findings] == [("phishing-lookalike", 4.0)]
