"""The filter pipeline: the one place that decides whether a message is spam.

A check looks at the message and returns findings (a name, a raw score, a reason). The
pipeline's combiner (``combine.Combiner``, set by ``filter_pipeline``) turns them into
calibrated contributions in points; the verdict's score is their sum, mapped to an action
with the thresholds (without a combiner the raw scores are the points). With no
checks configured every message is accepted (pass-through); the spam engine adds checks.
Only recipients on the Filter list are subject to the verdict; the caller applies it.

The message is parsed once (``parsed.parse``, bounded by ``limits``) and every check reads
that one parse; what reads headers only shares the intake's ``HeaderIndex``
(``FilterInput.headers``). The CPU work — the parse and every check with a ``blocking``
method (rules, content model) — is one job in a worker thread, never on the event loop,
within ``time_budget`` seconds for the message: past the budget what is left is skipped and
a neutral ``FILTER_TIMEOUT`` finding (logged) says so; the other checks still give their
findings. A thread cannot be stopped, but the caps bound what a late one still does.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from mailward.filter.parsed import HeaderIndex, Limits, ParsedMessage, parse

log = logging.getLogger(__name__)

T = TypeVar("T")
TOO_MANY_PARTS = "MIME_TOO_MANY_PARTS"
TOO_DEEP = "MIME_TOO_DEEP"
TIMEOUT = "FILTER_TIMEOUT"
CAP_SCORE = 3.0  # a message built past the caps: a few points, as odd structure is


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
    parsed: ParsedMessage | None = field(default=None, compare=False, repr=False)
    headers: HeaderIndex | None = field(default=None, compare=False, repr=False)


def parsed_of(message: FilterInput) -> ParsedMessage:
    """The message's one parse (the pipeline's, or made now with the default limits)."""
    return message.parsed if message.parsed is not None else parse(message.data)


def headers_of(message: FilterInput) -> HeaderIndex:
    """The message's header index (the intake's, or made now)."""
    return message.headers if message.headers is not None else HeaderIndex.of(message.data)


@dataclass(frozen=True, slots=True)
class FilterVerdict:
    action: Action
    score: float
    findings: tuple[Finding, ...] = ()
    reason: str = ""
    parsed: ParsedMessage | None = field(default=None, compare=False, repr=False)

    def header(self) -> str:
        """Value for an ``X-Mailward-Filter`` trace header."""
        tests = ",".join(f"{f.check}={f.score:g}" for f in self.findings) or "none"
        return f"{self.action}; score={self.score:g}; tests={tests}"


class Combine(Protocol):
    """What turns the checks' raw findings into calibrated contributions in points
    (``combine.Combiner``): the verdict's score is the sum of what it returns."""

    def __call__(self, findings: Sequence[Finding]) -> list[Finding]: ...


class Check(Protocol):
    name: str

    async def __call__(self, message: FilterInput) -> Sequence[Finding]: ...


class BlockingCheck(Check, Protocol):
    """A check whose work is CPU: the pipeline calls ``blocking`` in a worker thread."""

    def blocking(self, message: FilterInput) -> Sequence[Finding]: ...


@dataclass(frozen=True, slots=True)
class Thresholds:
    tag: float = 5.0
    quarantine: float = 10.0
    reject: float = 15.0


@dataclass
class FilterPipeline:
    checks: Sequence[Check] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    limits: Limits = field(default_factory=Limits)
    time_budget: float = 10.0  # seconds of CPU work (parse, blocking checks) per message
    # raw findings → contributions in points (None: each finding keeps its check's points)
    combiner: Combine | None = None

    async def run(self, message: FilterInput) -> FilterVerdict:
        """Run every check; a check that fails is logged and contributes nothing."""
        if not self.checks:  # pass-through: nothing reads the message
            return FilterVerdict(Action.ACCEPT, 0.0)
        names = [getattr(check, "name", str(check)) for check in self.checks]
        blocking: dict[int, Callable[[FilterInput], Sequence[Finding]]] = {
            i: work for i, check in enumerate(self.checks)
            if (work := getattr(check, "blocking", None)) is not None}
        # The CPU work (parsing, then the blocking checks in order) is one job in a worker
        # thread, under the budget; what it finished by then counts.
        done: dict[int, Sequence[Finding]] = {}
        parsed_box: list[ParsedMessage] = [] if message.parsed is None else [message.parsed]

        def cpu_work() -> None:
            if not parsed_box:
                parsed_box.append(parse(message.data, self.limits))
            read = replace(message, parsed=parsed_box[0])
            for i, work in blocking.items():
                try:
                    done[i] = work(read)
                except Exception:  # one broken check must not lose or block mail
                    log.exception("filter check %s failed", names[i])
                    done[i] = ()

        late: list[str] = []  # what the budget left undone
        try:
            await asyncio.wait_for(asyncio.to_thread(cpu_work), self.time_budget)
        except TimeoutError:
            late = ([] if parsed_box else ["parsing"]) + [
                names[i] for i in blocking if i not in done]
        finished = dict(done)  # the thread may still run on, unseen: its work is capped
        parsed = parsed_box[0] if parsed_box else ParsedMessage.unparsed(message.data,
                                                                         self.limits)
        message = replace(message, parsed=parsed)
        findings = cap_findings(parsed)
        for i, check in enumerate(self.checks):
            if i in blocking:
                findings.extend(finished.get(i, ()))
                continue
            try:
                findings.extend(await check(message))
            except Exception:  # one broken check must not lose or block mail
                log.exception("filter check %s failed", names[i])
        if late:
            log.warning("filter: time budget of %gs spent, not scored: %s (message from %s, "
                        "%d bytes)", self.time_budget, ", ".join(late),
                        message.sender or "<>", len(message.data))
            findings.append(Finding(TIMEOUT, 0.0, f"time budget of {self.time_budget:g}s "
                                                  f"spent; not scored: {', '.join(late)}"))
        if self.combiner is not None:
            findings = self.combiner(findings)
            score = round(sum(f.score for f in findings), 2)
        else:
            score = sum(f.score for f in findings)
        return FilterVerdict(self._action(score), score, tuple(findings), parsed=parsed)

    def _action(self, score: float) -> Action:
        if score >= self.thresholds.reject:
            return Action.REJECT
        if score >= self.thresholds.quarantine:
            return Action.QUARANTINE
        if score >= self.thresholds.tag:
            return Action.TAG
        return Action.ACCEPT


def cap_findings(parsed: ParsedMessage) -> list[Finding]:
    """The finding of a message read only up to a cap (none for one read whole)."""
    if parsed.capped == "parts":
        return [Finding(TOO_MANY_PARTS, CAP_SCORE, f"more than {parsed.limits.max_parts} MIME "
                                                   "parts: only the first were read")]
    if parsed.capped == "depth":
        return [Finding(TOO_DEEP, CAP_SCORE, f"MIME parts nested more than "
                                             f"{parsed.limits.max_depth} deep: not read")]
    return []
