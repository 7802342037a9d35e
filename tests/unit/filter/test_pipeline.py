"""The filter pipeline: scores add up to a verdict; a broken check never blocks mail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from mailward.filter import Action, FilterInput, FilterPipeline, Finding

MESSAGE = FilterInput(sender="a@b.example", recipients=("c@d.example",), data=b"x",
                      peer="192.0.2.1", helo="b.example")


@dataclass
class Scored:
    name: str
    score: float

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        return [Finding(self.name, self.score, f"{self.name} matched")]


class Broken:
    name = "broken"

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        raise RuntimeError("resolver exploded")


async def test_without_checks_every_message_passes() -> None:
    verdict = await FilterPipeline().run(MESSAGE)
    assert verdict.action is Action.ACCEPT and verdict.score == 0 and verdict.findings == ()


@pytest.mark.parametrize(("scores", "action"), [
    ((1.0, 2.0), Action.ACCEPT),
    ((3.0, 2.0), Action.TAG),
    ((6.0, 4.5), Action.QUARANTINE),
    ((10.0, 5.0), Action.REJECT),
    ((-5.0, 12.0), Action.TAG),  # negative scores (allow-list hits) count too
])
async def test_scores_add_up_to_the_action(scores: tuple[float, ...], action: Action) -> None:
    checks = [Scored(f"c{i}", s) for i, s in enumerate(scores)]
    verdict = await FilterPipeline(checks).run(MESSAGE)
    assert verdict.action is action
    assert verdict.score == sum(scores)
    assert [f.check for f in verdict.findings] == [c.name for c in checks]


async def test_a_failing_check_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    verdict = await FilterPipeline([Broken(), Scored("rule", 6.0)]).run(MESSAGE)
    assert verdict.action is Action.TAG and verdict.score == 6.0
    assert "filter check broken failed" in caplog.text


async def test_the_trace_header_names_each_finding() -> None:
    verdict = await FilterPipeline([Scored("dnsbl", 4.0), Scored("bayes", 2.5)]).run(MESSAGE)
    assert verdict.header() == "tag; score=6.5; tests=dnsbl=4,bayes=2.5"
