"""The combiner: calibrated points from the checks' raw findings, contributions that add
up to the score, findings it was not trained on passing through, deterministic training."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from itertools import pairwise

import pytest

from mailward.config import Settings
from mailward.filter import Action, FilterInput, FilterPipeline, Finding, filter_pipeline
from mailward.filter.combine import (
    BASE,
    CONTENT,
    POINTS_AT_EVEN,
    POINTS_PER_LOGIT,
    Combiner,
    key_of,
    logit_at,
    points_of,
    probability_at,
    shipped,
    train,
)
from mailward.filter.content import ContentCheck, score_of
from mailward.filter.features import Features
from mailward.filter.model import ContentModel, LogisticModel

COMBINER = Combiner(-1.5, {CONTENT: 0.8, "rule:missing-date@1": 0.6, "ptr-missing@1": 0.0,
                           "spf@-0.5": -0.4, "spf@3": 1.7})
MESSAGE = FilterInput(sender="a@b.example", recipients=("c@d.example",), data=b"x",
                      peer="192.0.2.1", helo="b.example")


def test_points_are_an_increasing_affine_map_of_the_log_odds() -> None:
    logits = [-30.0, -4.0, -0.5, 0.0, 0.5, 4.0, 30.0]
    points = [points_of(x) for x in logits]
    assert points == sorted(points) and len(set(points)) == len(points)
    steps = [b - a for a, b in pairwise(points)]
    assert steps == pytest.approx([POINTS_PER_LOGIT * (b - a)
                                   for a, b in pairwise(logits)])
    assert points_of(0.0) == POINTS_AT_EVEN
    for x in logits:
        assert logit_at(points_of(x)) == pytest.approx(x)
    # the default thresholds mean rising probabilities, tag at least "more likely spam"
    tag, quarantine, reject = probability_at(5), probability_at(10), probability_at(15)
    assert 0.5 <= tag < quarantine < reject < 1.0
    assert quarantine >= 0.99 and reject >= 0.9999


def test_contributions_add_up_to_the_points_of_the_combined_log_odds() -> None:
    raw = [Finding(CONTENT, 2.5, "content model: 0.92 spam"),
           Finding("rule:missing-date", 1.0, "no Date header"),
           Finding("ptr-missing", 1.0, "no reverse DNS"), Finding("spf", 3.0, "SPF fail")]
    combined = COMBINER(raw)
    logit = -1.5 + 0.8 * 2.5 + 0.6 + 0.0 + 1.7
    assert COMBINER.logit(raw) == pytest.approx(logit)
    assert sum(f.score for f in combined) == pytest.approx(points_of(logit), abs=0.02)
    got = {f.check: f.score for f in combined}
    assert got == {CONTENT: round(points_of(-1.5) + POINTS_PER_LOGIT * 0.8 * 2.5, 2),
                   "rule:missing-date": round(POINTS_PER_LOGIT * 0.6, 2),
                   "ptr-missing": 0.0, "spf": round(POINTS_PER_LOGIT * 1.7, 2)}
    assert [f.reason for f in combined] == [f.reason for f in raw]  # reasons kept
    # SPF pass and SPF fail are different features with their own weights
    assert key_of(Finding("spf", -0.5, "")) == "spf@-0.5" != key_of(raw[3])
    assert COMBINER([Finding("spf", -0.5, "pass")])[1].score == round(
        POINTS_PER_LOGIT * -0.4, 2)


def test_more_spam_like_content_never_scores_less() -> None:
    scores = [sum(f.score for f in COMBINER([Finding(CONTENT, x, "")]))
              for x in (-20.0, -3.0, 0.0, 0.1, 3.0, 20.0)]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)


def test_findings_it_was_not_trained_on_keep_their_raw_points() -> None:
    raw = [Finding(CONTENT, -1.0, "content"), Finding("phishing", 4.5, "lookalike"),
           Finding("rule:gtube", 1000.0, "GTUBE"), Finding("spf", 1.0, "softfail"),
           Finding("bulk", 0.0, "List-Unsubscribe")]
    combined = COMBINER(raw)
    assert combined[1:] == raw[1:]  # untouched, in order
    assert sum(f.score for f in combined) == pytest.approx(
        points_of(-1.5 - 0.8) + 4.5 + 1000.0 + 1.0, abs=0.01)


def test_without_a_content_finding_a_base_finding_carries_the_bias() -> None:
    combined = COMBINER([Finding("rule:missing-date", 1.0, "no Date")])
    assert combined[0] == Finding(BASE, round(points_of(-1.5), 2),
                                  "the combiner's base points (no content score)")
    assert sum(f.score for f in combined) == pytest.approx(points_of(-1.5 + 0.6), abs=0.01)


async def test_the_pipeline_scores_the_sum_of_the_contributions_and_lists_them() -> None:
    class Raw:
        name = "raw"

        async def __call__(self, message: FilterInput) -> Sequence[Finding]:
            return [Finding(CONTENT, 9.0, "content model"), Finding("spf", 3.0, "SPF fail")]

    verdict = await FilterPipeline([Raw()], combiner=COMBINER).run(MESSAGE)
    expected = points_of(-1.5 + 0.8 * 9.0 + 1.7)  # 11.75 at 1.25 points per logit
    assert verdict.score == pytest.approx(expected, abs=0.01)
    assert verdict.score == round(sum(f.score for f in verdict.findings), 2)
    assert verdict.action is Action.QUARANTINE
    assert verdict.header().startswith(f"quarantine; score={verdict.score:g}; tests=content=")
    raw = await FilterPipeline([Raw()]).run(MESSAGE)  # no combiner: the raw points
    assert raw.score == 12.0


def test_the_shipped_combiner_is_what_filter_pipeline_uses() -> None:
    combiner = shipped()
    assert filter_pipeline(Settings(spam_filter=True)).combiner is combiner
    assert filter_pipeline(Settings(spam_filter=False)).combiner is None
    assert combiner.content_weight > 0  # more spam-like content, more points
    assert combiner.training["corpus"] == "train.tar.gz"
    # the replay's constant findings got (almost) no weight by training
    for key in ("ptr-missing@1", "rule:date-long-ago@1"):
        assert abs(combiner.weights.get(key, 0.0)) < 0.05
    # a save/load round trip reproduces it
    assert Combiner.from_json(json.loads(combiner.dumps())) == combiner
    # content.score_of is the content finding's points alone under it
    assert score_of(0.5) == pytest.approx(points_of(combiner.bias))
    assert score_of(0.9) - score_of(0.1) == pytest.approx(
        POINTS_PER_LOGIT * combiner.content_weight * 2 * math.log(9))


class Fixed(LogisticModel):
    """A content model that answers one probability, whatever the message."""

    def __init__(self, probability: float) -> None:
        super().__init__()
        self.probability = probability

    def predict(self, features: Features) -> float:
        return self.probability


@pytest.mark.parametrize("probability", [1e-9, 0.1, 0.5, 0.9, 1 - 1e-9])
async def test_the_content_finding_is_the_unclipped_log_odds(probability: float) -> None:
    [finding] = await ContentCheck(ContentModel(Fixed(probability)))(MESSAGE)
    assert finding.check == CONTENT
    assert finding.score == pytest.approx(math.log(probability / (1 - probability)), abs=2e-3)
    assert finding.reason.startswith(f"content model: {probability:.2f} spam")


def _synthetic(seed: int = 7) -> tuple[list[tuple[list[Finding], bool]], list[int]]:
    """300 messages: content log-odds that separate noisily, a rule firing mostly on spam,
    one every message gets, and a rare one (fewer messages than the minimum support)."""
    rng = random.Random(seed)
    examples = []
    for i in range(300):
        spam = i % 3 == 0
        found = [Finding(CONTENT, rng.gauss(1.5 if spam else -1.5, 2.0), ""),
                 Finding("ptr-missing", 1.0, "")]
        if rng.random() < (0.5 if spam else 0.05):
            found.append(Finding("rule:missing-date", 1.0, ""))
        if i in (3, 6):
            found.append(Finding("rule:rare", 2.0, ""))
        if rng.random() < 0.3:
            found.append(Finding("bulk", 0.0, ""))  # informational: not weighed
        examples.append((found, spam))
    return examples, [i % 5 for i in range(300)]


def test_training_is_deterministic_and_gives_constant_findings_no_weight() -> None:
    examples, folds = _synthetic()
    first = train(examples, folds)
    again = train(examples, folds)
    assert first.dumps() == again.dumps()  # byte for byte
    assert abs(first.weights["ptr-missing@1"]) < 1e-6  # every message has it: the bias's
    assert first.weights["rule:missing-date@1"] > 0.5  # fires mostly on spam
    assert 0.3 < first.weights[CONTENT] < 3.0
    assert "rule:rare@2" not in first.weights and "rule:rare@2" in first.training["left_out"]
    assert not any(k.startswith("bulk") for k in first.weights)
    losses = first.training["cv_log_loss"]  # the penalty with the least held-out loss
    assert losses[f"{first.training['l2']:g}"] == min(losses.values())
    # the rare finding passes through with its raw points
    combined = first([Finding(CONTENT, 0.0, ""), Finding("rule:rare", 2.0, "")])
    assert combined[1] == Finding("rule:rare", 2.0, "")
    # calibrated: the mean predicted probability is the share of spam (a third)
    mean = sum(1 / (1 + math.exp(-first.logit(f))) for f, _ in examples) / len(examples)
    assert mean == pytest.approx(1 / 3, abs=0.01)
