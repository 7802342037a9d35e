"""The checklist items of the DNS checks and what their messages share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from mailward.dns.model import Lookup, Outcome

Status = Literal["pass", "warn", "fail"]
FAILED = (Outcome.TIMEOUT, Outcome.SERVFAIL)  # no usable answer: nothing to judge
_RANK = {"pass": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class CheckItem:
    """One line of the checklist."""

    name: str  # what was checked, e.g. "mx", "mx-missing", "propagation", "cname-mail"
    status: Status
    message: str  # what was found
    fix: str = ""  # one line: what to change; empty on pass


def worst(items: Iterable[CheckItem]) -> Status:
    statuses = [item.status for item in items]
    return max(statuses, key=_RANK.__getitem__) if statuses else "pass"


def plain(name: str) -> str:
    return name[:-1] if name.endswith(".") else name


def lookup_problem(lookup: Lookup) -> str:
    detail = lookup.detail or lookup.outcome.value
    where = f" (asked {lookup.server})" if lookup.server else ""
    return f"{lookup.outcome.value}: {detail}{where}"
