"""The spam filter: checks produce scored findings, the pipeline turns them into a verdict."""

from mailward.filter.pipeline import (
    Action,
    Check,
    FilterInput,
    FilterPipeline,
    FilterVerdict,
    Finding,
)

__all__ = ["Action", "Check", "FilterInput", "FilterPipeline", "FilterVerdict", "Finding"]
