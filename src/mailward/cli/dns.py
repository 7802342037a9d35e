"""``mailward dns``: DNS lookups (docs/procedures.md) and the records a domain must publish.

The lookups are public tools: they need no database and no account, only the settings
(``dns_nameservers``; ``--server`` asks one server directly). ``dns records`` is
tenant-scoped like every other domain command.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from mailward.app import Services
from mailward.directory import Actor
from mailward.dns.check import DomainCheck
from mailward.dns.cutover import Readiness, cutover_readiness
from mailward.dns.lookup import DnsTools
from mailward.dns.model import Lookup, Outcome, outcome_message
from mailward.dns.recheck import DnsRechecker, Recheck, stored_statuses
from mailward.dns.service import domain_check, domain_records

from .context import AccountOption, JsonOption, run, settings
from .output import EXIT_FAILURE, esc, fail, handled, out, print_json

dns_app = typer.Typer(
    help="DNS tools: look up records, the records a domain must publish, checks.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The name to look up (IDN allowed).")]
ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="IP[:PORT]",
        help="Ask this DNS server directly instead of the configured resolvers.",
        show_default=False,
    ),
]

LONG_VALUE = 64  # registrar values longer than this are printed under the table


def _print_registrar(rows: list[dict[str, str]]) -> None:
    """Host/Type/Priority/Value/TTL; values too long for a cell (DKIM keys) follow whole."""
    table = Table("Host", "Type", "Priority", "Value", "TTL")
    long_values: list[tuple[str, dict[str, str]]] = []
    for row in rows:
        value = row.get("value", "")
        if len(value) > LONG_VALUE:
            long_values.append((f"({len(long_values) + 1})", row))
            value = f"{long_values[-1][0]} below"
        table.add_row(esc(row.get("host", "")), esc(row.get("type", "")),
                      esc(row.get("priority", "")), esc(value), esc(row.get("ttl", "")))
    console = out()
    console.print(table)
    for mark, row in long_values:  # one line each, so it can be copied whole
        console.print(f"{mark} {esc(row.get('host', ''))} {esc(row.get('type', ''))}:")
        console.print(esc(row.get("value", "")))


def _print_lookup(lookup: Lookup) -> None:
    caption = f"asked {esc(lookup.server)} directly" if lookup.server else None
    table = Table("Name", "TTL", "Class", "Type", "Priority", "Answer", caption=caption)
    for record in lookup.records:
        table.add_row(
            esc(record.name), str(record.ttl), esc(record.rdclass), esc(record.rdtype),
            "" if record.priority is None else str(record.priority), esc(record.answer),
        )
    out().print(table)


def lookup_command(rdtype: str, name: str, server: str | None, json_: bool) -> None:
    """Run one lookup; exit 1 (after the output) unless it was answered."""
    config = settings()

    async def ask() -> Lookup:
        return await DnsTools(config).lookup(name, rdtype, server=server)

    with handled():
        try:
            lookup = asyncio.run(ask())
        except ValueError as exc:
            fail(str(exc))
    if json_:
        print_json(lookup)
    elif lookup.outcome is Outcome.ANSWER:
        _print_lookup(lookup)
    if lookup.outcome is not Outcome.ANSWER:
        if json_:
            raise typer.Exit(EXIT_FAILURE)
        fail(outcome_message(lookup))


def _lookup(rdtype: str, what: str) -> None:
    def command(name: NameArg, server: ServerOption = None, json_: JsonOption = False) -> None:
        lookup_command(rdtype, name, server, json_)

    command.__doc__ = f"Look up the {what} of NAME (exit 1 when there is none)."
    dns_app.command(rdtype.lower())(command)


for _rdtype, _what in (
    ("MX", "MX records (mail servers)"),
    ("A", "A records (IPv4 addresses)"),
    ("AAAA", "AAAA records (IPv6 addresses)"),
    ("CNAME", "CNAME record (alias target)"),
    ("TXT", "TXT records (SPF, DKIM, verification texts)"),
    ("NS", "NS records (name servers)"),
    ("SOA", "SOA record (zone authority)"),
):
    _lookup(_rdtype, _what)


@dns_app.command("records")
def dns_records(
    domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="The domain.")],
    registrar: Annotated[
        bool, typer.Option("--registrar", help="A table for a registrar's DNS form instead.")
    ] = False,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """The DNS records to publish for a domain, as zone-file lines (or --registrar rows)."""
    config = settings()

    result = run(lambda d, a: domain_records(d.directory, config, a, domain), account=account)
    if json_:
        print_json(result)
    elif registrar:
        _print_registrar(result.registrar)
    else:
        console = out()
        for line in result.zone:  # each record's purpose is a "; comment" above it
            console.print(esc(line))



def _print_check(result: DomainCheck) -> None:
    """``acme.example (hosted): warn``, then one line per item, its fix indented below."""
    console = out()
    kind = "hosted" if result.hosted else "filtering only"
    console.print(f"{esc(result.domain)} ({kind}): {result.status}")
    for item in result.items:
        console.print(f"{item.status:<4}  {esc(item.name)}: {esc(item.message)}")
        if item.fix:
            console.print(f"      fix: {esc(item.fix)}")


@dns_app.command("check")
def dns_check(
    domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="The domain.")],
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Check a domain's DNS: MX set, propagation, client names, SPF/DKIM/DMARC.

    Exit 1 when an item fails (warnings still exit 0).
    """
    config = settings()

    result = run(lambda d, a: domain_check(d.directory, config, a, domain), account=account)
    if json_:
        print_json(result)
    else:
        _print_check(result)
    if result.status == "fail":
        raise typer.Exit(EXIT_FAILURE)


def _print_readiness(result: Readiness) -> None:
    """``acme.example: not ready``, then each blocker with its fix, then the warnings."""
    console = out()
    verdict = ("already switched" if result.switched
               else "ready" if result.ready else "not ready")
    console.print(f"{esc(result.domain)}: {verdict}")
    for label, found in (("blocker", result.blockers), ("warning", result.warnings)):
        for each in found:
            console.print(f"{label}  {esc(each.kind)}: {esc(each.message)}")
            if each.fix:
                console.print(f"         fix: {esc(each.fix)}")
    if result.ready and not result.switched:
        console.print(f"throw the switch: mailward servers auto-configure {esc(result.domain)}")


@dns_app.command("cutover")
def dns_cutover(
    domain: Annotated[str, typer.Argument(metavar="DOMAIN", help="The domain.")],
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Is it safe to switch a filtering-only domain to hosting? Lists what blocks it.

    Exit 0 when ready (or already switched), 1 when something blocks it.
    """
    config = settings()

    result = run(lambda d, a: cutover_readiness(d.directory, d.servers, config, a, domain),
                 account=account)
    if json_:
        print_json(result)
    else:
        _print_readiness(result)
    if not result.ready:
        raise typer.Exit(EXIT_FAILURE)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@dns_app.command("status")
def dns_status(
    domain: Annotated[str | None, typer.Argument(metavar="[DOMAIN]",
                                                 help="Only this domain.")] = None,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """The stored results of the scheduled DNS re-checks (dns_recheck_interval_seconds).

    Exit 1 when a domain's last check failed.
    """
    found = run(lambda d, a: stored_statuses(d.directory, a, domain), account=account)
    if json_:
        print_json(found)
    else:
        table = Table("domain", "status", "checked (UTC)", "changed", "next check", box=None)
        for each in found:
            table.add_row(esc(each.domain), each.status or "not checked yet",
                          _when(each.checked_at), _when(each.changed_at),
                          _when(each.next_check_at))
        out().print(table)
        for each in found:
            for problem in each.problems:
                out().print(f"{esc(each.domain)}: {problem['status']}  "
                            f"{esc(problem['name'])}: {esc(problem['message'])}")
    if any(each.status == "fail" for each in found):
        raise typer.Exit(EXIT_FAILURE)


@dns_app.command("recheck")
def dns_recheck(
    all_: Annotated[bool, typer.Option("--all", help="Every domain now, due or not.")] = False,
    json_: JsonOption = False,
) -> None:
    """Run one round of the scheduled DNS re-checks now (operators; the delivery role runs
    them every dns_recheck_interval_seconds). Notices go out for status changes as usual."""
    config = settings()

    async def one_round(services: Services, _operator: Actor) -> list[Recheck]:
        rechecker = DnsRechecker(services.directory, config, services.spool)
        return await rechecker.run_once(everything=all_)

    found = run(one_round)
    if json_:
        print_json(found)
        return
    if not found:
        out().print("no domain is due for its DNS check")
    for each in found:
        change = (f"{each.old} → {each.new}" if each.old and each.old != each.new
                  else each.new)
        told = f" (told {', '.join(each.notified)})" if each.notified else ""
        out().print(f"{esc(each.domain)}: {change}{esc(told)}")
