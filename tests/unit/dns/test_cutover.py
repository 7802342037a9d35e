"""Cut-over readiness rules: given a DNS check, addresses and servers, the blockers."""

from __future__ import annotations

from datetime import UTC, datetime

from mailward.db.models import AddressKind
from mailward.dns.check import CheckItem, DomainCheck, worst
from mailward.dns.cutover import (
    MAX_LISTED,
    AddressState,
    Readiness,
    address_blockers,
    dns_blockers,
    evaluate,
    is_switched,
)

DOMAIN = "acme.example"
HOSTING = "mail.example.net"
GOOD_ITEMS = [
    CheckItem("mx", "pass", "the MX records are exactly our filtering hosts"),
    CheckItem("mx-ttl", "pass", "MX TTLs: 300 s"),
    CheckItem("nameservers", "pass", "every nameserver answered"),
    CheckItem("propagation", "pass", "3 servers agree"),
]
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def dns(*items: CheckItem) -> DomainCheck:
    found = list(items) or list(GOOD_ITEMS)
    return DomainCheck(DOMAIN, False, worst(found), found)


def replaced(**by_name: CheckItem) -> DomainCheck:
    return dns(*(by_name.get(i.name.replace("-", "_"), i) for i in GOOD_ITEMS))


def mailbox(name: str, *, password: bool = True) -> AddressState:
    return AddressState(f"{name}@{DOMAIN}", AddressKind.MAILBOX, password, 0)


def readiness(check: DomainCheck | None = None, *, addresses: list[AddressState] | None = None,
              hosting: bool = True, servers: tuple[str, ...] = ("mx.customer.example",)
              ) -> Readiness:
    return evaluate(DOMAIN, hosting=hosting, servers=servers, hosting_host=HOSTING,
                    addresses=[mailbox("alice")] if addresses is None else addresses,
                    check=dns() if check is None else check, now=NOW)


def kinds(result: Readiness) -> list[str]:
    return [b.kind for b in result.blockers]


def test_a_ready_domain() -> None:
    result = readiness(addresses=[
        mailbox("alice"),
        AddressState(f"sales@{DOMAIN}", AddressKind.FORWARDER, False, 2),
        AddressState(f"boss@{DOMAIN}", AddressKind.AUTOCC, True, 1),
    ])
    assert (result.ready, result.switched, result.blockers, result.warnings) == (
        True, False, [], [])
    assert (result.addresses, result.blocked_addresses, result.checked) == (3, 0, NOW)
    assert result.servers == ["mx.customer.example"]


def test_foreign_and_missing_mx_hosts_block_with_the_checks_fixes() -> None:
    check = dns(
        CheckItem("mx-missing:mx2.filter.example", "fail", "mx2 is not among the MX records",
                  "add: acme.example. 3600 IN MX 20 mx2.filter.example."),
        CheckItem("mx-foreign:mx.old.example", "fail", "mx.old.example. bypasses the filter",
                  "remove: acme.example. IN MX 5 mx.old.example."),
        CheckItem("mx-ttl", "warn", "MX TTL above 3600 s", "lower the TTL"),
        *GOOD_ITEMS[2:],
    )
    result = readiness(check)
    assert not result.ready
    assert kinds(result) == ["mx", "mx"]
    assert result.blockers[0].message == (
        "mx-missing:mx2.filter.example: mx2 is not among the MX records")
    assert result.blockers[0].fix == "add: acme.example. 3600 IN MX 20 mx2.filter.example."
    assert result.blockers[1].fix == "remove: acme.example. IN MX 5 mx.old.example."
    assert [(w.kind, w.fix) for w in result.warnings] == [("mx", "lower the TTL")]


def test_a_failed_mx_lookup_blocks() -> None:
    result = readiness(replaced(mx=CheckItem("mx", "fail", "the MX lookup failed: timeout",
                                             "make the nameservers answer")))
    assert kinds(result) == ["mx"]
    assert result.blockers[0].fix == "make the nameservers answer"


def test_mx_order_only_warns() -> None:
    check = dns(*GOOD_ITEMS, CheckItem("mx-order", "warn", "out of order", "set 10, 20"))
    result = readiness(check)
    assert result.ready
    assert [(w.kind, w.message) for w in result.warnings] == [("mx", "mx-order: out of order")]


def test_propagation_still_under_way_blocks() -> None:
    result = readiness(replaced(propagation=CheckItem(
        "propagation", "warn", "still propagating: old answer from ns2", "wait for the TTL")))
    assert kinds(result) == ["propagation"]
    assert result.blockers[0].message == (
        "propagation: still propagating: old answer from ns2")
    assert result.blockers[0].fix == "wait for the TTL"


def test_unreachable_or_unknown_nameservers_block() -> None:
    unreachable = CheckItem("nameservers-unreachable", "warn", "ns3 timed out", "fix ns3")
    result = readiness(replaced(nameservers=unreachable))
    assert kinds(result) == ["propagation"]
    assert result.blockers[0].fix == "fix ns3"
    unknown = CheckItem("nameservers", "warn", "NS lookup failed", "check the delegation")
    assert kinds(readiness(replaced(nameservers=unknown))) == ["propagation"]


def test_a_check_without_the_mx_or_propagation_pass_blocks() -> None:
    result = readiness(dns(GOOD_ITEMS[1]))  # neither "mx" nor "propagation" is there
    assert kinds(result) == ["mx", "propagation"]
    assert all(b.fix == f"check again: mailward dns check {DOMAIN}" for b in result.blockers)
    blockers, warnings = dns_blockers(dns())
    assert (blockers, warnings) == ([], [])


def test_other_failing_items_are_warnings() -> None:
    result = readiness(dns(*GOOD_ITEMS, CheckItem("dnsbl", "fail", "listed", "delist")))
    assert result.ready
    assert [(w.kind, w.fix) for w in result.warnings] == [("dns", "delist")]


def test_addresses_that_are_not_ready_block() -> None:
    addresses = [
        AddressState(f"new@{DOMAIN}", AddressKind.PENDING, False, 0),
        mailbox("nopass", password=False),
        AddressState(f"cc@{DOMAIN}", AddressKind.AUTOCC, False, 1),
        AddressState(f"fwd@{DOMAIN}", AddressKind.FORWARDER, False, 0),
        mailbox("fine"),
    ]
    result = readiness(addresses=addresses)
    assert not result.ready
    assert (result.addresses, result.blocked_addresses) == (5, 4)
    messages = {b.message.split(" ", 1)[0]: b for b in result.blockers}
    assert list(messages) == [f"cc@{DOMAIN}", f"fwd@{DOMAIN}", f"new@{DOMAIN}",
                              f"nopass@{DOMAIN}"]  # sorted
    pending = messages[f"new@{DOMAIN}"]
    assert pending.kind == "address"
    assert "pending setup: give it a password or destinations" in pending.message
    assert pending.fix.startswith(f"mailward address setup new@{DOMAIN} --mailbox")
    assert messages[f"nopass@{DOMAIN}"].fix == f"mailward address password nopass@{DOMAIN}"
    assert "auto-cc mailbox without a password" in messages[f"cc@{DOMAIN}"].message
    assert messages[f"fwd@{DOMAIN}"].fix == f"mailward address forward fwd@{DOMAIN} DEST1,DEST2"


def test_the_list_of_blocking_addresses_is_capped() -> None:
    many = [AddressState(f"u{n:03}@{DOMAIN}", AddressKind.PENDING, False, 0)
            for n in range(MAX_LISTED + 7)]
    blockers, count = address_blockers(many, domain=DOMAIN)
    assert count == MAX_LISTED + 7
    assert len(blockers) == MAX_LISTED + 1
    assert blockers[-1].message == "and 7 more addresses not ready"
    assert blockers[-1].fix == (
        f"list the pending ones: mailward address list --domain {DOMAIN} --kind pending")
    one_more, _ = address_blockers(many[: MAX_LISTED + 1])
    assert one_more[-1].message == "and 1 more address not ready"
    result = readiness(addresses=many)
    assert (len(result.blockers), result.blocked_addresses) == (MAX_LISTED + 1, MAX_LISTED + 7)


def test_no_addresses_warns() -> None:
    result = readiness(addresses=[])
    assert result.ready
    assert [w.kind for w in result.warnings] == ["address"]
    assert "has no addresses" in result.warnings[0].message


def test_hosting_off_blocks() -> None:
    result = readiness(hosting=False)
    assert kinds(result) == ["hosting"]
    assert result.blockers[0].fix == (
        f"an operator switches it on: mailward domain hosting {DOMAIN} on")


def test_already_switched_is_not_a_blocker() -> None:
    assert is_switched(["MAIL.example.net."], HOSTING)
    assert not is_switched([], HOSTING)
    assert not is_switched([HOSTING, "mx.customer.example"], HOSTING)
    pending = AddressState(f"new@{DOMAIN}", AddressKind.PENDING, False, 0)
    result = evaluate(DOMAIN, hosting=True, servers=[HOSTING], hosting_host=HOSTING,
                      addresses=[pending], check=None, now=NOW)
    assert (result.ready, result.switched, result.blockers) == (True, True, [])
    assert [w.kind for w in result.warnings] == ["already-hosted", "address"]
    assert result.warnings[0].message == (
        f"already switched: {DOMAIN} delivers its mail to the hosting servers ({HOSTING})")
    assert result.check is None


def test_mixed_servers_warn_and_a_missing_check_blocks() -> None:
    result = readiness(servers=(HOSTING, "mx.customer.example"))
    assert not result.switched and result.ready
    assert [w.kind for w in result.warnings] == ["servers"]
    unchecked = evaluate(DOMAIN, hosting=True, servers=[], hosting_host=HOSTING,
                         addresses=[mailbox("a")], check=None, now=NOW)
    assert kinds(unchecked) == ["mx"]
