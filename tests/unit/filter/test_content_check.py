"""The content check: the model's log-odds become a finding with a reason; the combiner
turns it into points."""

from __future__ import annotations

import math

import pytest

from mailward.filter import Action, FilterInput, FilterPipeline
from mailward.filter.combine import probability_at, shipped
from mailward.filter.content import ContentCheck, score_of
from mailward.filter.features import Features
from mailward.filter.model import ContentModel, LogisticModel

HAM = (b"From: Anna <anna@example.com>\nTo: team@example.com\nSubject: Meeting notes\n"
       b"Date: Tue, 4 Mar 2025 16:05:00 +0100\nMessage-ID: <1@example.com>\n\n"
       b"Hi all, thanks for joining the planning meeting today. We agreed to move the "
       b"release to Thursday; I will send the revised schedule tomorrow.\nAnna\n")
SPAM = (b"From: Winner <win@promo.example>\nTo: you@example.com\n"
        b"Subject: CLICK HERE to claim your FREE prize!!!\nContent-Type: text/html\n\n"
        b"<p>CONGRATULATIONS! You won a FREE prize. Cheap viagra, act now! "
        b'<a href="http://198.51.100.7/win">CLICK HERE</a> to claim your $1000 cash.</p>\n')


def message(data: bytes) -> FilterInput:
    return FilterInput(sender="s@example.net", recipients=("r@example.com",), data=data,
                       peer="192.0.2.1", helo="example.net")


class Fixed(LogisticModel):
    """A model that answers one probability, whatever the message."""

    def __init__(self, probability: float) -> None:
        super().__init__()
        self.probability = probability

    def predict(self, features: Features) -> float:
        return self.probability


def test_points_rise_with_the_probability_unclipped() -> None:
    probabilities = [1e-12, 0.01, 0.2, 0.5, 0.7, 0.9, 0.99, 0.999, 0.9999, 1 - 1e-12]
    scores = [score_of(p) for p in probabilities]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)  # nothing clipped
    assert scores[0] < -10 and scores[-1] > 25
    # content alone reaches the thresholds where the combiner's probabilities say
    for points in (5.0, 10.0, 15.0):
        logit = math.log(probability_at(points) / (1 - probability_at(points)))
        content_logit = (logit - shipped().bias) / shipped().content_weight
        assert score_of(1 / (1 + math.exp(-content_logit))) == pytest.approx(points)


@pytest.mark.parametrize(("probability", "sign"), [(0.001, -1), (0.3, -1), (0.5, 0),
                                                   (0.8, 1), (0.99999, 1)])
async def test_finding_score_sign_follows_the_probability(probability: float,
                                                           sign: int) -> None:
    check = ContentCheck(ContentModel(Fixed(probability)))
    [finding] = await check(message(HAM))
    assert finding.check == "content" == check.name
    assert (finding.score > 0) - (finding.score < 0) == sign
    assert finding.score == pytest.approx(math.log(probability / (1 - probability)), abs=1e-3)
    assert finding.reason.startswith(f"content model: {probability:.2f} spam (log-odds ")


async def test_base_model_quarantines_obvious_spam_and_lets_business_mail_through() -> None:
    check = ContentCheck()
    [spam] = await check(message(SPAM))
    [ham] = await check(message(HAM))
    assert score_of(1 / (1 + math.exp(-spam.score))) >= 10 and ham.score < 0
    pipeline = FilterPipeline([check], combiner=shipped())
    assert (await pipeline.run(message(SPAM))).action is Action.QUARANTINE
    assert (await pipeline.run(message(HAM))).action is Action.ACCEPT


async def test_big_messages_are_scored_off_the_event_loop_the_same_way() -> None:
    check = ContentCheck()
    padding = b"\n" + b"Regards from the planning team.\n" * (256 * 1024 // 32 + 10)
    [small] = await check(message(HAM))
    [big] = await check(message(HAM + padding))
    assert len(HAM + padding) > 256 * 1024
    assert math.copysign(1, big.score) == math.copysign(1, small.score) == -1
