"""Per-domain learning: each domain refines the shipped content model from its users'
corrections (a quarantine release is ham; "this is spam" and a move into Junk are spam).

A domain's model is a second FTRL model over the same hashed features that learns only
the residual of the base model (``learn(..., offset=base log-odds)``), so the domain's
score is ``sigmoid(base + domain)``. It starts empty and stays small; one correction is
learnt until the domain's model agrees with it (at most :data:`MAX_STEPS` steps: :data:`SURE`
of it, and adding nothing against it), as a user expects a mail they just corrected to be
judged their way next time. What a domain's model adds to a message is bounded
(:data:`MAX_DOMAIN_LOGITS` times the combiner's ``POINTS_PER_LOGIT`` points either way): one
user's click moves the whole domain's mail by at most about the gap between two
thresholds; that user's own next message from the same sender is moved by their own
memory (:mod:`mailward.filter.personal`). Models live in
``filter_domain_models`` (shared by every node); the MX tier re-reads one only when its
``updated_at`` has moved.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from mailward.db import Database
from mailward.db.generation import MISS, LookupCache
from mailward.db.models import FilterDomainModel, utcnow
from mailward.filter.combine import POINTS_PER_LOGIT
from mailward.filter.content import score_of
from mailward.filter.features import Features, extract, features_of
from mailward.filter.model import ContentModel, LogisticModel, Params, sigmoid
from mailward.filter.parsed import ParsedMessage
from mailward.filter.pipeline import Finding

__all__ = ["DomainLearning", "Learnt", "without_our_headers"]

log = logging.getLogger(__name__)

DOMAIN_PARAMS = Params(alpha=0.5, beta=1.0, l1=0.05, l2=0.1)
MAX_STEPS = 8
SURE = 0.9  # a corrected message is learnt until the domain model is this sure of it
MAX_DOMAIN_LOGITS = 4.0  # the most a domain's model adds, in log-odds of the combined score
_OURS = re.compile(rb"(?im)^(x-spam-[a-z-]*|x-mailward-[a-z-]*)[ \t]*:.*(\r?\n[ \t].*)*\r?\n")


def without_our_headers(data: bytes) -> bytes:
    """``data`` without the X-Spam-*/X-Mailward-* fields we add (they would teach the
    model our own verdict instead of the message)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return data
    return _OURS.sub(b"", head + b"\r\n").rstrip(b"\r\n") + sep + body


@dataclass(frozen=True, slots=True)
class Learnt:
    """One correction learnt: the domain's spam probability for it before and after."""

    spam: bool
    before: float
    after: float
    steps: int


class DomainLearning:
    def __init__(self, db: Database, base: ContentModel | None = None) -> None:
        self.db = db
        self._base = base
        self._models: dict[int, tuple[datetime, LogisticModel]] = {}
        self._stamps: LookupCache[int, datetime | None] = db.lookups.cache(
            "filter.domain_model_stamps")

    @property
    def base(self) -> ContentModel:
        """The shipped model (loaded on first use)."""
        if self._base is None:
            self._base = ContentModel.base()
        return self._base

    async def findings(self, domains: dict[int, str], data: bytes,
                       parsed: ParsedMessage | None = None) -> dict[int, Finding]:
        """For each domain (id → name) with a model of its own, the points its corrections
        add to (or take from) the base content score of this message (``parsed``: the
        pipeline's parse of ``data``, whose features the content check already made)."""
        models = await self._current(domains)
        if not models:
            return {}
        if parsed is None:
            features = await _features(data)
        else:
            features = await asyncio.to_thread(features_of, parsed)
        base = self.base.model.margin(features)
        most = MAX_DOMAIN_LOGITS * POINTS_PER_LOGIT
        found = {}
        for domain_id, model in models.items():
            before, after = sigmoid(base), sigmoid(base + model.margin(features))
            # a few FTRL steps over many features overshoot far past SURE: bounded here
            delta = round(max(-most, min(most, score_of(after) - score_of(before))), 2)
            if delta:
                found[domain_id] = Finding(
                    "learned", delta, f"{domains[domain_id]}'s corrections: {after:.2f} spam")
        return found

    async def learn(self, domain_id: int, account_id: int, data: bytes, spam: bool) -> Learnt:
        """Learn one correction into the domain's model (created on first use)."""
        features = await _features(without_our_headers(data))
        base = self.base.model.margin(features)
        async with self.db.session() as session:
            row = await session.scalar(select(FilterDomainModel).where(
                FilterDomainModel.domain_id == domain_id).with_for_update())
            model = LogisticModel.from_bytes(row.model) if row else LogisticModel(DOMAIN_PARAMS)
            before = sigmoid(base + model.margin(features))
            steps = 0
            while steps < MAX_STEPS and not _agrees(base, model.margin(features), spam):
                model.learn(features, spam, offset=base)
                steps += 1
            blob = model.to_bytes()
            if row is None:
                row = FilterDomainModel(domain_id=domain_id, account_id=account_id, model=blob)
                session.add(row)
            row.model = blob
            row.spam_count = (row.spam_count or 0) + (1 if spam else 0)
            row.ham_count = (row.ham_count or 0) + (0 if spam else 1)
            row.updated_at = utcnow()
            await session.commit()
        return Learnt(spam, before, sigmoid(base + model.margin(features)), steps)

    async def _current(self, domains: Iterable[int]) -> dict[int, LogisticModel]:
        ids = sorted(set(domains))
        if not ids:
            return {}
        async with self.db.session() as session:
            # when each domain's model last changed (None: it has none), cached per process
            # like the other lookups: most messages then ask the database nothing here
            epoch = await self._stamps.fresh(session)
            known = {d: self._stamps.get(d) for d in ids}
            unknown = [d for d, at in known.items() if at is MISS]
            if unknown:
                read = dict((await session.execute(
                    select(FilterDomainModel.domain_id, FilterDomainModel.updated_at)
                    .where(FilterDomainModel.domain_id.in_(unknown)))).all())
                for domain_id in unknown:
                    known[domain_id] = read.get(domain_id)
                    self._stamps.put(domain_id, read.get(domain_id), epoch)
            stamps: dict[int, datetime] = {
                d: at for d, at in known.items() if at is not None and at is not MISS}
            stale = [d for d, at in stamps.items()
                     if d not in self._models or self._models[d][0] != at]
            if stale:
                for domain_id, at, blob in await session.execute(
                        select(FilterDomainModel.domain_id, FilterDomainModel.updated_at,
                               FilterDomainModel.model)
                        .where(FilterDomainModel.domain_id.in_(stale))):
                    try:
                        self._models[domain_id] = (at, LogisticModel.from_bytes(blob))
                    except ValueError:
                        log.exception("domain #%d has an unreadable filter model", domain_id)
        return {d: self._models[d][1] for d in stamps if d in self._models}


def _agrees(base: float, margin: float, spam: bool) -> bool:
    """Whether the domain's model (``margin`` on top of the base log-odds) agrees with a
    correction: sure of it, and adding nothing against it (a ham the base model already
    finds very clean must not come out spammier than the base says)."""
    p = sigmoid(base + margin)
    return (p >= SURE and margin >= 0) if spam else (p <= 1.0 - SURE and margin <= 0)


async def _features(data: bytes) -> Features:
    return await asyncio.to_thread(extract, data)  # parsing never runs on the event loop
