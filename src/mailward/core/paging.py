"""A page of results, and results as JSON-ready data (the CLI's ``--json``, the API)."""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: builtins.list[T]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def to_json(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON-ready data (used by the CLI's ``--json``)."""
    if hasattr(value, "__dataclass_fields__"):
        data = asdict(value)
        if isinstance(value, Page):
            data["pages"] = value.pages
        return to_json(data)
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    return value
