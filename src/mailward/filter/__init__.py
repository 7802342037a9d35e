"""The spam filter: checks produce scored findings, the pipeline turns them into a verdict."""

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
    from mailward.filter.content import ContentCheck
    from mailward.filter.reputation import ReputationCheck
    from mailward.filter.rules import RulesCheck

    return FilterPipeline([AuthCheck(settings), ReputationCheck(settings), RulesCheck(),
                           ContentCheck()], limits=limits_of(settings),
                          time_budget=settings.filter_time_budget_seconds)


def limits_of(settings: Settings) -> Limits:
    """How much of a message the filter reads (``filter_max_parts``, ``filter_max_depth``)."""
    return Limits(max_parts=settings.filter_max_parts, max_depth=settings.filter_max_depth)
