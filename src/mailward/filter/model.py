"""The content model: online logistic regression (FTRL-proximal) over hashed features.

FTRL-proximal (McMahan et al., 2013) keeps per bucket ``z`` (the accumulated, adjusted
gradient) and ``n`` (the sum of squared gradients, an AdaGrad rate); the weight follows in
closed form and is exactly zero while ``|z| <= l1``, which keeps the saved model small.
``learn`` is one online step, so the shipped base model can keep learning from users'
corrections. The saved form is gzip'd JSON of the non-zero weights (with their ``n``) keyed
by bucket, plus the hyper-parameters and a format version; it is byte-for-byte
deterministic and a save/load round trip reproduces every prediction exactly.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import asdict, dataclass
from importlib import resources
from itertools import repeat
from operator import mul
from pathlib import Path

from mailward.filter.features import BITS, Features, extract, features_of
from mailward.filter.parsed import ParsedMessage

FORMAT = "mailward-content-model"
VERSION = 1
BASE_MODEL = "base_model.json.gz"
_MAX_MARGIN = 35.0  # exp() stays finite; probabilities saturate long before


@dataclass(frozen=True, slots=True)
class Params:
    """FTRL-proximal hyper-parameters: learning rate alpha/(beta+sqrt(n)), L1 and L2."""

    alpha: float = 0.3
    beta: float = 1.0
    l1: float = 1.0
    l2: float = 0.1


def sigmoid(margin: float) -> float:
    margin = max(-_MAX_MARGIN, min(_MAX_MARGIN, margin))
    return 1.0 / (1.0 + math.exp(-margin))


class LogisticModel:
    """Sparse online logistic regression; ``predict`` gives the probability of spam."""

    def __init__(self, params: Params | None = None, bits: int = BITS) -> None:
        self.params = params or Params()
        self.bits = bits
        self.weights: dict[int, float] = {}  # non-zero weights only
        self._z: dict[int, float] = {}
        self._n: dict[int, float] = {}

    def margin(self, features: Features) -> float:
        """The log-odds of spam."""
        # (the products in the features' order, summed as the generator of old did: the
        # same float, without a Python frame per feature)
        return sum(map(mul, map(self.weights.get, features, repeat(0.0)), features.values()))

    def predict(self, features: Features) -> float:
        """Probability that the message with these features is spam."""
        return sigmoid(self.margin(features))

    def learn(self, features: Features, is_spam: bool, weight: float = 1.0,
              offset: float = 0.0) -> float:
        """One online step on one labelled example; returns the prediction before it.

        ``offset`` is log-odds another model already gives the example: this model then
        learns only what that one gets wrong (a domain's refinement of the base model).
        """
        p = sigmoid(self.margin(features) + offset)
        g = (p - (1.0 if is_spam else 0.0)) * weight
        alpha, beta, l1, l2 = self.params.alpha, self.params.beta, self.params.l1, self.params.l2
        z, n, w = self._z, self._n, self.weights
        for i, v in features.items():
            gi = g * v
            ni = n.get(i, 0.0)
            n_new = ni + gi * gi
            sigma = (math.sqrt(n_new) - math.sqrt(ni)) / alpha
            zi = z.get(i, 0.0) + gi - sigma * w.get(i, 0.0)
            z[i], n[i] = zi, n_new
            if abs(zi) <= l1:
                w.pop(i, None)
            else:
                w[i] = -(zi - math.copysign(l1, zi)) / ((beta + math.sqrt(n_new)) / alpha + l2)
        return p

    @classmethod
    def average(cls, models: list[LogisticModel]) -> LogisticModel:
        """One model whose weights (and AdaGrad sums) are the mean of ``models``' (a weight
        a model lacks counts as zero): for a linear model, the same scores as averaging
        the models' log-odds, at the cost of one. Averaging runs over several shuffled
        orders cancels much of FTRL's dependence on the order it saw the examples in."""
        if not models:
            raise ValueError("nothing to average")
        out = cls(models[0].params, models[0].bits)
        share = 1.0 / len(models)
        for model in models:
            for i, wi in model.weights.items():
                out.weights[i] = out.weights.get(i, 0.0) + wi * share
                out._n[i] = out._n.get(i, 0.0) + model._n.get(i, 0.0) * share
        out._z = {i: out._z_of(wi, out._n[i]) for i, wi in out.weights.items()}
        return out

    def compact(self, min_weight: float = 0.0, digits: int = 0) -> None:
        """Drop weights below ``min_weight`` and round to ``digits`` significant digits.

        Shrinks the saved model; learning state of dropped buckets starts afresh.
        """
        kept: dict[int, float] = {}
        for i, wi in self.weights.items():
            if abs(wi) < min_weight:
                continue
            kept[i] = float(f"{wi:.{digits}g}") if digits else wi
        self.weights = kept
        self._n = {
            i: float(f"{self._n.get(i, 0.0):.{digits}g}") if digits else self._n.get(i, 0.0)
            for i in kept
        }
        self._z = {i: self._z_of(kept[i], self._n[i]) for i in kept}

    def _z_of(self, wi: float, ni: float) -> float:
        """The ``z`` that gives weight ``wi`` at ``n = ni`` (inverse of the closed form)."""
        p = self.params
        return -wi * ((p.beta + math.sqrt(ni)) / p.alpha + p.l2) - math.copysign(p.l1, wi)

    def to_json(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "bits": self.bits,
            "params": asdict(self.params),
            "weights": {str(i): [self.weights[i], self._n.get(i, 0.0)]
                        for i in sorted(self.weights)},
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LogisticModel:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} v{VERSION} file")
        if data.get("bits") != BITS:
            raise ValueError(f"model hashes into 2**{data.get('bits')} buckets, not 2**{BITS}")
        params, weights = data.get("params"), data.get("weights")
        if not isinstance(params, dict) or not isinstance(weights, dict):
            raise ValueError("model file lacks params or weights")
        model = cls(Params(**params), BITS)
        for key, (wi, ni) in weights.items():
            i = int(key)
            model.weights[i], model._n[i] = float(wi), float(ni)
            model._z[i] = model._z_of(float(wi), float(ni))
        return model

    def to_bytes(self) -> bytes:
        """Gzip'd JSON, deterministic (sorted buckets, no gzip timestamp)."""
        text = json.dumps(self.to_json(), separators=(",", ":"))
        return gzip.compress(text.encode(), compresslevel=9, mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> LogisticModel:
        return cls.from_json(json.loads(gzip.decompress(data)))

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> LogisticModel:
        return cls.from_bytes(Path(path).read_bytes())


class ContentModel:
    """Raw message bytes -> probability of spam, with online refinement."""

    def __init__(self, model: LogisticModel) -> None:
        self.model = model

    @classmethod
    def base(cls) -> ContentModel:
        """The model shipped with the package (trained by scripts/train-content-model)."""
        ref = resources.files("mailward.filter").joinpath(BASE_MODEL)
        with resources.as_file(ref) as path:
            return cls(LogisticModel.load(path))

    def probability(self, data: bytes) -> float:
        return self.model.predict(extract(data))

    def probability_of(self, parsed: ParsedMessage) -> float:
        """``probability`` of an already parsed message (its features are kept with it)."""
        return self.model.predict(features_of(parsed))

    def learn(self, data: bytes, is_spam: bool) -> None:
        """Learn from one corrected message (e.g. a user's "this is spam")."""
        self.model.learn(extract(data), is_spam)
