"""``mailward filter``: a domain's or an address's spam filter settings — thresholds,
subject tag and DMARC handling, allow and block lists, "this is spam / not spam" training.

Like the other topics it acts as the operator, or with ``--account`` as that account.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict

import typer
from rich.table import Table

from mailward.filter.settings import PolicyView, SenderRuleView

from .context import AccountOption, JsonOption, run
from .output import esc, fail, out, print_json, report, usage_error

filter_app = typer.Typer(
    help="Spam filter settings of domains and addresses: thresholds, allow/block lists, "
         "training.",
    no_args_is_help=True,
)


class Field(enum.StrEnum):
    """The settings ``filter set --inherit`` takes (CLI name → service field)."""

    TAG = "tag"
    QUARANTINE = "quarantine"
    REJECT = "reject"
    SUBJECT_TAG = "subject-tag"
    DMARC_REJECT = "dmarc-reject"
    VIRUS_ACTION = "virus-action"
    BULK_ACTION = "bulk-action"
    BULK_SCORE = "bulk-score"

    @property
    def key(self) -> str:
        return {"tag": "tag_score", "quarantine": "quarantine_score",
                "reject": "reject_score"}.get(self.value, self.value.replace("-", "_"))


class BulkAction(enum.StrEnum):
    """``--bulk-action`` choices (``mailward.filter.policy.BULK_ACTIONS``)."""

    DELIVER = "deliver"
    TAG = "tag"
    JUNK = "junk"


class DmarcAction(enum.StrEnum):
    """``--dmarc-reject`` choices (``mailward.filter.policy.DMARC_ACTIONS``)."""

    REJECT = "reject"
    QUARANTINE = "quarantine"
    SCORE = "score"


class VirusAction(enum.StrEnum):
    """``--virus-action`` choices (``mailward.filter.virus.VIRUS_ACTIONS``)."""

    REJECT = "reject"
    QUARANTINE = "quarantine"


LABELS = {"tag_score": "tag at score", "quarantine_score": "quarantine at score",
          "reject_score": "reject at score", "subject_tag": "subject tag",
          "dmarc_reject": "DMARC p=reject", "virus_action": "virus found",
          "bulk_action": "bulk mail", "bulk_score": "bulk from score"}

DomainArg = Annotated[
    str | None,
    typer.Argument(metavar="DOMAIN", help="The domain (or --address EMAIL).", show_default=False),
]
AddressOption = Annotated[
    str | None,
    typer.Option("--address", metavar="EMAIL", show_default=False,
                 help="An address instead of a whole domain."),
]
DomainOption = Annotated[
    str | None,
    typer.Option("--domain", "-d", metavar="DOMAIN", show_default=False,
                 help="The domain (its own settings apply to all its addresses)."),
]
SenderArg = Annotated[
    str,
    typer.Argument(metavar="SENDER",
                   help="An address, or a whole domain (example.org, @example.org or "
                        "*@example.org)."),
]


def _target(domain: str | None, address: str | None) -> dict[str, str | None]:
    """The service's ``domain=``/``address=`` keywords; exactly one must be given."""
    if (domain is None) == (address is None):
        usage_error("name exactly one of a domain or --address EMAIL")
    return {"domain": domain, "address": address}


class _Target(TypedDict):
    """Whose list or model: a domain's or an address's (the other is None)."""

    domain: str | None
    address: str | None


def _list_target(domain: str | None, address: str | None) -> _Target:
    if (domain is None) == (address is None):
        usage_error("give exactly one of --domain DOMAIN or --address EMAIL")
    return {"domain": domain, "address": address}


def _owner(view: PolicyView | SenderRuleView) -> str:
    return view.address or view.domain


def _value(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name.endswith("_score"):
        return f"{value:g}"
    return esc(value) if value != "" else '""'


def _print_policy(view: PolicyView) -> None:
    console = out()
    table = Table(title=f"spam filter of {esc(_owner(view))}", title_justify="left")
    table.add_column("Setting", no_wrap=True)
    table.add_column("Set here", no_wrap=True)
    table.add_column("In effect", no_wrap=True)
    for name, label in LABELS.items():
        own = getattr(view, name)
        table.add_row(label, "inherited" if own is None else _value(name, own),
                      _value(name, view.effective[name]))
    console.print(table)


# -- thresholds and handling ---------------------------------------------------------------


@filter_app.command("show")
def filter_show(domain: DomainArg = None, address: AddressOption = None,
                account: AccountOption = None, json_: JsonOption = False) -> None:
    """A domain's or an address's filter settings: what is set there and what applies."""
    target = _target(domain, address)
    view = run(lambda d, a: d.filter.get_policy(a, **target), account=account)
    if json_:
        print_json(view)
        return
    _print_policy(view)


@filter_app.command("set")
def filter_set(
    domain: DomainArg = None,
    address: AddressOption = None,
    tag: Annotated[
        float | None, typer.Option("--tag", metavar="N", show_default=False,
                                   help="Tag mail (X-Spam-Flag, subject) from this score on.")
    ] = None,
    quarantine: Annotated[
        float | None, typer.Option("--quarantine", metavar="N", show_default=False,
                                   help="Hold mail from this score on.")
    ] = None,
    reject: Annotated[
        float | None, typer.Option("--reject", metavar="N", show_default=False,
                                   help="Refuse mail from this score on.")
    ] = None,
    subject_tag: Annotated[
        str | None, typer.Option("--subject-tag", metavar="TEXT", show_default=False,
                                 help="Put in front of a tagged message's subject.")
    ] = None,
    dmarc_reject: Annotated[
        DmarcAction | None,
        typer.Option("--dmarc-reject", case_sensitive=False, show_default=False,
                     help="What to do with mail failing DMARC of a p=reject domain."),
    ] = None,
    virus_action: Annotated[
        VirusAction | None,
        typer.Option("--virus-action", case_sensitive=False, show_default=False,
                     help="What to do with mail clamd finds a virus in: refuse it at DATA "
                          "(reject, the default) or hold it (quarantine)."),
    ] = None,
    bulk_action: Annotated[
        BulkAction | None,
        typer.Option("--bulk-action", case_sensitive=False, show_default=False,
                     help="Bulk mail (newsletters, lists): deliver, tag its subject, or junk."),
    ] = None,
    bulk_score: Annotated[
        float | None, typer.Option("--bulk-score", metavar="N", show_default=False,
                                   help="Give bulk mail its bulk action from this score on.")
    ] = None,
    inherit: Annotated[
        list[Field] | None,
        typer.Option("--inherit", case_sensitive=False, show_default=False,
                     help="Inherit this setting again (repeatable)."),
    ] = None,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Change filter settings; --inherit FIELD goes back to the domain's (or default) value.

    The thresholds in effect must rise: tag ≤ quarantine ≤ reject.
    """
    target = _target(domain, address)
    given = {Field.TAG: tag, Field.QUARANTINE: quarantine, Field.REJECT: reject,
             Field.SUBJECT_TAG: subject_tag,
             Field.DMARC_REJECT: None if dmarc_reject is None else dmarc_reject.value,
             Field.VIRUS_ACTION: None if virus_action is None else virus_action.value,
             Field.BULK_ACTION: None if bulk_action is None else bulk_action.value,
             Field.BULK_SCORE: bulk_score}
    changes: dict[str, Any] = {f.key: v for f, v in given.items() if v is not None}
    for field in inherit or []:
        if field.key in changes:
            usage_error(f"--{field.value} and --inherit {field.value} contradict each other")
        changes[field.key] = None
    if not changes:
        usage_error("nothing to change: give --tag, --quarantine, --reject, --subject-tag, "
                    "--dmarc-reject, --virus-action, "
                    "--bulk-action, --bulk-score or --inherit FIELD")
    view = run(lambda d, a: d.filter.set_policy(a, changes, **target), account=account)
    if json_:
        print_json(view)
        return
    out().print(f"changed the spam filter of [bold]{esc(_owner(view))}[/]: " + ", ".join(
        f"{LABELS[k]} {'inherited' if getattr(view, k) is None else _value(k, getattr(view, k))}"
        for k in changes))
    _print_policy(view)


# -- allow and block lists -----------------------------------------------------------------


def _add(action: str, sender: str, domain: str | None, address: str | None,
         account: str | None, json_: bool) -> None:
    target = _list_target(domain, address)
    view = run(lambda d, a: d.filter.add_sender(a, sender, action, **target), account=account)
    report(view, f"added {esc(view.sender)} to {esc(_owner(view))}'s {action} list", json_)


@filter_app.command("allow")
def filter_allow(sender: SenderArg, domain: DomainOption = None, address: AddressOption = None,
                 account: AccountOption = None, json_: JsonOption = False) -> None:
    """Always let mail from SENDER through (it still is checked for forgery)."""
    _add("allow", sender, domain, address, account, json_)


@filter_app.command("block")
def filter_block(sender: SenderArg, domain: DomainOption = None, address: AddressOption = None,
                 account: AccountOption = None, json_: JsonOption = False) -> None:
    """Refuse mail from SENDER."""
    _add("block", sender, domain, address, account, json_)


@filter_app.command("unlist")
def filter_unlist(sender: SenderArg, domain: DomainOption = None,
                  address: AddressOption = None, account: AccountOption = None,
                  json_: JsonOption = False) -> None:
    """Take SENDER off the allow or block list it is on."""
    target = _list_target(domain, address)
    view = run(lambda d, a: d.filter.remove_sender(a, sender, **target), account=account)
    report(view, f"removed {esc(view.sender)} from {esc(_owner(view))}'s {view.action} list",
           json_)


@filter_app.command("senders")
def filter_senders(domain: DomainOption = None, address: AddressOption = None,
                   account: AccountOption = None, json_: JsonOption = False) -> None:
    """The allow and block lists: an address's, or a domain's and all its addresses'."""
    target = _list_target(domain, address)
    views = run(lambda d, a: d.filter.list_senders(a, **target), account=account)
    if json_:
        print_json(views)
        return
    if not views:
        out().print(f"no allowed or blocked senders for {esc(address or domain)}")
        return
    table = Table("List of", "Action", "Sender")
    for view in views:
        table.add_row(esc(view.address or f"{view.domain} (whole domain)"), view.action,
                      esc(view.sender))
    out().print(table)


# -- training -------------------------------------------------------------------------------


def _read(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}")


@filter_app.command("train")
def filter_train(
    source: Annotated[str, typer.Argument(metavar="FILE|-",
                                          help="The raw message (RFC 5322); - for stdin.")],
    domain: DomainOption = None,
    address: AddressOption = None,
    spam: Annotated[bool | None, typer.Option("--spam/--ham", show_default=False,
                                              help="It is spam, or it is not.")] = None,
    account: AccountOption = None,
    json_: JsonOption = False,
) -> None:
    """Teach the domain's model that a message is spam (--spam) or not (--ham)."""
    target = _list_target(domain, address)
    if spam is None:
        usage_error("say what the message is: --spam or --ham")
    data = _read(source)
    learnt = run(lambda d, a: d.filter.train(a, data, spam=spam, **target), account=account)
    verdict = "spam" if learnt.spam else "not spam"
    report(learnt, f"learnt {verdict} for {esc(address or domain)}: spam probability "
                   f"{learnt.before:.2f} → {learnt.after:.2f} ({learnt.steps} step(s))", json_)
