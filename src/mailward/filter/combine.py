"""The combiner: one calibrated logistic model over the checks' findings, and points.

The checks report raw findings (the content model its unclipped log-odds of spam, the
others their own points). The combiner gives a message one log-odds of spam,

    logit = bias + weight[content] · content log-odds + Σ weight[key of each finding]

where a finding's key is its name and raw points (``key_of``: ``rule:missing-date@1``,
``spf@-0.5``), so a check whose findings differ in points (SPF pass and fail) gets a weight
for each. The bias and weights are fitted by ``scripts/train-combiner`` (``train``:
logistic regression on the offline replay of train.tar.gz, the content log-odds
cross-fitted there, the L2 penalty chosen by cross-validation; saved as
``combiner.json``). Its points are an affine, increasing map:

    points = points_of(logit) = POINTS_AT_EVEN + POINTS_PER_LOGIT · logit

so the thresholds (tag 5, quarantine 10, reject 15) are log-odds (probabilities, for the
training mix of ham and spam): see ``probability_at``. Each finding shows its share:
a trained finding ``POINTS_PER_LOGIT · weight``, the content finding
``POINTS_PER_LOGIT · weight · log-odds`` plus
``points_of(bias)`` (the points of a message with no other finding; a ``base`` finding
carries them when there is no content finding). Findings the combiner was not trained
on (a check added since, the caps, GTUBE, blocklist zones the replay cannot list) keep
their raw score as points. The contributions add up to the score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from mailward.filter.pipeline import Finding

__all__ = ["BASE", "CONTENT", "L2_GRID", "POINTS_AT_EVEN", "POINTS_PER_LOGIT", "TAG_ODDS",
           "Combiner", "features_of", "fit", "key_of", "logit_at", "points_of",
           "probability_at", "shipped", "train"]

FORMAT = "mailward-combiner"
VERSION = 1
COMBINER_FILE = "combiner.json"
CONTENT = "content"  # the content check's finding: its raw score is the model's log-odds
BASE = "base"  # the bias's points, as a finding of their own when content is missing
# points = POINTS_AT_EVEN + POINTS_PER_LOGIT * logit: one point per unit of log-odds (each
# point multiplies the odds of spam by e), and the default tag threshold (5 points) at odds
# of 9 to 1 (p = 0.9), the cost of a lost ham against a missed spam the content model is
# trained with (ham weighs 6 to 12 times a spam); then quarantine (10) is at p = 0.99925 and
# reject (15) at p = 0.999995 (see the README's table)
TAG_ODDS = 9.0
POINTS_PER_LOGIT = 1.0
POINTS_AT_EVEN = 5.0 - POINTS_PER_LOGIT * math.log(TAG_ODDS)  # 2.80
_MAX_LOGIT = 35.0


def points_of(logit: float) -> float:
    """Points of a message whose combined log-odds of spam is ``logit`` (increasing)."""
    return POINTS_AT_EVEN + POINTS_PER_LOGIT * logit


def logit_at(points: float) -> float:
    """The combined log-odds at which a message scores ``points`` (inverse of points_of)."""
    return (points - POINTS_AT_EVEN) / POINTS_PER_LOGIT


def probability_at(points: float) -> float:
    """The spam probability (for the training mix) at which a message scores ``points``."""
    logit = max(-_MAX_LOGIT, min(_MAX_LOGIT, logit_at(points)))
    return 1.0 / (1.0 + math.exp(-logit))


def key_of(finding: Finding) -> str:
    """The combiner's feature of a finding: the content log-odds' own, else name@points."""
    return CONTENT if finding.check == CONTENT else f"{finding.check}@{finding.score:g}"


def value_of(finding: Finding) -> float:
    """What the feature's weight multiplies: the content log-odds, else 1 (it fired)."""
    return finding.score if finding.check == CONTENT else 1.0


def features_of(findings: Iterable[Finding]) -> dict[str, float]:
    """The combiner's features of a message's raw findings (``key_of`` → summed value)."""
    out: dict[str, float] = {}
    for finding in findings:
        key = key_of(finding)
        out[key] = out.get(key, 0.0) + value_of(finding)
    return out


@dataclass(frozen=True, slots=True)
class Combiner:
    """The fitted logistic layer (``bias``, a weight per feature ``key_of``); callable as
    the pipeline's ``combiner``."""

    bias: float
    weights: Mapping[str, float]
    training: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def content_weight(self) -> float:
        """Combined log-odds per unit of the content model's log-odds."""
        return self.weights.get(CONTENT, 1.0)

    def logit(self, findings: Iterable[Finding]) -> float:
        """The combined log-odds of the trained findings (the others are left out)."""
        weights = self.weights
        return self.bias + sum(weights[key] * value for key, value in
                               features_of(findings).items() if key in weights)

    def __call__(self, findings: Sequence[Finding]) -> list[Finding]:
        """Each finding with its contribution in points (they add up to the score)."""
        weights = self.weights
        out = []
        based = False
        for finding in findings:
            weight = weights.get(key_of(finding))
            if weight is None:  # not trained on: its raw points
                out.append(finding)
                continue
            points = POINTS_PER_LOGIT * weight * value_of(finding)
            if finding.check == CONTENT and not based:
                points += points_of(self.bias)
                based = True
            out.append(Finding(finding.check, round(points, 2), finding.reason))
        if not based:
            out.insert(0, Finding(BASE, round(points_of(self.bias), 2),
                                  "the combiner's base points (no content score)"))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION,
                "mapping": {"points_per_logit": POINTS_PER_LOGIT,
                            "points_at_even": _round(POINTS_AT_EVEN)},
                "bias": self.bias, "weights": dict(sorted(self.weights.items())),
                "training": dict(self.training)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Combiner:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} v{VERSION} file")
        weights = data.get("weights")
        if not isinstance(weights, dict):
            raise ValueError("combiner file lacks weights")
        return cls(float(data["bias"]), {str(k): float(v) for k, v in weights.items()},
                   dict(data.get("training") or {}))

    def dumps(self) -> str:
        """Deterministic JSON text (sorted names, fixed layout)."""
        return json.dumps(self.to_json(), indent=1, sort_keys=False) + "\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps())

    @classmethod
    def load(cls, path: str | Path) -> Combiner:
        return cls.from_json(json.loads(Path(path).read_text()))


# -- training (scripts/train-combiner) ---------------------------------------------------------


def _sigmoid(z: float) -> float:
    z = max(-_MAX_LOGIT, min(_MAX_LOGIT, z))
    return 1.0 / (1.0 + math.exp(-z))


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """``a x = b`` by Gaussian elimination with partial pivoting (``a`` small, positive
    definite)."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(col + 1, n):
            f = m[r][col] / m[col][col]
            if f:
                for c in range(col, n + 1):
                    m[r][c] -= f * m[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][c] * x[c] for c in range(r + 1, n))) / m[r][r]
    return x


def fit(rows: Sequence[Sequence[float]], labels: Sequence[bool], l2: float,
        iterations: int = 50) -> list[float]:
    """Penalised logistic regression by Newton's method: ``[bias, w1, ...]`` minimising the
    log-loss summed over ``rows`` plus ``l2/2 · |w|²`` (the bias unpenalised, so a feature
    every row has alike ends at weight 0)."""
    d = len(rows[0]) + 1 if rows else 1
    beta = [0.0] * d
    xs = [[1.0, *row] for row in rows]
    for _ in range(iterations):
        grad = [0.0] * d
        hess = [[0.0] * d for _ in range(d)]
        for x, y in zip(xs, labels, strict=True):
            p = _sigmoid(sum(b * v for b, v in zip(beta, x, strict=True)))
            r, s = p - (1.0 if y else 0.0), p * (1.0 - p)
            nonzero = [i for i in range(d) if x[i]]
            for i in nonzero:
                grad[i] += r * x[i]
                si, row = s * x[i], hess[i]
                for j in nonzero:
                    row[j] += si * x[j]
        for i in range(1, d):
            grad[i] += l2 * beta[i]
            hess[i][i] += l2
        hess[0][0] += 1e-9
        step = _solve(hess, grad)
        beta = [b - st for b, st in zip(beta, step, strict=True)]
        if max(abs(st) for st in step) < 1e-10:
            break
    return beta


def log_loss(beta: Sequence[float], rows: Sequence[Sequence[float]],
             labels: Sequence[bool]) -> float:
    """Mean log-loss of the model ``beta`` (bias first) on ``rows``."""
    total = 0.0
    for row, y in zip(rows, labels, strict=True):
        p = _sigmoid(beta[0] + sum(b * v for b, v in zip(beta[1:], row, strict=True)))
        p = min(max(p, 1e-15), 1.0 - 1e-15)
        total -= math.log(p if y else 1.0 - p)
    return total / len(rows)


L2_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
MIN_SUPPORT = 5  # messages a finding key must fire on to get a weight


def train(examples: Sequence[tuple[Sequence[Finding], bool]], folds: Sequence[int], *,
          l2_grid: Sequence[float] = L2_GRID, min_support: int = MIN_SUPPORT) -> Combiner:
    """The combiner fitted to raw findings labelled spam or not (deterministic).

    Features: the content log-odds and each ``key_of`` seen on ``min_support`` messages or
    more, leaving out 0-point findings (informational: bulk, a time-out). The penalty is
    the one of ``l2_grid`` with the least log-loss over the cross-validation ``folds`` (a
    fold number per example); then the model is fitted on every example."""
    labels = [spam for _, spam in examples]
    per_message = [features_of(f for f in findings if f.check == CONTENT or f.score != 0)
                   for findings, _ in examples]
    support: dict[str, list[int]] = {}
    for found, spam in zip(per_message, labels, strict=True):
        for key in found:
            if key != CONTENT:
                support.setdefault(key, [0, 0])[spam] += 1
    keys = [CONTENT, *sorted(k for k, (h, s) in support.items() if h + s >= min_support)]
    rows = [[found.get(k, 0.0) for k in keys] for found in per_message]
    losses = {}
    for l2 in l2_grid:
        total = 0.0
        for held in sorted(set(folds)):
            inside = [i for i, f in enumerate(folds) if f != held]
            outside = [i for i, f in enumerate(folds) if f == held]
            beta = fit([rows[i] for i in inside], [labels[i] for i in inside], l2)
            total += log_loss(beta, [rows[i] for i in outside],
                              [labels[i] for i in outside]) * len(outside)
        losses[l2] = total / len(rows)
    chosen = min(l2_grid, key=lambda l2: (round(losses[l2], 9), l2))
    beta = fit(rows, labels, chosen)
    training = {"l2": chosen, "cv_log_loss": {f"{k:g}": _round(v) for k, v in losses.items()},
                "support": {k: support[k] for k in keys if k != CONTENT},
                "left_out": {k: v for k, v in sorted(support.items()) if k not in keys}}
    return Combiner(_round(beta[0]), {k: _round(b) for k, b in zip(keys, beta[1:],
                                                                     strict=True)}, training)


def _round(x: float) -> float:
    """6 significant digits; what is 0 but for rounding error, 0."""
    return float(f"{x:.6g}") if abs(x) >= 1e-9 else 0.0


@cache
def shipped() -> Combiner:
    """The combiner shipped with the package (written by scripts/train-combiner)."""
    ref = resources.files("mailward.filter").joinpath(COMBINER_FILE)
    return Combiner.from_json(json.loads(ref.read_text()))
