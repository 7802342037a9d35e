"""The content check: the learning content model's spam probability as a pipeline score.

The score is the model's log-odds times ``SCALE``, clipped to ``[MIN_SCORE, MAX_SCORE]``:
an uncertain message (p = 0.5) scores 0, clear ham subtracts a little, and clear spam
reaches the quarantine threshold on its own (10 points at log-odds 10/1.5, p ≈ 0.9987) but
never rejects without another check agreeing (at most 12 points).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from mailward.filter.model import ContentModel
from mailward.filter.pipeline import FilterInput, Finding, parsed_of

SCALE = 1.5
MIN_SCORE = -2.0
MAX_SCORE = 12.0
INLINE_LIMIT = 256 * 1024  # (former threshold for a worker thread; now always one)


def score_of(probability: float) -> float:
    """Pipeline points for a spam probability (monotonic, 0 at 0.5)."""
    p = min(max(probability, 1e-12), 1.0 - 1e-12)
    return min(MAX_SCORE, max(MIN_SCORE, SCALE * math.log(p / (1.0 - p))))


def probability_at(score: float) -> float:
    """The probability at which the content score reaches ``score`` (inverse of score_of)."""
    return 1.0 / (1.0 + math.exp(-score / SCALE))


class ContentCheck:
    """Pipeline check scoring a message by the (learning) content model."""

    name = "content"

    def __init__(self, model: ContentModel | None = None) -> None:
        self.model = model or ContentModel.base()

    def blocking(self, message: FilterInput) -> Sequence[Finding]:
        """The finding (CPU work: the pipeline runs it in a worker thread, within budget)."""
        p = self.model.probability_of(parsed_of(message))
        return [Finding(self.name, round(score_of(p), 2), f"content model: {p:.2f} spam")]

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        return await asyncio.to_thread(self.blocking, message)
