"""The spam filter: checks produce scored findings, the pipeline turns them into a verdict."""

from __future__ import annotations

from mailward.config import Settings
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
    "filter_pipeline",
]


def filter_pipeline(settings: Settings) -> FilterPipeline:
    """Every check of the filter (none when ``spam_filter`` is off)."""
    if not settings.spam_filter:
        return FilterPipeline()
    from mailward.filter.auth import AuthCheck
    from mailward.filter.content import ContentCheck
    from mailward.filter.reputation import ReputationCheck
    from mailward.filter.rules import RulesCheck

    return FilterPipeline([AuthCheck(settings), ReputationCheck(settings), RulesCheck(),
                           ContentCheck()])
