"""Per-recipient verdicts: the pipeline's score against each recipient's own policy.

A recipient's policy is its address's filter settings, falling back to its domain's and
then to the config (thresholds, subject tag, what a DMARC ``p=reject`` failure does), plus
the allow and block lists of the address and of the domain. The MX tier loads the
policies of a transaction's Filter recipients in a few queries and decides for each.

A recipient's policy also carries what its own corrections taught per kind of sender
(:mod:`mailward.filter.personal`): given the message's kinds of sender, :func:`decide`
adds that finding (``personal-ham`` / ``personal-spam``) to the score.

Bulk mail (a ``bulk`` finding of :mod:`mailward.filter.bulk`: newsletters, lists) is marked
on the recipient's copy (``Decision.bulk``: the MX writes ``X-Mailward-Bulk: yes``), and,
when it is not spam already and scores at least the policy's ``bulk_score``, gets its
``bulk_action``: ``deliver`` (only the mark), ``tag`` (``bulk_subject_tag`` in front of the
Subject) or ``junk`` (tagged as spam: ``X-Spam-Flag: YES`` and the spam subject tag, which
mail clients and Sieve scripts file into Junk). An allow-listed sender's bulk mail is marked
but gets no action.

List precedence: the address's lists before the domain's; within one list an exact address
entry before a domain entry; block before allow for equally specific entries. An allow
entry is not honoured for mail that fails DMARC (anyone can write a From: line), nor for an
envelope-sender match whose SPF failed.

Each recipient's policy is cached per process in the database's lookup caches
(:mod:`mailward.db.generation`): a change of a policy, a list or the directory is seen at
once by the process that made it, within a second by every other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.config import Settings
from mailward.db import Database
from mailward.db.generation import MISS, LookupCache
from mailward.db.models import FilterPolicy, FilterSenderRule, utcnow
from mailward.directory.facts import address_ids, domain_keys
from mailward.filter.bulk import BULK
from mailward.filter.parsed import ParsedMessage, parse_headers
from mailward.filter.personal import (
    EMPTY,
    Memory,
    SenderKinds,
    header_addresses,
    load_memories,
    personal_finding,
)
from mailward.filter.pipeline import Action, Finding, Thresholds

__all__ = ["Decision", "PolicyStore", "RecipientPolicy", "SenderRule", "decide",
           "message_senders", "sender_matches"]

DMARC_ACTIONS = ("reject", "quarantine", "score")
BULK_ACTIONS = ("deliver", "tag", "junk")
_SEVERITY = {Action.ACCEPT: 0, Action.TAG: 1, Action.QUARANTINE: 2, Action.REJECT: 3}


@dataclass(frozen=True, slots=True)
class SenderRule:
    sender: str  # an address or a domain, lower-case
    action: str  # allow / block
    level: str  # "address" or "domain": whose list it is on


@dataclass(frozen=True, slots=True)
class RecipientPolicy:
    """Everything the verdict of one recipient depends on besides the message."""

    recipient: str
    domain: str
    domain_id: int | None
    account_id: int | None
    thresholds: Thresholds
    subject_tag: str | None = None
    dmarc_reject: str = "quarantine"
    rules: tuple[SenderRule, ...] = ()  # address-level first, then domain-level
    address_id: int | None = None  # the listed address (None: not listed)
    personal: Memory = field(default=EMPTY, compare=False)  # its corrections per sender
    bulk_action: str = "deliver"  # what bulk mail gets (BULK_ACTIONS)
    bulk_score: float = -100.0  # ... from this score on
    bulk_subject_tag: str = "[Bulk]"  # put in front of the Subject of tagged bulk mail


@dataclass(frozen=True, slots=True)
class Decision:
    """One recipient's verdict."""

    action: Action
    score: float
    reason: str
    findings: tuple[Finding, ...] = field(default=(), compare=False)
    subject_tag: str | None = None  # put in front of the Subject of a tagged copy
    bulk: bool = False  # bulk mail: its copy is marked X-Mailward-Bulk: yes
    bulk_tag: str | None = None  # put in front of the Subject of bulk mail that is not spam


def sender_matches(rule_sender: str, sender: str) -> bool:
    """Whether a list entry (an address, or a domain with its subdomains) covers ``sender``."""
    if not sender:
        return False
    if "@" in rule_sender:
        return sender == rule_sender
    domain = sender.rsplit("@", 1)[-1]
    return domain == rule_sender or domain.endswith("." + rule_sender)


def message_senders(data: bytes, parsed: ParsedMessage | None = None) -> tuple[str, ...]:
    """The From: addresses of a message, lower-case (what allow/block lists also match):
    from its parse when given, else from its header block alone."""
    msg = parsed.root if parsed is not None and parsed.root is not None else \
        parse_headers(data)
    return header_addresses(msg, "From")


def _matching_rule(rules: Sequence[SenderRule], envelope: str, from_addresses: Sequence[str],
                   *, spf_failed: bool, dmarc_failed: bool) -> tuple[SenderRule | None, str]:
    """The list entry deciding for this message, and why an allow entry was passed over."""
    ignored = ""
    for level in ("address", "domain"):
        matches: list[tuple[int, SenderRule, bool]] = []  # (specificity, rule, via envelope)
        for rule in (r for r in rules if r.level == level):
            via_from = any(sender_matches(rule.sender, a) for a in from_addresses)
            via_envelope = sender_matches(rule.sender, envelope)
            if via_from or via_envelope:
                matches.append((2 if "@" in rule.sender else 1, rule, not via_from))
        matches.sort(key=lambda m: (-m[0], m[1].action != "block"))
        for _specificity, rule, only_envelope in matches:
            if rule.action == "block":
                return rule, ignored
            if dmarc_failed or (only_envelope and spf_failed):
                ignored = (f"allow list entry {rule.sender} ignored: the sender failed "
                           f"{'DMARC' if dmarc_failed else 'SPF'}")
                continue
            return rule, ignored
    return None, ignored


def decide(policy: RecipientPolicy, score: float, findings: Sequence[Finding], *,
           envelope_sender: str, from_addresses: Sequence[str], auth: object = None,
           extra: Sequence[Finding] = (), kinds: SenderKinds | None = None) -> Decision:
    """The verdict for one recipient: lists first, then the thresholds, then DMARC.
    ``kinds``: the message's kinds of sender, whose corrections by the recipient count
    (:func:`~mailward.filter.personal.personal_finding`)."""
    mine = personal_finding(policy.personal, kinds, policy.recipient)
    if mine is not None:
        extra = (*extra, mine)
    findings = (*findings, *extra)
    score = round(score + sum(f.score for f in extra), 2)
    spf = getattr(auth, "spf", "")
    dmarc = getattr(auth, "dmarc", "")
    rule, ignored = _matching_rule(
        policy.rules, envelope_sender.lower(), from_addresses,
        spf_failed=spf in ("fail", "softfail"), dmarc_failed=dmarc == "fail")
    if rule is not None:
        where = f"{policy.recipient}'s" if rule.level == "address" else f"{policy.domain}'s"
        reason = f"sender {rule.sender} is on {where} {rule.action} list"
        # a 0-point finding names the list in the X-Spam-Status tests and the quarantine
        findings = (*findings, Finding(f"{rule.action}-list", 0.0, reason))
        if rule.action == "block":
            return Decision(Action.REJECT, score, reason, findings, policy.subject_tag)
        return Decision(Action.ACCEPT, score, reason, findings, bulk=_is_bulk(findings))
    limits = policy.thresholds
    action = Action.ACCEPT
    reason = f"score {score:g}"
    for candidate, limit in ((Action.REJECT, limits.reject),
                             (Action.QUARANTINE, limits.quarantine), (Action.TAG, limits.tag)):
        if score >= limit:
            action, reason = candidate, f"score {score:g} ≥ {candidate} threshold {limit:g}"
            break
    if dmarc == "fail" and getattr(auth, "dmarc_policy", "") == "reject":
        wanted = {"reject": Action.REJECT, "quarantine": Action.QUARANTINE}.get(
            policy.dmarc_reject)
        if wanted is not None and _SEVERITY[wanted] > _SEVERITY[action]:
            action = wanted
            reason = (f"DMARC failed and the sender's domain asks to reject "
                      f"({policy.domain} {policy.dmarc_reject}s such mail)")
    if ignored:
        reason = f"{reason}; {ignored}"
    if not _is_bulk(findings):
        return Decision(action, score, reason, findings, policy.subject_tag)
    bulk_tag = None
    if action is Action.ACCEPT and score >= policy.bulk_score:
        if policy.bulk_action == "junk":
            action = Action.TAG
            reason = (f"bulk mail, score {score:g} ≥ bulk threshold {policy.bulk_score:g}: "
                      "filed as junk")
        elif policy.bulk_action == "tag":
            bulk_tag = policy.bulk_subject_tag or None
            reason = f"{reason}; bulk mail tagged"
    return Decision(action, score, reason, findings, policy.subject_tag, bulk=True,
                    bulk_tag=bulk_tag)


def _is_bulk(findings: Sequence[Finding]) -> bool:
    return any(f.check == BULK for f in findings)


def _first(*values: object) -> object:
    return next((v for v in values if v is not None), None)


class PolicyStore:
    """Reads recipients' filter policies (the MX tier's view; no tenant scope)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.defaults = Thresholds(settings.filter_tag_score, settings.filter_quarantine_score,
                                   settings.filter_reject_score)
        self.dmarc_reject = settings.filter_dmarc_reject
        self.remembered = timedelta(days=settings.filter_personal_days)
        self.bulk = (settings.filter_bulk_action, settings.filter_bulk_score,
                     settings.filter_bulk_subject_tag)
        # recipient: its policy (the defaults are part of the answer, so of the name)
        self._cache: LookupCache[str, RecipientPolicy] = db.lookups.cache(
            f"filter-policies {self.defaults} {self.dmarc_reject} {self.remembered} "
            f"{self.bulk}",
            settings.lookup_cache_entries, settings.lookup_cache_seconds)

    def default_policy(self, recipient: str) -> RecipientPolicy:
        return RecipientPolicy(recipient, recipient.rsplit("@", 1)[-1], None, None,
                               self.defaults, None, self.dmarc_reject,
                               bulk_action=self.bulk[0], bulk_score=self.bulk[1],
                               bulk_subject_tag=self.bulk[2])

    async def policies(self, recipients: Iterable[str]) -> dict[str, RecipientPolicy]:
        """The policy of each recipient (defaults for one whose domain is unknown): from
        the cache, those not in it in five queries."""
        found: dict[str, RecipientPolicy] = {}
        missing: list[str] = []
        async with self.db.session() as session:
            epoch = await self._cache.fresh(session)
            for recipient in sorted(set(recipients)):
                cached = self._cache.get(recipient)
                if cached is MISS:
                    missing.append(recipient)
                else:
                    found[recipient] = cached
            loaded = await self._load(session, missing) if missing else {}
        for recipient, policy in loaded.items():
            self._cache.put(recipient, policy, epoch)
        return found | loaded

    async def _load(self, session: AsyncSession, wanted: list[str]
                    ) -> dict[str, RecipientPolicy]:
        domains = sorted({r.rsplit("@", 1)[-1] for r in wanted})
        domain_ids = await domain_keys(session, domains)
        listed = await address_ids(session, (r for r in wanted
                                             if r.rsplit("@", 1)[-1] in domain_ids))
        ids = sorted({did for did, _acc in domain_ids.values()})
        policies = (await session.scalars(select(FilterPolicy).where(
            FilterPolicy.domain_id.in_(ids)))).all() if ids else []
        rules = (await session.scalars(select(FilterSenderRule).where(
            FilterSenderRule.domain_id.in_(ids),
            or_(FilterSenderRule.address_id.is_(None),
                FilterSenderRule.address_id.in_(sorted(listed.values())))))).all() \
            if ids else []
        memories = await load_memories(session, listed.values(),
                                       utcnow() - self.remembered)
        domain_policy = {p.domain_id: p for p in policies if p.address_id is None}
        address_policy = {p.address_id: p for p in policies if p.address_id is not None}
        found: dict[str, RecipientPolicy] = {}
        for recipient in wanted:
            domain = recipient.rsplit("@", 1)[-1]
            if domain not in domain_ids:
                found[recipient] = self.default_policy(recipient)
                continue
            domain_id, account_id = domain_ids[domain]
            address_id = listed.get(recipient)
            own = address_policy.get(address_id) if address_id is not None else None
            dom = domain_policy.get(domain_id)
            layers = [p for p in (own, dom) if p is not None]

            def pick(attr: str, default: object, layers: list[FilterPolicy] = layers) -> object:
                return _first(*(getattr(p, attr) for p in layers), default)

            thresholds = Thresholds(
                float(pick("tag_score", self.defaults.tag)),  # type: ignore[arg-type]
                float(pick("quarantine_score", self.defaults.quarantine)),  # type: ignore[arg-type]
                float(pick("reject_score", self.defaults.reject)))  # type: ignore[arg-type]
            mine = tuple(SenderRule(r.sender, r.action, "address") for r in rules
                         if address_id is not None and r.address_id == address_id)
            theirs = tuple(SenderRule(r.sender, r.action, "domain") for r in rules
                           if r.address_id is None and r.domain_id == domain_id)
            found[recipient] = RecipientPolicy(
                recipient, domain, domain_id, account_id, thresholds,
                pick("subject_tag", None) or None,  # type: ignore[arg-type]
                str(pick("dmarc_reject", self.dmarc_reject)), mine + theirs, address_id,
                memories.get(address_id, EMPTY) if address_id is not None else EMPTY,
                bulk_action=str(pick("bulk_action", self.bulk[0])),
                bulk_score=float(pick("bulk_score", self.bulk[1])),  # type: ignore[arg-type]
                bulk_subject_tag=self.bulk[2])
        return found
