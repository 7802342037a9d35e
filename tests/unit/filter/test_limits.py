"""The filter's bounded work: one parse per message, capped in parts, depth and text; the
CPU work off the event loop within a time budget (past it: a neutral finding, logged)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from email import policy
from email.parser import BytesParser

import pytest

from mailward.filter import Action, FilterInput, FilterPipeline, Finding, Limits
from mailward.filter.content import ContentCheck
from mailward.filter.parsed import parse
from mailward.filter.pipeline import TIMEOUT, TOO_DEEP, TOO_MANY_PARTS
from mailward.filter.rules import RulesCheck

HEAD = (b"From: Ann <ann@sender.example>\r\nTo: bob@filtered.example\r\nSubject: hi\r\n"
        b"Date: Sun, 06 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@sender.example>\r\n"
        b"MIME-Version: 1.0\r\n")


def many_parts(count: int, body: bytes = b"x") -> bytes:
    part = b"--b\r\nContent-Type: text/plain\r\n\r\n" + body + b"\r\n"
    return (HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * count
            + b"--b--\r\n")


def nested(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nhello from the bottom\r\n"
    for level in range(depth):
        body = (b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n" % (level, level)
                + body + b"\r\n--n%d--\r\n" % level)
    return HEAD + body


def message(data: bytes) -> FilterInput:
    return FilterInput(sender="ann@sender.example", recipients=("bob@filtered.example",),
                       data=data, peer="192.0.2.1", helo="mail.sender.example")


def depth_of(parsed_root: object) -> int:
    def down(part: object) -> int:
        payload = part.get_payload()  # type: ignore[attr-defined]
        return 1 + max((down(p) for p in payload), default=0) if isinstance(payload, list) else 1
    return down(parsed_root)


@pytest.mark.parametrize("data", [
    many_parts(30), nested(8),
    HEAD + b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n",
    HEAD + b"Content-Type: multipart/alternative; boundary=q\r\n\r\npreamble\r\n--q\r\n"
           b"Content-Type: text/html\r\n\r\n<p>hi</p>\r\n--q--\r\nepilogue\r\n",
    HEAD + b"Content-Type: multipart/mixed; boundary=never\r\n\r\nno boundary at all\r\n",
])
def test_under_the_caps_the_parse_is_the_stdlib_parse(data: bytes) -> None:
    parsed = parse(data, Limits(max_parts=40, max_depth=10))
    full = BytesParser(policy=policy.compat32).parsebytes(data)
    assert parsed.root is not None and parsed.capped == ""
    assert parsed.root.as_string() == full.as_string()
    assert parsed.defects == bool(full.defects)


def test_twenty_thousand_parts_are_read_up_to_the_cap() -> None:
    data = many_parts(20_000)
    parsed = parse(data, Limits(max_parts=200))
    assert parsed.capped == "parts" and parsed.parts == 200
    assert sum(1 for _ in parsed.walk()) == 200  # what every check walks
    assert all(part.get_payload() is not None for part in parsed.walk())


def test_two_hundred_levels_are_read_down_to_the_cap() -> None:
    parsed = parse(nested(200), Limits(max_depth=12))
    assert parsed.capped == "depth"
    assert depth_of(parsed.root) == 12 and parsed.parts == 12


def test_decoded_text_is_capped_over_all_parts() -> None:
    parsed = parse(many_parts(50, b"y" * 1000), Limits(max_text=10_500))
    texts = [parsed.decoded(p) or b"" for p in parsed.walk() if not p.is_multipart()]
    assert sum(map(len, texts)) == 10_500  # ten parts and a half, then nothing
    assert [len(t) for t in texts[9:12]] == [1000, 500, 0]


@pytest.mark.parametrize(("data", "finding"), [(many_parts(20_000), TOO_MANY_PARTS),
                                               (nested(200), TOO_DEEP)])
async def test_a_message_past_a_cap_gets_a_scored_finding_and_a_verdict(
        data: bytes, finding: str, caplog: pytest.LogCaptureFixture) -> None:
    pipeline = FilterPipeline([RulesCheck(), ContentCheck()], limits=Limits(max_parts=500))
    verdict = await pipeline.run(message(data))
    found = {f.check: f for f in verdict.findings}
    assert found[finding].score > 0 and "content" in found
    assert TIMEOUT not in found and "failed" not in caplog.text
    assert verdict.score == sum(f.score for f in verdict.findings)
    assert verdict.parsed is not None and verdict.parsed.parts <= 500
    # the one parse is the one every check read: the features are kept with it
    assert "features" in verdict.parsed.memo


async def test_an_ordinary_message_gets_no_cap_finding() -> None:
    verdict = await FilterPipeline([RulesCheck(), ContentCheck()]).run(message(many_parts(3)))
    assert {f.check for f in verdict.findings} == {"content"}
    assert verdict.action is Action.ACCEPT


class Noted:
    """An async (network) check: it still speaks when the budget is spent."""

    name = "noted"

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        return [Finding(self.name, 1.0, "still heard")]


class Stuck:
    """A CPU check that does not finish until the test lets it."""

    name = "stuck"

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def blocking(self, message: FilterInput) -> Sequence[Finding]:
        self.entered.set()
        released = self.release.wait(30)
        return [Finding(self.name, 50.0, "released" if released else "gave up")]

    async def __call__(self, message: FilterInput) -> Sequence[Finding]:
        raise AssertionError("the pipeline calls blocking() for a CPU check")


async def test_a_check_past_the_budget_gives_a_neutral_finding(
        caplog: pytest.LogCaptureFixture) -> None:
    stuck = Stuck()
    try:
        verdict = await FilterPipeline([stuck, Noted(), RulesCheck()], time_budget=0.2).run(
            message(many_parts(3)))
    finally:
        stuck.release.set()
    found = {f.check: f for f in verdict.findings}
    assert found[TIMEOUT].score == 0 and "stuck" in found[TIMEOUT].reason
    assert "rules" in found[TIMEOUT].reason  # later CPU checks are skipped, not run late
    assert found["noted"].score == 1.0 and "stuck" not in found
    assert verdict.action is Action.ACCEPT and verdict.score == 1.0
    assert "time budget" in caplog.text and caplog.records[-1].levelname == "WARNING"


async def test_a_spent_budget_skips_the_parse_and_still_gives_a_verdict() -> None:
    pipeline = FilterPipeline([Noted(), RulesCheck(), ContentCheck()], time_budget=0.0)
    verdict = await pipeline.run(message(many_parts(20_000)))
    found = {f.check: f for f in verdict.findings}
    assert found[TIMEOUT].score == 0
    assert "parsing" in found[TIMEOUT].reason and "content" in found[TIMEOUT].reason
    assert set(found) == {"noted", TIMEOUT} and verdict.score == 1.0


async def test_cpu_checks_run_off_the_event_loop_while_it_serves_others() -> None:
    """The loop itself releases the CPU check: possible only if the check is not on it."""
    stuck = Stuck()

    async def other_session() -> None:
        assert await asyncio.to_thread(stuck.entered.wait, 30)
        stuck.release.set()

    other = asyncio.create_task(other_session())
    verdict = await FilterPipeline([stuck], time_budget=60).run(message(many_parts(3)))
    await other
    assert [(f.check, f.reason) for f in verdict.findings] == [("stuck", "released")]
