"""The filter pipeline: the one place that decides whether a message is spam.

A check looks at the message and returns findings (a name, a score, a reason). The
pipeline adds the scores up and maps the total to an action with the thresholds. With no
checks configured every message is accepted (pass-through); the spam engine adds checks.
Only recipients on the Filter list are subject to the verdict; the caller applies it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Action(enum.StrEnum):
    ACCEPT = "accept"
    TAG = "tag"  # deliver with a spam header / subject tag
    QUARANTINE = "quarantine"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class FilterInput:
    """What the checks see: envelope facts and the raw message."""

    sender: str
    recipients: tuple[str, ...]  # only the Filter-list recipients
    data: bytes
    peer: str
    helo: str
    tls: bool = False
    auth: Any = None  # the AuthOutcome, when intake already authenticated the message


@dataclass(frozen=True, slots=True)
class FilterVerdict:
    action: Action
    score: float
    findings: tuple[Finding, ...] = ()
    reason: str = ""

    def header(self) -> str:
        """Value for an ``X-Mailward-Filter`` trace header."""
        tests = ",".join(f"{f.check}={f.score:g}" for f in self.findings) or "none"
        return f"{self.action}; score={self.score:g}; tests={tests}"


class Check(Protocol):
    name: str

    async def __call__(self, message: FilterInput) -> Sequence[Finding]: ...


@dataclass(frozen=True, slots=True)
class Thresholds:
    tag: float = 5.0
    quarantine: float = 10.0
    reject: float = 15.0


@dataclass
class FilterPipeline:
    checks: Sequence[Check] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)

    async def run(self, message: FilterInput) -> FilterVerdict:
        """Run every check; a check that fails is logged and contributes nothing."""
        findings: list[Finding] = []
        for check in self.checks:
            try:
                findings.extend(await check(message))
            except Exception:  # one broken check must not lose or block mail
                log.exception("filter check %s failed", getattr(check, "name", check))
        score = sum(f.score for f in findings)
        return FilterVerdict(self._action(score), score, tuple(findings))

    def _action(self, score: float) -> Action:
        if score >= self.thresholds.reject:
            return Action.REJECT
        if score >= self.thresholds.quarantine:
            return Action.QUARANTINE
        if score >= self.thresholds.tag:
            return Action.TAG
        return Action.ACCEPT
