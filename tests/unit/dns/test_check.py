"""The domain check's evaluation: given lookups, the checklist items (no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailward.config import Settings, load_settings
from mailward.dns import Lookup, Outcome, Record
from mailward.dns.check import (
    CheckItem,
    ClientName,
    DnsblHost,
    DnsblQuery,
    NsAnswer,
    Observations,
    PreviousAnswer,
    answer_text,
    check_client_name,
    check_dkim,
    check_dmarc,
    check_dnsbl,
    check_mx,
    check_propagation,
    check_spf,
    current_answer,
    dnsbl_name,
    evaluate,
    observed_answers,
    propagation_eta,
    worst,
)

APEX = "acme.example."
OURS = [("mx1.filter.example", 10), ("mx2.filter.example", 20)]


def mx_lookup(*records: tuple[int, str], ttl: int = 300, server: str | None = None,
              outcome: Outcome = Outcome.ANSWER, detail: str = "") -> Lookup:
    found = tuple(Record(APEX, ttl, "IN", "MX", p, h) for p, h in records)
    if outcome is Outcome.ANSWER and not found:
        outcome = Outcome.NO_ANSWER
    return Lookup(APEX, "MX", outcome, found, server, detail)


def txt(name: str, *texts: str, outcome: Outcome = Outcome.ANSWER) -> Lookup:
    found = tuple(Record(name, 300, "IN", "TXT", None, t) for t in texts)
    if outcome is Outcome.ANSWER and not found:
        outcome = Outcome.NO_ANSWER
    return Lookup(name, "TXT", outcome, found, None, "")


def lookup(name: str, rdtype: str, *records: Record,
           outcome: Outcome | None = None) -> Lookup:
    kind = outcome or (Outcome.ANSWER if records else Outcome.NXDOMAIN)
    return Lookup(name, rdtype, kind, records, None, "" if records else f"{name} does not exist")


def by_name(items: list[CheckItem]) -> dict[str, CheckItem]:
    return {item.name: item for item in items}


GOOD = mx_lookup((10, "mx1.filter.example."), (20, "mx2.filter.example."))

# -- MX ----------------------------------------------------------------------------------------


def test_mx_set_equal_to_ours_passes_and_reports_ttls() -> None:
    items = by_name(check_mx(OURS, GOOD, hosted=False))
    assert set(items) == {"mx", "mx-ttl"}
    assert items["mx"].status == "pass" and items["mx"].fix == ""
    assert items["mx-ttl"] == CheckItem(
        "mx-ttl", "pass", "MX TTLs: mx1.filter.example. 300 s, mx2.filter.example. 300 s")


def test_missing_and_foreign_hosts_fail_with_one_line_fixes() -> None:
    seen = mx_lookup((10, "mx1.filter.example."), (5, "inbound.elsewhere.example."))
    items = by_name(check_mx(OURS, seen, hosted=False))
    missing = items["mx-missing:mx2.filter.example"]
    assert missing.status == "fail"
    assert missing.fix == "add: acme.example. 3600 IN MX 20 mx2.filter.example."
    foreign = items["mx-foreign:inbound.elsewhere.example"]
    assert foreign.status == "fail" and "bypasses the filter" in foreign.message
    assert foreign.fix == "remove: acme.example. IN MX 5 inbound.elsewhere.example."
    assert "mx" not in items
    hosted = by_name(check_mx(OURS, seen, hosted=True))
    assert "mailboxes" in hosted["mx-foreign:inbound.elsewhere.example"].message
    assert all("\n" not in item.fix for item in items.values())


@pytest.mark.parametrize("priorities", [(20, 10), (10, 10)])
def test_priorities_out_of_order_warn(priorities: tuple[int, int]) -> None:
    first, second = priorities
    seen = mx_lookup((first, "mx1.filter.example."), (second, "mx2.filter.example."))
    items = by_name(check_mx(OURS, seen, hosted=False))
    assert items["mx-order"].status == "warn"
    assert items["mx-order"].fix == (
        "set the priorities to: MX 10 mx1.filter.example., MX 20 mx2.filter.example.")
    shifted = mx_lookup((1, "mx1.filter.example."), (2, "mx2.filter.example."))
    assert "mx-order" not in by_name(check_mx(OURS, shifted, hosted=False))  # same order


def test_long_ttls_warn_with_advice_to_lower_them() -> None:
    seen = mx_lookup((10, "mx1.filter.example."), (20, "mx2.filter.example."), ttl=86400)
    item = by_name(check_mx(OURS, seen, hosted=False))["mx-ttl"]
    assert item.status == "warn" and "mx1.filter.example. 86400 s" in item.message
    assert "300" in item.fix


@pytest.mark.parametrize(("outcome", "fix_part"), [
    (Outcome.NXDOMAIN, "register the domain"),
    (Outcome.NO_ANSWER, "add: acme.example. 3600 IN MX 10 mx1.filter.example.; "),
    (Outcome.TIMEOUT, "nameservers answer"),
    (Outcome.SERVFAIL, "nameservers answer"),
])
def test_failed_mx_lookups_fail(outcome: Outcome, fix_part: str) -> None:
    [item] = check_mx(OURS, mx_lookup(outcome=outcome, detail="why"), hosted=False)
    assert (item.name, item.status) == ("mx", "fail")
    assert outcome.value in item.message and fix_part in item.fix


# -- propagation -------------------------------------------------------------------------------


NS = lookup(APEX, "NS", Record(APEX, 3600, "IN", "NS", None, "ns1.acme.example."),
            Record(APEX, 3600, "IN", "NS", None, "ns2.acme.example."))


def ns_answer(number: int, seen: Lookup | None) -> NsAnswer:
    server = f"127.0.0.{number + 1}:5353"
    return NsAnswer(f"ns{number}.acme.example.", server if seen else None, seen,
                    "" if seen else "no address")


def test_agreement_passes() -> None:
    items = by_name(check_propagation(OURS, NS, [ns_answer(1, GOOD), ns_answer(2, GOOD)],
                                      [GOOD]))
    assert items["propagation"].status == "pass"
    assert items["propagation"].message.startswith("3 servers agree: 10 mx1.filter.example.")
    assert items["nameservers"].status == "pass"


def test_disagreement_names_old_and_new_servers() -> None:
    old = mx_lookup((5, "inbound.elsewhere.example."))
    items = by_name(check_propagation(
        OURS, NS, [ns_answer(1, GOOD), ns_answer(2, old)], [old]))
    item = items["propagation"]
    assert item.status == "warn" and item.fix
    assert item.message == (
        "still propagating: new answer (10 mx1.filter.example., 20 mx2.filter.example.) "
        "from ns1.acme.example. (127.0.0.2:5353); old answer (5 inbound.elsewhere.example.) "
        "from ns2.acme.example. (127.0.0.3:5353), the resolvers")


def test_without_our_set_the_authoritative_majority_is_new() -> None:
    a = mx_lookup((5, "a.example."))
    b = mx_lookup((5, "b.example."))
    item = by_name(check_propagation(OURS, NS, [ns_answer(1, b), ns_answer(2, b)],
                                     [a]))["propagation"]
    assert item.message.startswith("still propagating: new answer (5 b.example.)")


def test_unreachable_nameservers_warn() -> None:
    timeout = mx_lookup(outcome=Outcome.TIMEOUT, detail="no answer within 1 s",
                        server="127.0.0.3:5353")
    items = by_name(check_propagation(
        OURS, NS, [ns_answer(1, GOOD), ns_answer(2, timeout), ns_answer(3, None)], [GOOD]))
    warn = items["nameservers-unreachable"]
    assert warn.status == "warn"
    assert "ns2.acme.example. (127.0.0.3:5353): timeout: no answer within 1 s" in warn.message
    assert "ns3.acme.example.: no address" in warn.message
    assert items["propagation"].status == "pass"


def test_no_nameservers_found_warns() -> None:
    missing = lookup(APEX, "NS")
    items = by_name(check_propagation(OURS, missing, [], [GOOD]))
    assert items["nameservers"].status == "warn" and "NS delegation" in items["nameservers"].fix


# -- propagation ETA (history facts passed in) ----------------------------------------------

OLD = mx_lookup((5, "inbound.elsewhere.example."), ttl=3600)
OLD_TEXT = "5 inbound.elsewhere.example."
GOOD_TEXT = "10 mx1.filter.example.,20 mx2.filter.example."
CHANGED = datetime(2026, 11, 30, 13, 5, 20, tzinfo=UTC)
BEFORE = PreviousAnswer(OLD_TEXT, 3600, CHANGED)


def test_answer_text_is_canonical() -> None:
    assert answer_text(frozenset({(20, "b.example."), (10, "a.example.")})) == (
        "10 a.example.,20 b.example.")
    assert answer_text(frozenset()) == ""


def test_observed_answers_are_distinct_with_the_longest_ttl() -> None:
    cached = mx_lookup((5, "inbound.elsewhere.example."), ttl=1200, server="127.0.0.1:53")
    failed = mx_lookup(outcome=Outcome.TIMEOUT, server="127.0.0.1:54")
    seen = Observations(APEX, False, cached, NS,
                        (ns_answer(1, GOOD), ns_answer(2, OLD), ns_answer(3, None)),
                        (cached, failed, mx_lookup()))
    assert observed_answers(seen) == [(GOOD_TEXT, 300), (OLD_TEXT, 3600)]  # by text


def test_current_answer_is_the_new_one() -> None:
    moving = Observations(APEX, False, OLD, NS, (ns_answer(1, GOOD), ns_answer(2, OLD)), (OLD,))
    assert current_answer(OURS, moving) == GOOD_TEXT
    nothing = Observations(APEX, False, mx_lookup(), NS, (ns_answer(1, mx_lookup()),), ())
    assert current_answer(OURS, nothing) is None


def test_eta_is_the_change_plus_the_old_ttl() -> None:
    assert propagation_eta(None) is None
    assert propagation_eta(BEFORE) == CHANGED + timedelta(hours=1)


def test_disagreement_tells_when_every_cache_has_the_new_answer() -> None:
    now = CHANGED + timedelta(minutes=10)
    item = by_name(check_propagation(OURS, NS, [ns_answer(1, GOOD), ns_answer(2, OLD)],
                                     [OLD], previous=BEFORE, now=now))["propagation"]
    assert item.status == "warn"
    assert item.message.endswith(
        "; every cache has the new answer by 2026-11-30 14:06 UTC "  # rounded up
        "(changed at 13:05, old TTL 3600 s)")


def test_disagreement_past_the_eta_says_a_server_is_stuck() -> None:
    now = CHANGED + timedelta(hours=2)
    item = by_name(check_propagation(OURS, NS, [ns_answer(1, GOOD), ns_answer(2, OLD)],
                                     [OLD], previous=BEFORE, now=now))["propagation"]
    assert item.status == "warn"
    assert "should have had the new answer by 2026-11-30 14:06 UTC" in item.message
    assert "a server still gives an old one" in item.message


def test_agreement_before_the_eta_warns_that_caches_may_hold_the_old_answer() -> None:
    now = CHANGED + timedelta(minutes=30)
    item = by_name(check_propagation(OURS, NS, [ns_answer(1, GOOD), ns_answer(2, GOOD)],
                                     [GOOD], previous=BEFORE, now=now))["propagation"]
    assert item.status == "warn"
    assert item.message == (
        "3 servers agree: 10 mx1.filter.example., 20 mx2.filter.example.; caches may still "
        "hold the old answer (5 inbound.elsewhere.example.) until 2026-11-30 14:06 UTC "
        "(changed at 13:05, old TTL 3600 s)")
    assert item.fix == ("nothing to change: mail may still reach the old MX hosts until "
                        "2026-11-30 14:06 UTC")


def test_agreement_after_the_eta_passes_as_propagated() -> None:
    now = CHANGED + timedelta(hours=1)
    item = by_name(check_propagation(OURS, NS, [ns_answer(1, GOOD), ns_answer(2, GOOD)],
                                     [GOOD], previous=BEFORE, now=now))["propagation"]
    assert (item.status, item.fix) == ("pass", "")
    assert item.message.endswith("; propagated: every cache has had the new answer since "
                                 "2026-11-30 14:06 UTC (changed at 13:05, old TTL 3600 s)")


def test_an_old_change_is_not_reported() -> None:
    now = CHANGED + timedelta(days=30)
    item = by_name(check_propagation(OURS, NS, [ns_answer(1, GOOD)], [GOOD],
                                     previous=BEFORE, now=now))["propagation"]
    assert item == CheckItem("propagation", "pass",
                             "2 servers agree: 10 mx1.filter.example., 20 mx2.filter.example.")


def test_a_change_on_another_day_shows_its_date() -> None:
    late = PreviousAnswer(OLD_TEXT, 7200, datetime(2026, 11, 30, 23, 0, tzinfo=UTC))
    item = by_name(check_propagation(OURS, NS, [ns_answer(1, GOOD), ns_answer(2, OLD)],
                                     [OLD], previous=late, now=late.changed_at)
                   )["propagation"]
    assert item.message.endswith("by 2026-12-01 01:00 UTC (changed at 2026-11-30 23:00 UTC, "
                                 "old TTL 7200 s)")


def test_a_previous_answer_equal_to_the_new_one_is_ignored() -> None:
    same = PreviousAnswer(GOOD_TEXT, 3600, CHANGED)
    item = by_name(check_propagation(OURS, NS, [ns_answer(1, GOOD)], [GOOD], previous=same,
                                     now=CHANGED))["propagation"]
    assert (item.status, item.message.count(";")) == ("pass", 0)


# -- client names ------------------------------------------------------------------------------

NAME = "mail.acme.example."
HOST = "mail.host.example."


def cname(target: str, owner: str = NAME) -> Record:
    return Record(owner, 300, "IN", "CNAME", None, target)


def a(address: str, owner: str = NAME) -> Record:
    return Record(owner, 300, "IN", "A", None, address)


def client(cname_lookup: Lookup, address: Lookup, *others: Lookup,
           targets: frozenset[str] = frozenset({"192.0.2.1"})) -> ClientName:
    return ClientName(NAME, HOST, cname_lookup, address, others, targets)


def test_a_cname_to_the_hosting_host_passes() -> None:
    item = check_client_name(client(lookup(NAME, "CNAME", cname(HOST)),
                                    lookup(NAME, "A", cname(HOST), a("192.0.2.1", HOST))))
    assert (item.name, item.status, item.fix) == ("cname-mail", "pass", "")


def test_a_cname_chain_reaching_the_hosting_host_passes() -> None:
    hop = "hop.acme.example."
    item = check_client_name(client(lookup(NAME, "CNAME", cname(hop)),
                                    lookup(NAME, "A", cname(hop), cname(HOST, hop))))
    assert item.status == "pass"


def test_a_cname_elsewhere_fails() -> None:
    item = check_client_name(client(lookup(NAME, "CNAME", cname("old.example.")),
                                    lookup(NAME, "A", cname("old.example."))))
    assert item.status == "fail"
    assert item.fix == "change the record to: mail.acme.example. 3600 IN CNAME mail.host.example."


def test_a_cname_beside_other_records_fails() -> None:
    other = lookup(NAME, "TXT", Record(NAME, 300, "IN", "TXT", None, "hello"))
    item = check_client_name(client(lookup(NAME, "CNAME", cname(HOST)),
                                    lookup(NAME, "A", a("192.0.2.1")), other))
    assert item.status == "fail"
    assert "a name with a CNAME cannot hold other records" in item.message
    assert item.fix == ("delete the A, TXT records at mail.acme.example. and keep only: "
                        "mail.acme.example. 3600 IN CNAME mail.host.example.")
    assert "keep" in item.fix and "A record" not in item.fix.split("keep only")[1]


def test_a_records_compare_with_the_hosting_hosts_addresses() -> None:
    no_alias = lookup(NAME, "CNAME", outcome=Outcome.NO_ANSWER)
    same = check_client_name(client(no_alias, lookup(NAME, "A", a("192.0.2.1"))))
    assert same.status == "pass"
    other = check_client_name(client(no_alias, lookup(NAME, "A", a("198.51.100.7"))))
    assert other.status == "fail" and "198.51.100.7" in other.message
    assert other.fix.endswith("mail.acme.example. 3600 IN CNAME mail.host.example.")


def test_a_missing_name_fails_with_the_record_to_add() -> None:
    item = check_client_name(client(lookup(NAME, "CNAME"), lookup(NAME, "A")))
    assert item.status == "fail"
    assert item.fix == "add: mail.acme.example. 3600 IN CNAME mail.host.example."


def test_a_client_name_lookup_timeout_warns() -> None:
    item = check_client_name(client(lookup(NAME, "CNAME", outcome=Outcome.TIMEOUT),
                                    lookup(NAME, "A", outcome=Outcome.TIMEOUT)))
    assert item.status == "warn"


# -- SPF, DKIM, DMARC --------------------------------------------------------------------------

MX_NAMES = ["mx1.filter.example", "mx2.filter.example"]


@pytest.mark.parametrize(("texts", "status"), [
    (("v=spf1 mx ~all",), "pass"),
    (("v=spf1 a:box.host.example -all",), "pass"),
    (("v=spf1 include:mx1.filter.example -all", "other text"), "pass"),
    ((), "warn"),
    (("google-site-verification=x",), "warn"),
    (("v=spf1 ip4:192.0.2.9 ~all",), "warn"),
    (("v=spf1 include:_spf.other.example -all",), "warn"),
    (("v=spf1 ip4:192.0.2.9 -all",), "fail"),
    (("v=spf1 mx -all", "v=spf1 a -all"), "fail"),
])
def test_spf(texts: tuple[str, ...], status: str) -> None:
    item = check_spf(txt(APEX, *texts), "box.host.example", MX_NAMES)
    assert item.status == status
    assert bool(item.fix) == (status != "pass")


def test_spf_fix_keeps_the_existing_terms() -> None:
    item = check_spf(txt(APEX, "v=spf1 ip4:192.0.2.9 -all"), "box.host.example", MX_NAMES)
    assert item.fix == ('change the record to: acme.example. 3600 IN TXT '
                        '"v=spf1 mx a:box.host.example ip4:192.0.2.9 -all"')
    missing = check_spf(txt(APEX), "box.host.example", MX_NAMES)
    assert missing.fix == 'add: acme.example. 3600 IN TXT "v=spf1 mx a:box.host.example ~all"'


KEY = "MIIBIjANBgkqh" + "k" * 40
DKIM_NAME = "s1._domainkey.acme.example."


def test_dkim() -> None:
    good = check_dkim(txt(DKIM_NAME, f"v=DKIM1; k=rsa; p={KEY[:20]} {KEY[20:]}"),
                      ("s1", KEY), APEX)
    assert good.status == "pass"
    other = check_dkim(txt(DKIM_NAME, "v=DKIM1; k=rsa; p=MIIBother"), ("s1", KEY), APEX)
    assert other.status == "fail" and "not the domain's key" in other.message
    assert "mailward domain dkim acme.example" in other.fix
    missing = check_dkim(txt(DKIM_NAME), ("s1", KEY), APEX)
    assert missing.status == "fail" and "no DKIM key is published" in missing.message
    no_key = check_dkim(None, None, APEX)
    assert no_key.status == "fail"


def test_dmarc() -> None:
    assert check_dmarc(txt("_dmarc.acme.example.", "v=DMARC1; p=none")).status == "pass"
    missing = check_dmarc(txt("_dmarc.acme.example."))
    assert missing.status == "warn"
    assert missing.fix == ('add: _dmarc.acme.example. 3600 IN TXT "v=DMARC1; p=none; '
                           'rua=mailto:postmaster@acme.example"')


# -- DNSBL listings of our MX hosts ------------------------------------------------------------

MX1 = "mailfilter1.example.net."
ZEN = "zen.spamhaus.org"


def dnsbl_host(*answers: tuple[str, Lookup], host: str = MX1) -> DnsblHost:
    """``host`` with the given addresses, each with its lookup at the blocklist ZEN."""
    records = tuple(Record(host, 300, "IN", "A", None, address) for address, _ in answers)
    addresses = lookup(host, "A", *records)
    return DnsblHost(host, addresses, tuple(
        DnsblQuery(address, f"{ZEN}.", found) for address, found in answers))


def listed(address: str, *codes: str) -> Lookup:
    name = dnsbl_name(address, ZEN)
    return lookup(name, "A", *(Record(name, 60, "IN", "A", None, c) for c in codes))


def test_dnsbl_name_reverses_the_octets() -> None:
    assert dnsbl_name("192.0.2.10", "zen.spamhaus.org") == "10.2.0.192.zen.spamhaus.org."
    assert dnsbl_name("192.0.2.10", "bl.test.") == "10.2.0.192.bl.test."


def test_an_address_not_on_the_blocklist_passes() -> None:
    item = check_dnsbl(dnsbl_host(("192.0.2.10", listed("192.0.2.10"))), ZEN)  # NXDOMAIN
    assert item == CheckItem(
        "dnsbl:mailfilter1.example.net:zen.spamhaus.org", "pass",
        "mailfilter1.example.net (192.0.2.10) is not listed on zen.spamhaus.org")


def test_a_listed_address_fails() -> None:
    host = dnsbl_host(("192.0.2.10", listed("192.0.2.10", "127.0.0.2", "127.0.0.4")),
                      ("192.0.2.11", listed("192.0.2.11")))
    item = check_dnsbl(host, ZEN)
    assert item.status == "fail"
    assert item.message == ("mailfilter1.example.net (192.0.2.10) is listed on "
                            "zen.spamhaus.org (127.0.0.2, 127.0.0.4)")
    assert item.fix == ("request delisting at the blocklist; until then mail from this host "
                        "may be refused")


@pytest.mark.parametrize("code", ["127.255.255.254", "127.255.255.252", "192.0.2.99"])
def test_error_codes_and_foreign_answers_warn(code: str) -> None:
    item = check_dnsbl(dnsbl_host(("192.0.2.10", listed("192.0.2.10", code))), ZEN)
    assert item.status == "warn" and item.fix
    assert item.message == (
        "mailfilter1.example.net (192.0.2.10) could not be checked on zen.spamhaus.org: "
        f"the blocklist answered {code}, which is not a listing")


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.SERVFAIL])
def test_a_failed_blocklist_lookup_warns(outcome: Outcome) -> None:
    name = dnsbl_name("192.0.2.10", ZEN)
    failed = Lookup(name, "A", outcome, (), None, "no answer within 5 s")
    item = check_dnsbl(dnsbl_host(("192.0.2.10", failed)), ZEN)
    assert item.status == "warn"
    assert item.message.startswith(
        "mailfilter1.example.net (192.0.2.10) could not be checked on zen.spamhaus.org: "
        f"{outcome.value}: no answer within 5 s")


def test_a_host_without_ipv4_address_or_whose_lookup_failed_warns() -> None:
    nothing = check_dnsbl(dnsbl_host(), ZEN)
    assert nothing.status == "warn" and "no IPv4 address" in nothing.message
    timed_out = DnsblHost(MX1, Lookup(MX1, "A", Outcome.TIMEOUT, (), None, "slow"))
    item = check_dnsbl(timed_out, ZEN)
    assert item.status == "warn" and "timeout: slow" in item.message


def test_evaluate_checks_each_host_on_each_zone_only_when_zones_are_set(
        settings: Settings) -> None:
    mx2 = "mailfilter2.example.net."
    hosts = (dnsbl_host(("192.0.2.10", listed("192.0.2.10", "127.0.0.2"))),
             dnsbl_host(("192.0.2.20", listed("192.0.2.20")), host=mx2))
    seen = Observations(APEX, False, GOOD, NS, (ns_answer(1, GOOD),), (GOOD,), dnsbl=hosts)
    assert not any(i.name.startswith("dnsbl") for i in evaluate(settings, seen).items)
    zoned = settings.model_copy(update={"dnsbl_zones": [ZEN]})
    result = evaluate(zoned, seen)
    found = {i.name: i.status for i in result.items if i.name.startswith("dnsbl")}
    assert found == {"dnsbl:mailfilter1.example.net:zen.spamhaus.org": "fail",
                     "dnsbl:mailfilter2.example.net:zen.spamhaus.org": "pass"}
    assert result.status == "fail"


# -- all together ------------------------------------------------------------------------------


@pytest.fixture
def settings() -> Settings:
    return load_settings(mx_hosts="mx2.filter.example:20,mx1.filter.example:10",
                         hosting_host="mail.host.example", webmail_host="web.host.example")


def test_evaluate_filtering_only_domain(settings: Settings) -> None:
    seen = Observations(APEX, False, GOOD, NS, (ns_answer(1, GOOD), ns_answer(2, GOOD)),
                        (GOOD,))
    result = evaluate(settings, seen)
    assert (result.domain, result.hosted, result.status) == ("acme.example", False, "pass")
    assert [i.name for i in result.items] == ["mx", "mx-ttl", "nameservers", "propagation"]
    assert result.propagation_eta is None


def test_evaluate_reports_the_eta(settings: Settings) -> None:
    seen = Observations(APEX, False, OLD, NS, (ns_answer(1, GOOD), ns_answer(2, OLD)), (OLD,))
    result = evaluate(settings, seen, previous=BEFORE, now=CHANGED)
    assert result.propagation_eta == CHANGED + timedelta(hours=1)
    assert "every cache has the new answer by" in by_name(result.items)["propagation"].message
    agreed = Observations(APEX, False, GOOD, NS, (ns_answer(1, GOOD),), (GOOD,))
    done = evaluate(settings, agreed, previous=BEFORE, now=CHANGED + timedelta(days=8))
    assert (done.status, done.propagation_eta) == ("pass", None)


def test_evaluate_hosted_domain_is_the_worst_item(settings: Settings) -> None:
    seen = Observations(
        APEX, True, GOOD, NS, (ns_answer(1, GOOD),), (GOOD,),
        clients=(client(lookup(NAME, "CNAME", cname(HOST)), lookup(NAME, "A", cname(HOST))),),
        spf=txt(APEX, "v=spf1 mx ~all"), dkim=txt(DKIM_NAME, f"v=DKIM1; p={KEY}"),
        dmarc=txt("_dmarc.acme.example."), dkim_key=("s1", KEY))
    result = evaluate(settings, seen)
    assert result.status == "warn"  # DMARC missing
    assert [i.name for i in result.items][-4:] == ["cname-mail", "spf", "dkim", "dmarc"]


def test_worst() -> None:
    assert worst([]) == "pass"
    assert worst([CheckItem("a", "warn", ""), CheckItem("b", "pass", "")]) == "warn"
    assert worst([CheckItem("a", "warn", ""), CheckItem("b", "fail", "", "x")]) == "fail"
