"""The domain check: is what a customer published in DNS what we need?

A checklist of :class:`CheckItem` values, each ``pass``, ``warn`` or ``fail`` with a
one-line fix. Two halves, kept apart so the evaluation can be tested without a network:

* :func:`gather` asks DNS (:class:`~mailward.dns.lookup.DnsTools`) everything the check
  needs and returns it as :class:`Observations`;
* :func:`evaluate` turns observations into items, and the ``check_*`` functions do one
  part each from plain :class:`~mailward.dns.model.Lookup` values.

What is checked: the MX set against the operator's ``mx_hosts`` (missing and foreign
hosts, priority order, TTLs); propagation (the MX set as every authoritative nameserver
of the domain and every configured resolver answers it) and, given the previous answer
from the history of observed answers (:mod:`mailward.dns.history`), when every cache has
the new one: the time of the change plus the old answer's TTL; for hosted domains the
client host names (``mail.``, ``imap.``, ``pop.``, ``smtp.``, ``webmail.``), SPF, DKIM and
DMARC; and, with ``dnsbl_zones`` configured, whether the operator's own MX hosts are listed
on those DNS blocklists (IPv4 addresses only: DNSBLs in the Spamhaus style list IPv4
addresses by reversed octets; IPv6 addresses are not checked).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailward.config import Settings
from mailward.dns.dnsbl import DnsblHost, DnsblQuery, check_dnsbl, dnsbl_host, dnsbl_name
from mailward.dns.items import FAILED, CheckItem, Status, lookup_problem, plain, worst
from mailward.dns.lookup import DnsTools
from mailward.dns.model import Lookup, Outcome
from mailward.net.resolver import absolute_name, parse_nameserver, server_text

__all__ = [
    "CLIENT_LABELS",
    "MAX_MX_TTL",
    "CheckItem",
    "ClientName",
    "DnsblHost",
    "DnsblQuery",
    "DomainCheck",
    "NsAnswer",
    "Observations",
    "PreviousAnswer",
    "answer_text",
    "check_client_name",
    "check_dkim",
    "check_dmarc",
    "check_dnsbl",
    "check_domain",
    "check_mx",
    "check_propagation",
    "check_spf",
    "current_answer",
    "dnsbl_name",
    "evaluate",
    "gather",
    "observed_answers",
    "propagation_eta",
    "worst",
]

CLIENT_LABELS = ("mail", "imap", "pop", "smtp", "webmail")  # webmail → webmail_host
MAX_MX_TTL = 3600  # longer MX TTLs make a change of MX hosts slow to reach every cache
LOW_TTL = 300  # what to lower the TTL to before a change
PASTE_TTL = 3600  # TTL of the records we tell customers to add (as `dns records`)
RECENT_CHANGE = timedelta(days=7)  # how long after its end a propagation is still reported

MxSet = frozenset[tuple[int, str]]  # (priority, exchange with trailing dot)


@dataclass(frozen=True)
class DomainCheck:
    """The checklist of one domain; ``status`` is the worst of its items."""

    domain: str  # ASCII, without the trailing dot
    hosted: bool
    status: Status
    items: list[CheckItem]
    # when every cache has the new MX answer (change time + old TTL); None when no change
    # is known, or it ended more than RECENT_CHANGE ago
    propagation_eta: datetime | None = None


@dataclass(frozen=True)
class PreviousAnswer:
    """The answer DNS gave before the current one, from the history of observed answers."""

    answer: str  # canonical text (:func:`answer_text`)
    ttl: int  # the longest TTL seen with it, seconds
    changed_at: datetime  # when the current answer was first seen (UTC)


@dataclass(frozen=True)
class NsAnswer:
    """The MX set as one authoritative nameserver (one of its addresses) answers it."""

    host: str  # NS host name, absolute
    server: str | None  # "IP:PORT" asked; None when the host has no address
    mx: Lookup | None  # None when there was no address to ask
    detail: str = ""  # why there is no address


@dataclass(frozen=True)
class ClientName:
    """What DNS holds at one client host name (``mail.acme.example.``)."""

    name: str  # absolute
    target: str  # the host it must lead to, absolute
    cname: Lookup
    address: Lookup  # A lookup (follows the CNAME chain)
    others: tuple[Lookup, ...] = ()  # TXT/MX at the name: must be empty beside a CNAME
    target_addresses: frozenset[str] = frozenset()  # A records of ``target``


@dataclass(frozen=True)
class Observations:
    """Everything :func:`gather` asked DNS for one domain."""

    domain: str  # absolute
    hosted: bool
    mx: Lookup  # through the recursive resolvers
    ns: Lookup
    authoritative: tuple[NsAnswer, ...]
    resolvers: tuple[Lookup, ...]  # MX, asked of each configured resolver directly
    clients: tuple[ClientName, ...] = ()
    spf: Lookup | None = None  # TXT at the apex (hosted domains)
    dkim: Lookup | None = None  # TXT at <selector>._domainkey (hosted domains with a key)
    dmarc: Lookup | None = None
    dkim_key: tuple[str, str] | None = None  # (selector, public key base64)
    dnsbl: tuple[DnsblHost, ...] = ()  # our MX hosts, when ``dnsbl_zones`` is set


# -- MX ----------------------------------------------------------------------------------------


def check_mx(configured: Sequence[tuple[str, int]], mx: Lookup, *, hosted: bool
             ) -> list[CheckItem]:
    """The MX set against the operator's ``(host, priority)`` list, and the MX TTLs."""
    apex = mx.name
    wanted = {absolute_name(host): priority for host, priority in configured}
    add_all = "; ".join(f"{apex} {PASTE_TTL} IN MX {p} {h}" for h, p in wanted.items())
    if mx.outcome is not Outcome.ANSWER:
        if mx.outcome is Outcome.NXDOMAIN:
            fix = f"register the domain or fix its delegation, then add: {add_all}"
        elif mx.outcome is Outcome.NO_ANSWER:
            fix = f"add: {add_all}"
        else:
            fix = "make the domain's nameservers answer, then check again"
        return [CheckItem("mx", "fail", f"the MX lookup failed: {lookup_problem(mx)}", fix)]
    published = [r for r in mx.records if r.rdtype == "MX"]
    found = {r.answer.lower(): r.priority or 0 for r in published}
    items: list[CheckItem] = []
    for host, priority in wanted.items():
        if host not in found:
            items.append(CheckItem(
                f"mx-missing:{plain(host)}", "fail",
                f"{host} (priority {priority}) is not among the MX records",
                f"add: {apex} {PASTE_TTL} IN MX {priority} {host}"))
    bypass = ("bypasses the filter" if not hosted
              else "bypasses the filter and does not reach the mailboxes here")
    for host, priority in found.items():
        if host not in wanted:
            items.append(CheckItem(
                f"mx-foreign:{plain(host)}", "fail",
                f"{host} (priority {priority}) is not one of our filtering hosts: mail sent "
                f"to it {bypass}",
                f"remove: {apex} IN MX {priority} {host}"))
    common = [h for h in wanted if h in found]
    out_of_order = any(
        (wanted[a] < wanted[b]) != (found[a] < found[b])
        or (wanted[a] == wanted[b]) != (found[a] == found[b])
        for a in common for b in common if a != b
    )
    if out_of_order:
        shown = ", ".join(f"{h} {found[h]}" for h in common)
        items.append(CheckItem(
            "mx-order", "warn",
            f"the MX priorities are not in the configured order: {shown}",
            "set the priorities to: " + ", ".join(f"MX {wanted[h]} {h}" for h in common)))
    if not items:
        items.append(CheckItem(
            "mx", "pass", "the MX records are exactly our filtering hosts: "
            + ", ".join(f"{p} {h}" for h, p in wanted.items())))
    ttls = ", ".join(f"{r.answer} {r.ttl} s" for r in published)
    long = [r for r in published if r.ttl > MAX_MX_TTL]
    if long:
        items.append(CheckItem(
            "mx-ttl", "warn",
            f"MX TTL above {MAX_MX_TTL} s ({ttls}): a change takes that long to reach "
            "every cache",
            f"lower the TTL of the MX records to {LOW_TTL} at least one old TTL before "
            "changing them"))
    else:
        items.append(CheckItem("mx-ttl", "pass", f"MX TTLs: {ttls}"))
    return items


# -- propagation -------------------------------------------------------------------------------


def _mx_set(lookup: Lookup) -> MxSet | None:
    """The answer as a set; None when the server did not answer (timeout, failure)."""
    if lookup.outcome in FAILED:
        return None
    return frozenset((r.priority or 0, r.answer.lower())
                     for r in lookup.records if r.rdtype == "MX")


def _show_set(answer: MxSet) -> str:
    if not answer:
        return "no MX records"
    return ", ".join(f"{p} {h}" for p, h in sorted(answer))


def answer_text(answer: MxSet) -> str:
    """The canonical text of an MX set: ``"10 mx1.example.net.,20 mx2.example.net."``."""
    return ",".join(f"{p} {h}" for p, h in sorted(answer))


def _collect(
    authoritative: Sequence[NsAnswer], resolvers: Sequence[Lookup]
) -> tuple[dict[MxSet, list[str]], dict[MxSet, int], list[str]]:
    """Servers by answer, authoritative votes per answer, and the servers with no answer."""
    answers: dict[MxSet, list[str]] = {}
    votes: dict[MxSet, int] = {}
    unreachable = []
    for each in authoritative:
        label = f"{each.host} ({each.server})" if each.server else each.host
        answer = None if each.mx is None else _mx_set(each.mx)
        if answer is None:
            why = each.detail if each.mx is None else lookup_problem(each.mx)
            unreachable.append(f"{label}: {why}")
            continue
        answers.setdefault(answer, []).append(label)
        votes[answer] = votes.get(answer, 0) + 1
    for lookup in resolvers:
        label = f"resolver {lookup.server}" if lookup.server else "the resolvers"
        answer = _mx_set(lookup)
        if answer is None:
            unreachable.append(f"{label}: {lookup_problem(lookup)}")
            continue
        answers.setdefault(answer, []).append(label)
    return answers, votes, unreachable


def _newest(configured: Sequence[tuple[str, int]], answers: dict[MxSet, list[str]],
            votes: dict[MxSet, int]) -> MxSet:
    """The "new" answer: ours when given, else the one most authoritative servers give."""
    ours = frozenset((p, absolute_name(h)) for h, p in configured)
    return ours if ours in answers else max(answers, key=lambda a: votes.get(a, 0))


def current_answer(configured: Sequence[tuple[str, int]], seen: Observations) -> str | None:
    """The canonical text of the new MX answer (see :func:`check_propagation`); None when
    no server gave MX records."""
    answers, votes, _unreachable = _collect(seen.authoritative, seen.resolvers)
    new = _newest(configured, answers, votes) if answers else None
    return answer_text(new) if new else None


def observed_answers(seen: Observations) -> list[tuple[str, int]]:
    """Every distinct MX answer any server gave, ``(canonical text, longest TTL)``, for the
    history; an empty answer (no MX records) is left out."""
    longest: dict[str, int] = {}
    lookups = [seen.mx, *seen.resolvers, *(a.mx for a in seen.authoritative if a.mx)]
    for lookup in lookups:
        answer = _mx_set(lookup)
        if not answer:
            continue
        ttl = max(r.ttl for r in lookup.records if r.rdtype == "MX")
        text = answer_text(answer)
        longest[text] = max(ttl, longest.get(text, ttl))
    return sorted(longest.items())


def propagation_eta(previous: PreviousAnswer | None) -> datetime | None:
    """When every cache has the new answer: the time of the change plus the old TTL."""
    if previous is None:
        return None
    return previous.changed_at.astimezone(UTC) + timedelta(seconds=previous.ttl)


def _minute_up(moment: datetime) -> datetime:
    whole = moment.replace(second=0, microsecond=0)
    return whole if whole == moment else whole + timedelta(minutes=1)


def _eta_text(previous: PreviousAnswer, eta: datetime) -> tuple[str, str]:
    """``("2026-11-30 14:05 UTC", "changed at 13:05, old TTL 3600 s")``: the ETA rounded up
    to the minute, the change down (its date too when another day)."""
    end = _minute_up(eta.astimezone(UTC))
    changed = previous.changed_at.astimezone(UTC)
    shape = "%H:%M" if changed.date() == end.date() else "%Y-%m-%d %H:%M UTC"
    return (end.strftime("%Y-%m-%d %H:%M UTC"),
            f"changed at {changed.strftime(shape)}, old TTL {previous.ttl} s")


def check_propagation(
    configured: Sequence[tuple[str, int]],
    ns: Lookup,
    authoritative: Sequence[NsAnswer],
    resolvers: Sequence[Lookup],
    *,
    previous: PreviousAnswer | None = None,
    now: datetime | None = None,
) -> list[CheckItem]:
    """Do the domain's nameservers and the resolvers all give the same MX set?

    When they disagree, the "new" answer is the one equal to our MX hosts, or else the one
    most authoritative servers give; the others are "old". ``previous`` (the answer before
    the new one, from the history) gives the estimate of when every cache has the new
    answer, compared with ``now``.
    """
    return _propagation(configured, ns, authoritative, resolvers, previous, now)[0]


def _propagation(
    configured: Sequence[tuple[str, int]],
    ns: Lookup,
    authoritative: Sequence[NsAnswer],
    resolvers: Sequence[Lookup],
    previous: PreviousAnswer | None,
    now: datetime | None,
) -> tuple[list[CheckItem], datetime | None]:
    """The propagation items and the ETA to report (see :class:`DomainCheck`)."""
    now = datetime.now(UTC) if now is None else now
    items: list[CheckItem] = []
    if ns.outcome is not Outcome.ANSWER or not authoritative:
        items.append(CheckItem(
            "nameservers", "warn",
            f"the domain's nameservers could not be found: {lookup_problem(ns)}",
            "check the domain's NS delegation at the registrar"))
    answers, votes, unreachable = _collect(authoritative, resolvers)
    if unreachable:
        items.append(CheckItem(
            "nameservers-unreachable", "warn",
            "not every server answered: " + "; ".join(unreachable),
            "make every nameserver listed in NS answer for the domain (or remove it from NS)"))
    elif authoritative:
        items.append(CheckItem(
            "nameservers", "pass",
            "every nameserver answered: " + ", ".join(
                f"{a.host} ({a.server})" for a in authoritative)))
    if not answers:
        return items, None
    new = _newest(configured, answers, votes)
    if previous is not None and previous.answer == answer_text(new):
        previous = None  # not a previous answer of this one (the history is of another)
    eta = propagation_eta(previous)
    timing = None if previous is None or eta is None else _eta_text(previous, eta)
    if len(answers) > 1:
        old = [a for a in answers if a != new]
        message = (f"still propagating: new answer ({_show_set(new)}) from "
                   f"{', '.join(answers[new])}; old answer " + "; old answer ".join(
                       f"({_show_set(a)}) from {', '.join(answers[a])}" for a in old))
        if eta is not None and timing is not None:  # given a previous answer
            if now < eta:
                message += f"; every cache has the new answer by {timing[0]} ({timing[1]})"
            else:
                message += (f"; every cache should have had the new answer by {timing[0]} "
                            f"({timing[1]}): a server still gives an old one")
        items.append(CheckItem(
            "propagation", "warn", message,
            "wait for the old answer's TTL to pass and check again; if an authoritative "
            "server keeps the old answer, ask the DNS host to update it"))
        return items, eta
    [servers] = answers.values()
    agreed = f"{len(servers)} servers agree: {_show_set(new)}"
    if eta is None or timing is None or previous is None or now - eta >= RECENT_CHANGE:
        items.append(CheckItem("propagation", "pass", agreed))
        return items, None
    old_shown = _show_set(frozenset(_parse_answer(previous.answer)))
    if now < eta:
        items.append(CheckItem(
            "propagation", "warn",
            f"{agreed}; caches may still hold the old answer ({old_shown}) until {timing[0]} "
            f"({timing[1]})",
            f"nothing to change: mail may still reach the old MX hosts until {timing[0]}"))
    else:
        items.append(CheckItem(
            "propagation", "pass",
            f"{agreed}; propagated: every cache has had the new answer since {timing[0]} "
            f"({timing[1]})"))
    return items, eta


def _parse_answer(text: str) -> set[tuple[int, str]]:
    """The MX set of a canonical answer text (the inverse of :func:`answer_text`)."""
    found = set()
    for part in filter(None, text.split(",")):
        priority, _sep, host = part.partition(" ")
        found.add((int(priority), host))
    return found


# -- client host names -------------------------------------------------------------------------


def check_client_name(client: ClientName) -> CheckItem:
    """``mail.acme.example.`` leads to the hosting host, through a CNAME (or its A records)."""
    name, target = client.name, client.target
    label = name.split(".", 1)[0]
    item = f"cname-{label}"
    add = f"{name} {PASTE_TTL} IN CNAME {target}"
    cname = client.cname
    if cname.outcome in FAILED:
        return CheckItem(item, "warn", f"{name} could not be checked: {lookup_problem(cname)}",
                         "check again when the domain's nameservers answer")
    aliases = [r for r in cname.records if r.rdtype == "CNAME" and r.name == name]
    if aliases:
        conflicts = sorted({r.rdtype for lookup in (client.address, *client.others)
                            for r in lookup.records
                            if r.name == name and r.rdtype != "CNAME"})
        if conflicts:
            return CheckItem(
                item, "fail",
                f"{name} has a CNAME and also {', '.join(conflicts)} records: a name with "
                "a CNAME cannot hold other records",
                f"delete the {', '.join(conflicts)} records at {name} and keep only: {add}")
        chain = {r.answer.lower() for r in (*aliases, *client.address.records)
                 if r.rdtype == "CNAME"}
        if target in chain:
            return CheckItem(item, "pass", f"{name} is an alias of {target}")
        return CheckItem(item, "fail",
                         f"{name} is an alias of {aliases[0].answer}, not of {target}",
                         f"change the record to: {add}")
    addresses = {r.answer for r in client.address.records
                 if r.rdtype == "A" and r.name == name}
    if client.address.outcome in FAILED:
        return CheckItem(item, "warn",
                         f"{name} could not be checked: {lookup_problem(client.address)}",
                         "check again when the domain's nameservers answer")
    if not addresses:
        return CheckItem(item, "fail", f"{name} does not lead to {target}: "
                         f"{client.address.detail or 'no CNAME and no A records'}",
                         f"add: {add}")
    if client.target_addresses and addresses <= client.target_addresses:
        return CheckItem(item, "pass",
                         f"{name} has addresses of {target} ({', '.join(sorted(addresses))})")
    have = ", ".join(sorted(client.target_addresses)) or "no addresses found"
    return CheckItem(item, "fail",
                     f"{name} has A records {', '.join(sorted(addresses))}, not the "
                     f"addresses of {target} ({have})",
                     f"replace the A records at {name} with: {add}")


# -- SPF, DKIM, DMARC --------------------------------------------------------------------------


def _texts(lookup: Lookup, prefix: str) -> list[str]:
    return [r.answer for r in lookup.records
            if r.rdtype == "TXT" and r.name == lookup.name
            and r.answer.strip().lower().startswith(prefix)]


def check_spf(txt: Lookup, hosting_host: str, mx_hosts: Sequence[str]) -> CheckItem:
    """An SPF record exists and authorizes our servers (``mx`` or one of our host names)."""
    apex = txt.name
    ours = f"v=spf1 mx a:{hosting_host} ~all"
    if txt.outcome in FAILED:
        return CheckItem("spf", "warn", f"SPF could not be checked: {lookup_problem(txt)}",
                         "check again when the domain's nameservers answer")
    records = _texts(txt, "v=spf1")
    if not records:
        return CheckItem("spf", "warn", f"{apex} has no SPF record: receivers cannot tell "
                         "our servers may send its mail",
                         f'add: {apex} {PASTE_TTL} IN TXT "{ours}"')
    if len(records) > 1:
        return CheckItem("spf", "fail", f"{apex} has {len(records)} SPF records: receivers "
                         "treat that as an error", "merge them into one v=spf1 record")
    [spf] = records
    terms = [term.lstrip("+") for term in spf.lower().split()[1:]]
    names = {hosting_host.lower(), *(h.lower() for h in mx_hosts)}
    authorizes = any(
        term == "mx" or term.split(":", 1)[-1].split("/")[0] in names for term in terms)
    if authorizes:
        return CheckItem("spf", "pass", f"SPF authorizes our servers: {spf}")
    fixed = " ".join(["v=spf1", "mx", f"a:{hosting_host}", *spf.split()[1:]])
    fix = f'change the record to: {apex} {PASTE_TTL} IN TXT "{fixed}"'
    if terms and terms[-1] == "-all" and not any(t.startswith("include:") for t in terms):
        return CheckItem("spf", "fail", f"SPF does not name our servers and ends with -all "
                         f"({spf}): receivers reject mail we send for the domain", fix)
    return CheckItem("spf", "warn", f"SPF does not name our servers ({spf}): receivers may "
                     "distrust mail we send for the domain (includes are not followed)", fix)


def dkim_p_tag(text: str) -> str | None:
    """The ``p=`` value (whitespace removed) of a DKIM record's text, if any."""
    for tag in text.split(";"):
        key, sep, value = tag.strip().partition("=")
        if sep and key.strip() == "p":
            return "".join(value.split())
    return None


def check_dkim(lookup: Lookup | None, key: tuple[str, str] | None, domain: str) -> CheckItem:
    """The TXT at ``<selector>._domainkey`` holds the domain's public key."""
    bare = plain(domain)
    if key is None or lookup is None:
        return CheckItem("dkim", "fail", f"{bare} has no DKIM key here",
                         f"create one: mailward domain dkim {bare}")
    fix = f"publish the TXT record at {lookup.name} that `mailward domain dkim {bare}` prints"
    if lookup.outcome in FAILED:
        return CheckItem("dkim", "warn", f"DKIM could not be checked: {lookup_problem(lookup)}",
                         "check again when the domain's nameservers answer")
    published = [p for text in _texts(lookup, "") if (p := dkim_p_tag(text)) is not None]
    if not published:
        return CheckItem("dkim", "fail", f"no DKIM key is published at {lookup.name}", fix)
    if key[1] in published:
        return CheckItem("dkim", "pass", f"{lookup.name} holds the domain's DKIM key")
    return CheckItem("dkim", "fail",
                     f"the DKIM key at {lookup.name} is not the domain's key: receivers "
                     "cannot verify our signatures", fix)


def check_dmarc(lookup: Lookup) -> CheckItem:
    name = lookup.name
    apex = name.removeprefix("_dmarc.")
    if lookup.outcome in FAILED:
        return CheckItem("dmarc", "warn", f"DMARC could not be checked: "
                         f"{lookup_problem(lookup)}",
                         "check again when the domain's nameservers answer")
    records = _texts(lookup, "v=dmarc1")
    if records:
        return CheckItem("dmarc", "pass", f"DMARC: {records[0]}")
    return CheckItem("dmarc", "warn", f"{name} has no DMARC record",
                     f'add: {name} {PASTE_TTL} IN TXT "v=DMARC1; p=none; '
                     f'rua=mailto:postmaster@{plain(apex)}"')


def evaluate(settings: Settings, seen: Observations, *,
             previous: PreviousAnswer | None = None,
             now: datetime | None = None) -> DomainCheck:
    """The checklist from what :func:`gather` saw (no network); ``previous`` is the MX
    answer before :func:`current_answer` (from the history), ``now`` the time of ``seen``."""
    configured = [(mx.host, mx.priority) for mx in settings.mx_hosts]
    items = check_mx(configured, seen.mx, hosted=seen.hosted)
    propagation, eta = _propagation(configured, seen.ns, seen.authoritative, seen.resolvers,
                                    previous, now)
    items += propagation
    if seen.hosted:
        items += [check_client_name(client) for client in seen.clients]
        if seen.spf is not None:
            items.append(check_spf(seen.spf, settings.hosting_host,
                                   [mx.host for mx in settings.mx_hosts]))
        items.append(check_dkim(seen.dkim, seen.dkim_key, seen.domain))
        if seen.dmarc is not None:
            items.append(check_dmarc(seen.dmarc))
    items += [check_dnsbl(host, zone) for host in seen.dnsbl for zone in settings.dnsbl_zones]
    return DomainCheck(plain(seen.domain), seen.hosted, worst(items), items, eta)



async def _ask_nameserver(tools: DnsTools, domain: str, host: str) -> list[NsAnswer]:
    four, six = await tools.a(host)
    addresses = [r.answer for lookup in (four, six) for r in lookup.records
                 if r.rdtype in ("A", "AAAA")]
    if not addresses:
        return [NsAnswer(host, None, None, f"{host} has no address ({lookup_problem(four)})")]
    port = tools.settings.dns_authoritative_port
    servers = [server_text(address, port) for address in addresses]
    lookups = await asyncio.gather(*(tools.mx(domain, server=s, checked=False)
                                     for s in servers))
    return [NsAnswer(host, s, lookup) for s, lookup in zip(servers, lookups, strict=True)]


async def _client_name(tools: DnsTools, name: str, target: str) -> ClientName:
    cname, (four, _six), txt, mx, target_four = await asyncio.gather(
        tools.cname(name), tools.a(name), tools.txt(name), tools.mx(name), tools.a(target))
    addresses = frozenset(r.answer for r in target_four[0].records if r.rdtype == "A")
    return ClientName(name, target, cname, four, (txt, mx), addresses)


async def gather(settings: Settings, domain: str, *, hosted: bool,
                 dkim: tuple[str, str] | None) -> Observations:
    """Ask DNS everything the check needs, as much as possible at once."""
    apex = absolute_name(domain)
    tools = DnsTools(settings)
    zones = settings.dnsbl_zones
    dnsbl = tuple(await asyncio.gather(*(dnsbl_host(tools, mx.host, zones)
                                         for mx in settings.mx_hosts))) if zones else ()
    resolver_servers = [server_text(*parse_nameserver(entry))
                        for entry in settings.dns_nameservers]
    mx, ns, *resolvers = await asyncio.gather(
        tools.mx(apex), tools.ns(apex),
        *(tools.mx(apex, server=s, checked=False) for s in resolver_servers))
    if not resolver_servers:  # the system's resolvers: the MX lookup above is theirs
        resolvers = [mx]
    hosts = sorted({r.answer.lower() for r in ns.records if r.rdtype == "NS"})
    per_host = await asyncio.gather(*(_ask_nameserver(tools, apex, h) for h in hosts))
    authoritative = tuple(answer for answers in per_host for answer in answers)
    seen = Observations(apex, hosted, mx, ns, authoritative, tuple(resolvers), dnsbl=dnsbl)
    if not hosted:
        return seen
    targets = {label: absolute_name(settings.webmail_host if label == "webmail"
                                    else settings.hosting_host) for label in CLIENT_LABELS}
    dkim_name = absolute_name(f"{dkim[0]}._domainkey.{apex}") if dkim else None
    clients, spf, dmarc, dkim_lookup = await asyncio.gather(
        asyncio.gather(*(_client_name(tools, f"{label}.{apex}", target)
                         for label, target in targets.items())),
        tools.txt(apex), tools.txt(f"_dmarc.{apex}"),
        tools.txt(dkim_name) if dkim_name else _none())
    return Observations(apex, hosted, mx, ns, authoritative, tuple(resolvers),
                        clients=tuple(clients), spf=spf, dkim=dkim_lookup, dmarc=dmarc,
                        dkim_key=dkim, dnsbl=dnsbl)


async def _none() -> None:
    return None


async def check_domain(settings: Settings, domain: str, *, hosted: bool,
                       dkim: tuple[str, str] | None) -> DomainCheck:
    """Gather and evaluate: the checklist of ``domain``."""
    return evaluate(settings, await gather(settings, domain, hosted=hosted, dkim=dkim))
