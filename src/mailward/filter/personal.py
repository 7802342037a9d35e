"""Per-user learning: each address remembers what its corrections taught about kinds of
sender, and its next message from the same kind feels it.

A correction (a quarantine release or "not spam": ham; "this is spam" or a move into Junk:
spam) records, for the corrected recipient's address, a signed weight in points for each
key of the message's sender, most specific first:

* ``from:<address>``: each From: address (the envelope sender when there is none);
* ``list:<id>``: the List-Id (RFC 2919), a mailing list or newsletter;
* ``domain:<registrable domain>``: the From: domain's registrable part (publicsuffixlist).
  It is learnt at half strength per correction (:data:`DOMAIN_SHARE`): one spammer at a
  large provider does not hold the rest of its mail, two reports from one domain do.

The weight is what the corrected message lacked to land where the user put it: below the
tag threshold (ham) or at the quarantine threshold (spam), by :data:`MARGIN_LOGITS`, from
the score it had (the quarantine's score of a released message, our ``X-Spam-Score`` of a
delivered one). Points are the combiner's (``POINTS_PER_LOGIT`` per unit of log-odds); a
weight is at most :data:`MAX_LOGITS` of them. A correction never weakens an earlier one of
the same direction for a key, and one of the other direction replaces it.

At decision time the message's most specific key with a weight gives one finding,
``personal-ham`` or ``personal-spam`` (:func:`personal_finding`). A ham weight counts only
for mail whose domain is authenticated (DMARC pass, or an SPF or DKIM pass of its
registrable domain; a List-Id only when every From: domain is): a forged From: line earns
no credit. Spam weights count as they are.

Bounded and private: rows belong to one address (deleted with it, its domain or account)
and are read only for it; at most ``filter_personal_entries`` keys per address (the least
recently corrected go first); a key counts for ``filter_personal_days`` after its last
correction (:meth:`PersonalMemory.purge` deletes the expired).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from email.utils import getaddresses

from publicsuffixlist import PublicSuffixList
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.config import Settings
from mailward.db import Database
from mailward.db.models import FilterPersonalSender, utcnow
from mailward.directory.facts import address_domain_keys, address_ids
from mailward.filter.combine import POINTS_PER_LOGIT
from mailward.filter.features import header_text
from mailward.filter.parsed import ParsedMessage, parse_headers
from mailward.filter.pipeline import Finding, Thresholds

__all__ = ["EMPTY", "HAM", "MARGIN_LOGITS", "SPAM", "Memory", "PersonalMemory", "Remembered",
           "SenderKey", "SenderKinds", "SenderWeight", "authenticated_domains",
           "header_addresses", "load_memories", "moved", "needed_points", "our_score",
           "personal_finding", "registrable", "sender_keys", "sender_kinds"]

HAM, SPAM = "personal-ham", "personal-spam"
MARGIN_LOGITS = 1.0  # how far past the threshold a corrected kind of sender is put
MAX_LOGITS = 16.0  # the most one key's weight may be, either way
DOMAIN_SHARE = 0.5  # of a correction's weight a domain key learns at a time
MAX_KEY = 330  # characters of a key (the column's length)
_LIST_ID = re.compile(r"<([^<>\s]+)>\s*$")
_SCORE_CAP = 1000.0


@functools.cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def registrable(domain: str) -> str:
    """The registrable part of ``domain`` (``news.example.co.uk`` → ``example.co.uk``)."""
    name = domain.strip().lower().rstrip(".")
    return (_suffixes().privatesuffix(name) or name) if name else ""


# -- the kinds of sender of a message ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderKey:
    """One key of a message's sender: its name (``kind:value``), the registrable domains
    that must be authenticated for a ham weight to count, and the share of a correction
    it learns."""

    name: str
    domains: frozenset[str]
    share: float = 1.0


@dataclass(frozen=True, slots=True)
class SenderKinds:
    """The keys of one message (most specific first) and the registrable domains its
    authentication vouches for."""

    keys: tuple[SenderKey, ...]
    authenticated: frozenset[str] = frozenset()

    def verified(self, key: SenderKey) -> bool:
        return bool(key.domains) and key.domains <= self.authenticated


def header_addresses(msg: Message | None, name: str) -> tuple[str, ...]:
    """The addresses of header ``name`` of ``msg``, lower-case, sorted, once each."""
    if msg is None:
        return ()
    pairs = getaddresses([header_text(str(v)) for v in msg.get_all(name, [])])
    return tuple(sorted({a.strip().lower() for _n, a in pairs if "@" in a}))


def _list_id(msg: Message | None) -> str:
    value = header_text(str(msg.get("List-Id", ""))) if msg is not None else ""
    match = _LIST_ID.search(value)
    found = match.group(1) if match else value.strip()
    return found.lower()[:255] if found and " " not in found else ""


def sender_keys(msg: Message | None, envelope_sender: str = "") -> tuple[SenderKey, ...]:
    """The keys of a message's sender (see the module's docstring), most specific first."""
    senders = header_addresses(msg, "From")
    if not senders and "@" in envelope_sender:
        senders = (envelope_sender.strip().lower(),)
    domains = {s: registrable(s.rsplit("@", 1)[1]) for s in senders}
    keys = [SenderKey(f"from:{s}"[:MAX_KEY], frozenset({domains[s]})) for s in senders]
    listed = _list_id(msg)
    if listed:
        keys.append(SenderKey(f"list:{listed}", frozenset(domains.values())))
    for org in sorted(set(domains.values())):
        if org:
            keys.append(SenderKey(f"domain:{org}"[:MAX_KEY], frozenset({org}), DOMAIN_SHARE))
    return tuple(keys)


def authenticated_domains(auth: object) -> frozenset[str]:
    """The registrable domains the authentication results (an ``AuthOutcome``) vouch
    for: the From: domain's when DMARC passed, SPF's domain when SPF passed, each passing
    DKIM signature's d=."""
    if auth is None:
        return frozenset()
    found = set()
    if getattr(auth, "dmarc", "") == "pass":
        found.add(registrable(str(getattr(auth, "from_domain", ""))))
    if getattr(auth, "spf", "") == "pass":
        found.add(registrable(str(getattr(auth, "spf_domain", ""))))
    for signature in getattr(auth, "dkim", ()) or ():
        if getattr(signature, "result", "") == "pass":
            found.add(registrable(str(getattr(signature, "domain", ""))))
    return frozenset(found - {""})


def sender_kinds(data: bytes, parsed: ParsedMessage | None, envelope_sender: str,
                 auth: object) -> SenderKinds:
    """The kinds of sender of a message at the MX (``parsed``: the pipeline's parse of
    ``data``; ``auth``: its ``AuthOutcome``)."""
    msg = parsed.root if parsed is not None and parsed.root is not None else \
        parse_headers(data)
    return SenderKinds(sender_keys(msg, envelope_sender), authenticated_domains(auth))


# -- what one address remembers, and the finding it gives -------------------------------


@dataclass(frozen=True, slots=True)
class SenderWeight:
    key: str
    weight: float  # points: negative ham, positive spam
    spam: int  # corrections counted for the key
    ham: int
    updated_at: datetime


@dataclass(frozen=True, slots=True, eq=False)
class Memory:
    """One address's remembered kinds of sender (key → weight); read-only."""

    weights: Mapping[str, SenderWeight] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.weights)


EMPTY = Memory()


def personal_finding(memory: Memory, kinds: SenderKinds | None, recipient: str = ""
                     ) -> Finding | None:
    """The finding of ``memory`` for a message: its most specific key with a weight
    (a ham weight only when that key's domains are authenticated); None without one."""
    if not memory or kinds is None:
        return None
    for key in kinds.keys:
        found = memory.weights.get(key.name)
        if found is None or not found.weight:
            continue
        if found.weight < 0 and not kinds.verified(key):
            continue  # credit for a sender who may not be who the From: line says
        whose = f"{recipient}'s" if recipient else "the recipient's"
        return Finding(SPAM if found.weight > 0 else HAM, round(found.weight, 2),
                       f"{whose} corrections of mail from {key.name} "
                       f"({found.spam} spam, {found.ham} not spam)")
    return None


async def load_memories(session: AsyncSession, address_ids: Iterable[int], since: datetime
                        ) -> dict[int, Memory]:
    """The memory of each of ``address_ids`` that has one (keys corrected after ``since``)."""
    ids = sorted(set(address_ids))
    if not ids:
        return {}
    found: dict[int, dict[str, SenderWeight]] = {}
    rows = await session.execute(
        select(FilterPersonalSender.address_id, FilterPersonalSender.key,
               FilterPersonalSender.weight, FilterPersonalSender.spam_count,
               FilterPersonalSender.ham_count, FilterPersonalSender.updated_at)
        .where(FilterPersonalSender.address_id.in_(ids),
               FilterPersonalSender.updated_at >= since))
    for address_id, key, weight, spam, ham, at in rows:
        found.setdefault(address_id, {})[key] = SenderWeight(key, weight, spam, ham, at)
    return {address_id: Memory(weights) for address_id, weights in found.items()}


# -- learning a correction ---------------------------------------------------------------


def our_score(msg: Message | None) -> float | None:
    """The score our MX gave a delivered message (its first ``X-Spam-Score``, ours: the
    MX drops a sender's), without what personal findings (``X-Spam-Status`` tests)
    added; None when it carries none."""
    if msg is None or msg.get("X-Spam-Score") is None:
        return None
    try:
        score = float(str(msg.get("X-Spam-Score")).strip())
    except ValueError:
        return None
    status = str(msg.get("X-Spam-Status", ""))
    _head, _sep, tests = status.partition("tests=")
    for test in tests.split(","):
        check, _eq, points = test.strip().rpartition("=")
        if check in (HAM, SPAM):
            with contextlib.suppress(ValueError):
                score -= float(points)
    return max(-_SCORE_CAP, min(_SCORE_CAP, score))


def needed_points(spam: bool, score: float | None, thresholds: Thresholds) -> float:
    """The points a message that scored ``score`` (None: unknown) lacked to land past
    the threshold the correction names: below tag (ham), at quarantine (spam)."""
    margin = MARGIN_LOGITS * POINTS_PER_LOGIT
    most = MAX_LOGITS * POINTS_PER_LOGIT
    if spam:
        had = 0.0 if score is None else score  # unknown: as undecided mail scores
        return round(min(most, max(margin, thresholds.quarantine + margin - had)), 2)
    had = thresholds.quarantine if score is None else score  # unknown: as held mail
    return round(max(-most, min(-margin, thresholds.tag - margin - had)), 2)


def moved(old: float, needed: float, share: float = 1.0) -> float:
    """A key's weight after a correction that needed ``needed`` points, learnt at
    ``share``: towards ``needed`` (at once at share 1), never past it, and never weaker
    than an earlier weight of the same direction."""
    target = needed if share >= 1.0 else old + share * needed
    if needed > 0:
        return round(min(max(target, old), max(needed, old)), 2)
    return round(max(min(target, old), min(needed, old)), 2)


@dataclass(frozen=True, slots=True)
class Remembered:
    """One correction remembered for an address: the points it needed and each key's
    weight now."""

    recipient: str
    spam: bool
    needed: float
    weights: dict[str, float]


class PersonalMemory:
    """Reads and writes addresses' corrections per kind of sender."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.entries = settings.filter_personal_entries
        self.lifetime = timedelta(days=settings.filter_personal_days)

    async def learn(self, recipient: str, data: bytes, *, spam: bool, thresholds: Thresholds,
                    score: float | None = None, sender: str = "") -> Remembered | None:
        """Remember a correction of ``data`` (addressed to ``recipient``, a listed
        address; None for another) as spam or ham. ``score``: the points it had (default:
        read from our ``X-Spam-Score``); ``sender``: the envelope sender, for a message
        without a From: address."""
        msg = parse_headers(data)
        keys = sender_keys(msg, sender or _return_path(msg))
        if not keys:
            return None
        had = score if score is not None else our_score(msg)
        needed = needed_points(spam, had, thresholds)
        for attempt in (1, 2):  # a concurrent first correction of the same key: once more
            try:
                weights = await self._write(recipient.lower(), keys, spam, needed)
            except IntegrityError:
                if attempt == 2:
                    raise
                continue
            return None if weights is None else Remembered(recipient, spam, needed, weights)
        return None  # pragma: no cover - the loop returns or raises

    async def _write(self, recipient: str, keys: Sequence[SenderKey], spam: bool,
                     needed: float) -> dict[str, float] | None:
        now = utcnow()
        expired = now - self.lifetime
        async with self.db.session() as session:
            address_id = (await address_ids(session, [recipient])).get(recipient)
            owner = await address_domain_keys(session, recipient)
            if address_id is None or owner is None:
                return None
            domain_id, account_id = owner
            names = [k.name for k in keys]
            rows = {row.key: row for row in await session.scalars(
                select(FilterPersonalSender).where(
                    FilterPersonalSender.address_id == address_id,
                    FilterPersonalSender.key.in_(names)).with_for_update())}
            weights = {}
            for key in keys:
                row = rows.get(key.name)
                if row is None:
                    row = FilterPersonalSender(address_id=address_id, key=key.name,
                                               weight=0.0, spam_count=0, ham_count=0)
                    session.add(row)
                    old = 0.0
                else:
                    old = row.weight if row.updated_at >= expired else 0.0
                    if row.updated_at < expired:
                        row.spam_count = row.ham_count = 0
                row.account_id, row.domain_id = account_id, domain_id
                row.weight = weights[key.name] = moved(old, needed, key.share)
                row.spam_count = (row.spam_count or 0) + (1 if spam else 0)
                row.ham_count = (row.ham_count or 0) + (0 if spam else 1)
                row.updated_at = now
            await session.flush()
            await self._bound(session, address_id, expired)
            await session.commit()
        return weights

    async def _bound(self, session: AsyncSession, address_id: int, expired: datetime) -> None:
        """Drop the address's expired keys, and its least recent past the cap."""
        await session.execute(delete(FilterPersonalSender).where(
            FilterPersonalSender.address_id == address_id,
            FilterPersonalSender.updated_at < expired))
        count = await session.scalar(select(func.count(FilterPersonalSender.id)).where(
            FilterPersonalSender.address_id == address_id))
        over = int(count or 0) - self.entries
        if over > 0:
            oldest = list(await session.scalars(
                select(FilterPersonalSender.id)
                .where(FilterPersonalSender.address_id == address_id)
                .order_by(FilterPersonalSender.updated_at, FilterPersonalSender.id)
                .limit(over)))
            await session.execute(delete(FilterPersonalSender).where(
                FilterPersonalSender.id.in_(oldest)))

    async def purge(self, now: datetime | None = None) -> int:
        """Delete every address's expired keys; how many."""
        cutoff = (now or utcnow()) - self.lifetime
        async with self.db.session() as session, session.begin():
            result = await session.execute(delete(FilterPersonalSender).where(
                FilterPersonalSender.updated_at < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def memory(self, recipient: str) -> Memory:
        """What ``recipient`` (a listed address) remembers now (for tests and tools)."""
        async with self.db.session() as session:
            address_id = (await address_ids(session, [recipient.lower()])).get(
                recipient.lower())
            if address_id is None:
                return EMPTY
            found = await load_memories(session, [address_id], utcnow() - self.lifetime)
        return found.get(address_id, EMPTY)


def _return_path(msg: Message | None) -> str:
    found = header_addresses(msg, "Return-Path")
    return found[0] if found else ""
