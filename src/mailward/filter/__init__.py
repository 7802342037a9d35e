"""The spam filter: checks produce findings, the combiner weighs them into points, the
pipeline turns those into a verdict."""

from __future__ import annotations

from mailward.config import Settings
from mailward.filter.parsed import Limits
from mailward.filter.pipeline import (
    Action,
    Check,
    FilterInput,
    FilterPipeline,
    FilterVerdict,
    Finding,
)

__all__ = [
    "Action",
    "Check",
    "FilterInput",
    "FilterPipeline",
    "FilterVerdict",
    "Finding",
    "Limits",
    "filter_pipeline",
    "limits_of",
]


def filter_pipeline(settings: Settings) -> FilterPipeline:
    """Every check of the filter (none when ``spam_filter`` is off)."""
    if not settings.spam_filter:
        return FilterPipeline()
    # the checks load dnspython, dkimpy, pyspf and the model: only when the filter is on
    from mailward.filter.auth import AuthCheck
    from mailward.filter.bulk import BulkCheck
    from mailward.filter.combine import shipped
    from mailward.filter.content import ContentCheck
    from mailward.filter.phishing import PhishingCheck
    from mailward.filter.reputation import ReputationCheck
    from mailward.filter.rules import RulesCheck

    # the combiner weighs every check's findings into calibrated points (combine.py)
    checks: list[Check] = [AuthCheck(settings), ReputationCheck(settings), RulesCheck(),
                           BulkCheck(), PhishingCheck(), ContentCheck()]
    return FilterPipeline(checks, limits=limits_of(settings),
                          time_budget=settings.filter_time_budget_seconds, combiner=shipped())


def limits_of(settings: Settings) -> Limits:
    """How much of a message the filter reads (``filter_max_parts``, ``filter_max_depth``)."""
    return Limits(max_parts=settings.filter_max_parts, max_depth=settings.filter_max_depth)
