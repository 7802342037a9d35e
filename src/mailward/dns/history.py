"""The history of DNS answers the domain check observed, per domain and record type.

Each distinct answer set (its canonical text, see :func:`mailward.dns.check.answer_text`)
is one :class:`~mailward.db.models.DnsObservation` row: when it was first and last seen,
and the longest TTL it came with. That is enough to know, when the answer changes, the old
answer, its TTL and the time of the change, hence when every cache has the new answer.
Plain select-then-insert/update, portable across SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailward.db.engine import Database
from mailward.db.models import DnsObservation
from mailward.dns.check import PreviousAnswer

__all__ = ["PreviousAnswer", "previous", "record"]

_ATTEMPTS = 3  # a concurrent check may insert the same answer first: then update it


async def record(db: Database, domain_id: int, rdtype: str,
                 answers: Sequence[tuple[str, int]], now: datetime) -> None:
    """Note that ``answers`` (``(answer text, ttl)``) were seen at ``now``, in one transaction.

    A new answer gets ``first_seen = last_seen = now``; a known one ``last_seen = now`` and
    the longer of its TTLs. The same answer twice in ``answers`` counts once (longest TTL).
    """
    longest: dict[str, int] = {}
    for answer, ttl in answers:
        longest[answer] = max(ttl, longest.get(answer, ttl))
    if not longest:
        return
    for attempt in range(_ATTEMPTS):
        async with db.session() as session:
            try:
                await _upsert(session, domain_id, rdtype, longest, now)
                await session.commit()
                return
            except IntegrityError:
                await session.rollback()
                if attempt == _ATTEMPTS - 1:
                    raise


async def _upsert(session: AsyncSession, domain_id: int, rdtype: str,
                  answers: dict[str, int], now: datetime) -> None:
    known = {row.answer: row for row in await session.scalars(
        select(DnsObservation).where(DnsObservation.domain_id == domain_id,
                                     DnsObservation.rdtype == rdtype,
                                     DnsObservation.answer.in_(list(answers))))}
    for answer, ttl in answers.items():
        row = known.get(answer)
        if row is None:
            session.add(DnsObservation(domain_id=domain_id, rdtype=rdtype, answer=answer,
                                       ttl=ttl, first_seen=now, last_seen=now))
            continue
        row.ttl = max(row.ttl, ttl)
        row.last_seen = max(row.last_seen, now)
        row.first_seen = min(row.first_seen, now)
    await session.flush()


async def previous(db: Database, domain_id: int, rdtype: str,
                   current_answer: str) -> PreviousAnswer | None:
    """The answer before ``current_answer``: the most recently seen other answer.

    ``changed_at`` is when ``current_answer`` was first seen (None when there is no other
    answer, or ``current_answer`` was never recorded). An answer that comes back after a
    change (A, B, A again) keeps its old ``first_seen``; the change back is then dated at
    the other answer's first sighting, still early (the history keeps no sightings).
    """
    async with db.session() as session:
        current = await session.scalar(
            select(DnsObservation).where(DnsObservation.domain_id == domain_id,
                                         DnsObservation.rdtype == rdtype,
                                         DnsObservation.answer == current_answer))
        if current is None:
            return None
        other = await session.scalar(
            select(DnsObservation)
            .where(DnsObservation.domain_id == domain_id, DnsObservation.rdtype == rdtype,
                   DnsObservation.answer != current_answer)
            .order_by(DnsObservation.last_seen.desc(), DnsObservation.id.desc())
            .limit(1))
        if other is None:
            return None
        # an answer seen again after a change keeps its first first_seen: the change back is
        # no earlier than the other answer's first sighting
        return PreviousAnswer(other.answer, other.ttl,
                              max(current.first_seen, other.first_seen))
