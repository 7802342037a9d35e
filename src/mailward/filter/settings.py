"""Customers' filter settings: per-domain and per-address thresholds, subject tag and DMARC
handling; allow and block lists; "this is spam / this is not spam" training.

A correction teaches two things: the domain's model (:mod:`mailward.filter.learning`) and
the corrected address's own memory of the message's kind of sender
(:mod:`mailward.filter.personal`, :meth:`FilterSettingsService.remember`).

Scoped like every directory service: an account admin reaches its own domains, a reseller
its accounts' domains, an operator all. Every change is in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.config import Settings
from mailward.core.actor import Actor
from mailward.core.audit import record
from mailward.core.errors import Conflict, InvalidInput, NotFound
from mailward.core.normalize import domain_of, normalize_address, normalize_domain
from mailward.db import Database
from mailward.db.models import Address, Domain, FilterPolicy, FilterSenderRule
from mailward.directory.facts import (
    address_domain_keys,
    address_emails,
    domain_address,
    scoped_domain,
)
from mailward.filter.learning import DomainLearning, Learnt
from mailward.filter.personal import PersonalMemory, Remembered
from mailward.filter.policy import BULK_ACTIONS, DMARC_ACTIONS, PolicyStore
from mailward.filter.virus import DEFAULT_VIRUS_ACTION, VIRUS_ACTIONS

__all__ = ["FilterSettingsService", "PolicyView", "SenderRuleView", "normalize_sender"]

FIELDS = ("tag_score", "quarantine_score", "reject_score", "subject_tag", "dmarc_reject",
          "virus_action",
          "bulk_action", "bulk_score")
SCORE_RANGE = (-100.0, 1000.0)
MAX_TRAIN_SIZE = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PolicyView:
    """What a domain or address has set (``None``: inherited) and what applies."""

    domain: str
    address: str | None
    tag_score: float | None
    quarantine_score: float | None
    reject_score: float | None
    subject_tag: str | None
    dmarc_reject: str | None
    virus_action: str | None  # reject | quarantine: what an infected message gets
    bulk_action: str | None  # deliver | tag | junk: what bulk mail gets
    bulk_score: float | None  # ... from this score on
    effective: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SenderRuleView:
    domain: str
    address: str | None  # None: the whole domain's list
    sender: str
    action: str


def normalize_sender(text: str) -> str:
    """An allow/block list entry: an address, or a domain (``@example.org`` and
    ``*@example.org`` mean the domain ``example.org``)."""
    value = text.strip()
    for prefix in ("*@", "@"):
        if value.startswith(prefix):
            return normalize_domain(value[len(prefix):])
    return normalize_address(value) if "@" in value else normalize_domain(value)


def _validated(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name.endswith("_score"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"{name}: {value!r} is not a number") from None
        if not SCORE_RANGE[0] <= number <= SCORE_RANGE[1]:
            raise InvalidInput(f"{name}: must be between {SCORE_RANGE[0]:g} and "
                               f"{SCORE_RANGE[1]:g}")
        return number
    text = str(value)
    if name == "subject_tag":
        if not text.isascii() or not text.isprintable() or len(text) > 40:
            raise InvalidInput("subject_tag: at most 40 printable ASCII characters")
        return text.strip()  # "" = no tag, even where the domain sets one
    if name == "virus_action":
        if text not in VIRUS_ACTIONS:
            raise InvalidInput(f"virus_action: must be one of {', '.join(VIRUS_ACTIONS)}")
        return text
    if name == "bulk_action":
        if text not in BULK_ACTIONS:
            raise InvalidInput(f"bulk_action: must be one of {', '.join(BULK_ACTIONS)}")
        return text
    if text not in DMARC_ACTIONS:
        raise InvalidInput(f"dmarc_reject: must be one of {', '.join(DMARC_ACTIONS)}")
    return text


class FilterSettingsService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.learning = DomainLearning(db)
        self.personal = PersonalMemory(db, settings)
        self.policies = PolicyStore(db, settings)

    # -- lookups ------------------------------------------------------------------------

    async def _domain(self, session: AsyncSession, actor: Actor, name: str) -> Domain:
        return await scoped_domain(session, actor, name)  # the directory decides whose

    async def _target(self, session: AsyncSession, actor: Actor, domain: str | None,
                      address: str | None) -> tuple[Domain, Address | None]:
        if address is not None:
            email = normalize_address(address)
            if domain is not None and normalize_domain(domain) != domain_of(email):
                raise InvalidInput(f"{email} is not an address of {domain}")
            found = await self._domain(session, actor, domain_of(email))
            row = await domain_address(session, found, email)
            if row is None:
                raise NotFound(f"no address {email}")
            return found, row
        if domain is None:
            raise InvalidInput("name a domain or an address")
        return await self._domain(session, actor, domain), None

    # -- thresholds and handling ----------------------------------------------------------

    async def get_policy(self, actor: Actor, *, domain: str | None = None,
                         address: str | None = None) -> PolicyView:
        async with self.db.session() as session:
            found, addr = await self._target(session, actor, domain, address)
            return await self._view(session, found, addr)

    async def set_policy(self, actor: Actor, changes: dict[str, Any], *,
                         domain: str | None = None, address: str | None = None) -> PolicyView:
        """Change some fields (``None`` = inherit again); the result must keep
        tag ≤ quarantine ≤ reject."""
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise InvalidInput(f"unknown filter setting(s): {', '.join(unknown)}")
        values = {name: _validated(name, value) for name, value in changes.items()}
        async with self.db.session() as session:
            found, addr = await self._target(session, actor, domain, address)
            row = await self._policy_row(session, found, addr)
            if row is None:
                row = FilterPolicy(account_id=found.account_id, domain_id=found.id,
                                   address_id=addr.id if addr else None)
                session.add(row)
            for name, value in values.items():
                setattr(row, name, value)
            await session.flush()
            view = await self._view(session, found, addr)
            eff = view.effective
            if not eff["tag_score"] <= eff["quarantine_score"] <= eff["reject_score"]:
                raise InvalidInput(
                    f"thresholds must rise: tag {eff['tag_score']:g} ≤ quarantine "
                    f"{eff['quarantine_score']:g} ≤ reject {eff['reject_score']:g}")
            record(session, actor, "filter.policy", addr.email if addr else found.name,
                   account_id=found.account_id,
                   detail=", ".join(f"{k}={'inherit' if v is None else v}"
                                    for k, v in sorted(values.items())))
            await session.commit()
            return view

    async def _policy_row(self, session: AsyncSession, domain: Domain,
                          addr: Address | None) -> FilterPolicy | None:
        query = select(FilterPolicy).where(FilterPolicy.domain_id == domain.id)
        query = query.where(FilterPolicy.address_id == addr.id) if addr else \
            query.where(FilterPolicy.address_id.is_(None))
        return await session.scalar(query)

    async def _view(self, session: AsyncSession, domain: Domain,
                    addr: Address | None) -> PolicyView:
        own = await self._policy_row(session, domain, addr)
        layers = [p for p in (own, await self._policy_row(session, domain, None) if addr
                              else None) if p is not None]
        defaults = PolicyStore(self.db, self.settings).default_policy("x@" + domain.name)
        base = {"tag_score": defaults.thresholds.tag,
                "quarantine_score": defaults.thresholds.quarantine,
                "reject_score": defaults.thresholds.reject,
                "subject_tag": defaults.subject_tag, "dmarc_reject": defaults.dmarc_reject,
                "virus_action": DEFAULT_VIRUS_ACTION,
                "bulk_action": defaults.bulk_action, "bulk_score": defaults.bulk_score}
        effective = {name: next((getattr(p, name) for p in layers
                                 if getattr(p, name) is not None), base[name])
                     for name in FIELDS}
        own_values = {name: getattr(own, name) if own else None for name in FIELDS}
        return PolicyView(domain.name, addr.email if addr else None, **own_values,
                          effective=effective)

    # -- allow and block lists ------------------------------------------------------------

    async def list_senders(self, actor: Actor, *, domain: str | None = None,
                           address: str | None = None) -> list[SenderRuleView]:
        """The address's list, or with only a domain its list and all its addresses'."""
        async with self.db.session() as session:
            found, addr = await self._target(session, actor, domain, address)
            query = select(FilterSenderRule).where(FilterSenderRule.domain_id == found.id)
            if addr is not None:
                query = query.where(FilterSenderRule.address_id == addr.id)
            rules = list(await session.scalars(query))
            emails = await address_emails(
                session, [r.address_id for r in rules if r.address_id is not None])
            views = [SenderRuleView(found.name, emails.get(rule.address_id)
                                    if rule.address_id is not None else None,
                                    rule.sender, rule.action) for rule in rules]
            # the domain's own list first, then each address's; allow before block
            return sorted(views, key=lambda v: (v.address is not None, v.address or "",
                                                v.action, v.sender))

    async def add_sender(self, actor: Actor, sender: str, action: str, *,
                         domain: str | None = None, address: str | None = None,
                         exist_ok: bool = False) -> SenderRuleView:
        if action not in ("allow", "block"):
            raise InvalidInput("action must be allow or block")
        entry = normalize_sender(sender)
        async with self.db.session() as session:
            found, addr = await self._target(session, actor, domain, address)
            query = select(FilterSenderRule).where(FilterSenderRule.domain_id == found.id,
                                                   FilterSenderRule.sender == entry)
            query = query.where(FilterSenderRule.address_id == addr.id) if addr else \
                query.where(FilterSenderRule.address_id.is_(None))
            existing = await session.scalar(query)
            owner = addr.email if addr else found.name
            if existing is not None:
                if existing.action == action and exist_ok:
                    return SenderRuleView(found.name, addr.email if addr else None, entry,
                                          action)
                raise Conflict(f"{entry} is already on {owner}'s {existing.action} list")
            session.add(FilterSenderRule(account_id=found.account_id, domain_id=found.id,
                                         address_id=addr.id if addr else None,
                                         sender=entry, action=action))
            record(session, actor, f"filter.{action}", owner, account_id=found.account_id,
                   detail=entry)
            try:
                await session.commit()
            except IntegrityError:
                raise Conflict(f"{entry} is already on {owner}'s lists") from None
            return SenderRuleView(found.name, addr.email if addr else None, entry, action)

    async def remove_sender(self, actor: Actor, sender: str, *, domain: str | None = None,
                            address: str | None = None) -> SenderRuleView:
        entry = normalize_sender(sender)
        async with self.db.session() as session:
            found, addr = await self._target(session, actor, domain, address)
            query = select(FilterSenderRule).where(FilterSenderRule.domain_id == found.id,
                                                   FilterSenderRule.sender == entry)
            query = query.where(FilterSenderRule.address_id == addr.id) if addr else \
                query.where(FilterSenderRule.address_id.is_(None))
            existing = await session.scalar(query)
            owner = addr.email if addr else found.name
            if existing is None:
                raise NotFound(f"{entry} is not on {owner}'s lists")
            view = SenderRuleView(found.name, addr.email if addr else None, entry,
                                  existing.action)
            await session.execute(delete(FilterSenderRule).where(
                FilterSenderRule.id == existing.id))
            record(session, actor, f"filter.un{existing.action}", owner,
                   account_id=found.account_id, detail=entry)
            await session.commit()
            return view

    # -- corrections ----------------------------------------------------------------------

    async def train(self, actor: Actor, data: bytes, *, spam: bool, domain: str | None = None,
                    address: str | None = None) -> Learnt:
        """Teach the domain's model that ``data`` is spam (or not); for an address, its own
        memory of the sender too."""
        if not data.strip():
            raise InvalidInput("the message is empty")
        if len(data) > MAX_TRAIN_SIZE:
            raise InvalidInput(f"the message is larger than {MAX_TRAIN_SIZE} bytes")
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        async with self.db.session() as session:
            found, addr = await self._target(session, actor, domain, address)
            domain_id, account_id, name = found.id, found.account_id, found.name
        learnt = await self.learning.learn(domain_id, account_id, data, spam)
        if addr is not None:
            await self.remember(addr.email, data, spam=spam)
        async with self.db.session() as session:
            record(session, actor, "filter.train", addr.email if addr else name,
                   account_id=account_id, detail="spam" if spam else "ham")
            await session.commit()
        return learnt

    async def report(self, mailbox: str, data: bytes, spam: bool) -> None:
        """A mailbox user's own correction (moving mail into or out of Junk over IMAP, the
        webmail's spam buttons): learnt for the mailbox's domain and remembered for the
        mailbox. Not audited: it changes no setting."""
        async with self.db.session() as session:
            row = await address_domain_keys(session, mailbox.lower())
        if row is not None and len(data) <= MAX_TRAIN_SIZE:
            await self.learning.learn(row[0], row[1], data, spam)
            await self.remember(mailbox, data, spam=spam)

    async def remember(self, recipient: str, data: bytes, *, spam: bool,
                       score: float | None = None, sender: str = "") -> Remembered | None:
        """Remember a correction of mail addressed to ``recipient`` (a listed address)
        for its kinds of sender: the next message from them to that address alone gets
        the points this one lacked. ``score``: the points it had (default: our
        ``X-Spam-Score`` in ``data``); ``sender``: its envelope sender. None when nothing
        was remembered (not a listed address, no sender, too large)."""
        if len(data) > MAX_TRAIN_SIZE:
            return None
        recipient = recipient.strip().lower()
        policy = (await self.policies.policies([recipient]))[recipient]
        return await self.personal.learn(recipient, data, spam=spam,
                                         thresholds=policy.thresholds, score=score,
                                         sender=sender)
