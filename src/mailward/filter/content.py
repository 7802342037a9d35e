"""The content check: the learning content model's log-odds of spam as a finding.

The finding's raw score is the model's log-odds itself, unclipped (0 at p = 0.5): the
combiner (``combine.Combiner``) weighs it with the other findings and turns the message's
combined log-odds into points, so nothing is lost to clipping and nothing orders ham and
spam alike at one value. ``score_of`` gives the points the content finding contributes at
a probability under the shipped combiner; differences of it are what a domain's learnt
correction adds.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from mailward.filter.combine import POINTS_PER_LOGIT, points_of, shipped
from mailward.filter.model import ContentModel
from mailward.filter.pipeline import FilterInput, Finding, parsed_of

MAX_LOGIT = 35.0  # probabilities saturate long before: the log-odds stay finite


def logit_of(probability: float) -> float:
    """The log-odds of ``probability``, within ±MAX_LOGIT."""
    p = min(max(probability, 1e-15), 1.0 - 1e-15)
    return max(-MAX_LOGIT, min(MAX_LOGIT, math.log(p / (1.0 - p))))


def score_of(probability: float) -> float:
    """Points of a message whose only finding is a content probability of ``probability``
    under the shipped combiner (increasing; the difference between two probabilities is
    ``POINTS_PER_LOGIT`` times the combiner's content weight times their log-odds
    difference)."""
    combiner = shipped()
    return points_of(combiner.bias) + POINTS_PER_LOGIT * combiner.content_weight * logit_of(
        probability)


class ContentCheck:
    """Pipeline check scoring a message by the (learning) content model."""

    name = "content"

    def __init__(self, model: ContentModel | None = None) -> None:
        self.model = model or ContentModel.base()

    def blocking(self, message: FilterInput) -> Sequence[Finding]:
        """The finding (CPU work: the pipeline runs it in a worker thread, within budget)."""
        p = self.model.probability_of(parsed_of(message))
        logit = logit_of(p)  # exact to well under 0.001 up to |log-odds| 30
        return [Finding(self.name, round(logit, 3),
                        f"content model: {p:.2f} spam (log-odds {logit:.2f})")]

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        return await asyncio.to_thread(self.blocking, message)
