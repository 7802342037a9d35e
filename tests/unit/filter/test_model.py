"""The content model: online logistic regression, exact save/load, the shipped base model."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from mailward.filter.features import BIAS, bucket
from mailward.filter.model import BASE_MODEL, ContentModel, LogisticModel, Params

SPAM = (
    b"From: Prize Center <winner@promo-deals.example>\nTo: you@example.com\n"
    b"Subject: CLICK HERE to claim your FREE prize!!!\nMIME-Version: 1.0\n"
    b"Content-Type: text/html\n\n<html><body><p>CONGRATULATIONS! You have been selected "
    b"to receive a FREE prize. Cheap viagra, no prescription needed. Limited time offer, "
    b'act now! <a href="http://198.51.100.7/win">CLICK HERE</a> to claim your $1000 cash. '
    b"To be removed from our mailing list reply REMOVE.</p></body></html>\n"
)
HAM = (
    b"From: Anna Schmidt <anna.schmidt@example.com>\nTo: team@example.com\n"
    b"Subject: Notes from Tuesday's planning meeting\n"
    b"Date: Tue, 4 Mar 2025 16:05:00 +0100\nMessage-ID: <20250304160500.1@example.com>\n"
    b"Content-Type: text/plain; charset=utf-8\n\nHi all,\n\nthanks for joining the planning "
    b"meeting today. Summary: we agreed to move the release to next Thursday, Jonas will "
    b"update the test plan, and I will send the revised schedule to the customer tomorrow. "
    b"Please review the attached draft before our call on Friday and add your comments.\n\n"
    b"Best regards,\nAnna\n"
)


def toy_examples() -> list[tuple[dict[int, float], bool]]:
    """Linearly separable: spam has "cash"/"prize", ham "meeting"/"report"; shared filler."""
    rng = random.Random(3)
    out = []
    for i in range(200):
        is_spam = i % 2 == 0
        words = ("cash", "prize") if is_spam else ("meeting", "report")
        names = [rng.choice(words), f"filler{rng.randrange(20)}"]
        out.append(({BIAS: 1.0, **{bucket(n): 1.0 for n in names}}, is_spam))
    return out


def test_learns_a_separable_set_online() -> None:
    model = LogisticModel(Params(alpha=0.5, l1=0.0, l2=0.0))
    examples = toy_examples()
    assert model.predict(examples[0][0]) == 0.5  # knows nothing yet
    for features, is_spam in examples:
        model.learn(features, is_spam)
    assert all((model.predict(f) > 0.5) == s for f, s in examples)
    assert model.predict({bucket("cash"): 1.0}) > 0.8
    assert model.predict({bucket("meeting"): 1.0}) < 0.2
    assert model.weights[bucket("prize")] > 0 > model.weights[bucket("report")]


def test_corrections_move_the_prediction() -> None:
    model = LogisticModel()
    features = {BIAS: 1.0, bucket("b:newsletter"): 1.0}
    before = model.predict(features)
    assert model.learn(features, is_spam=True) == before  # returns the prior prediction
    for _ in range(3):  # L1: a new feature needs a few sightings before it gets a weight
        model.learn(features, is_spam=True)
    after = model.predict(features)
    assert after > before
    model.learn(features, is_spam=False)
    assert model.predict(features) < after


def test_l1_keeps_rare_features_out_of_the_model() -> None:
    model = LogisticModel(Params(l1=5.0))
    model.learn({bucket("once"): 1.0}, is_spam=True)
    assert model.weights == {}


def test_save_load_round_trips_exactly(tmp_path: Path) -> None:
    model = LogisticModel(Params(alpha=0.2, beta=1.0, l1=0.1, l2=0.5))
    examples = toy_examples()
    for features, is_spam in examples:
        model.learn(features, is_spam)
    path = tmp_path / "m.json.gz"
    model.save(path)
    loaded = LogisticModel.load(path)
    assert loaded.params == model.params and loaded.weights == model.weights
    assert [loaded.predict(f) for f, _ in examples] == [model.predict(f) for f, _ in examples]
    loaded.save(tmp_path / "again.json.gz")
    assert (tmp_path / "again.json.gz").read_bytes() == path.read_bytes()  # deterministic
    data = json.loads(gzip.decompress(path.read_bytes()))
    assert data["format"] == "mailward-content-model" and data["version"] == 1
    assert data["params"] == {"alpha": 0.2, "beta": 1.0, "l1": 0.1, "l2": 0.5}
    assert len(data["weights"]) == len(model.weights)
    # the loaded model keeps learning like the original (on buckets with a weight)
    features = {i: 1.0 for i in sorted(model.weights)[:3]}
    for m in (model, loaded):
        m.learn(features, is_spam=True)
    assert loaded.predict(features) == pytest.approx(model.predict(features), rel=1e-9)


def test_compact_prunes_and_rounds() -> None:
    model = LogisticModel(Params(l1=0.0))
    for features, is_spam in toy_examples():
        model.learn(features, is_spam)
    big = max(abs(w) for w in model.weights.values())
    model.compact(min_weight=big / 2, digits=3)
    assert model.weights and all(abs(w) >= big / 2 for w in model.weights.values())
    assert all(w == float(f"{w:.3g}") for w in model.weights.values())


def test_average_scores_as_the_mean_of_the_models_log_odds() -> None:
    examples = toy_examples()
    models = []
    for seed in range(3):
        model = LogisticModel(Params(l1=0.1))
        order = list(range(len(examples)))
        random.Random(seed).shuffle(order)
        for i in order:
            model.learn(*examples[i])
        models.append(model)
    mean = LogisticModel.average(models)
    assert mean.params == models[0].params
    assert set(mean.weights) == set().union(*(m.weights for m in models))
    for features, _ in examples[:20]:
        assert mean.margin(features) == pytest.approx(
            sum(m.margin(features) for m in models) / 3, rel=1e-9)
    # it keeps learning like any model: its learning state matches its weights
    features, _ = examples[0]
    before = mean.predict(features)
    mean.learn(features, is_spam=False)
    assert mean.predict(features) < before
    with pytest.raises(ValueError):
        LogisticModel.average([])


def test_load_rejects_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "bad.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"format": "other", "version": 1}).encode()))
    with pytest.raises(ValueError, match="not a"):
        LogisticModel.load(path)


def test_shipped_base_model_is_small_and_separates_spam_from_ham() -> None:
    path = Path(__file__).parents[3] / "src/mailward/filter" / BASE_MODEL
    assert path.stat().st_size < 1_000_000
    content = ContentModel.base()
    spam, ham = content.probability(SPAM), content.probability(HAM)
    # The corpus' ham is mostly technical mailing lists, so business wording ("our", "we
    # will", "please") leans a little spammy; the meeting note still stays below even odds.
    assert spam > 0.999 and ham < 0.5


def test_content_model_learns_from_corrections() -> None:
    content = ContentModel(LogisticModel())
    assert content.probability(SPAM) == 0.5
    for _ in range(3):
        content.learn(SPAM, is_spam=True)
        content.learn(HAM, is_spam=False)
    assert content.probability(SPAM) > 0.5 > content.probability(HAM)
