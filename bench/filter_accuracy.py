"""Benchmark: accuracy and speed of the shipped base content model on the test corpus.

    .venv/bin/python bench/filter_accuracy.py [/work/shared/corpus/test.tar.gz] [--rounds 3]

Reads ``ham/*.eml`` and ``spam/*.eml`` straight from the tar (never unpacked), scores every
message with ``ContentModel.base()`` (the file scripts/train-content-model writes, trained on
train.tar.gz only) and prints: ham false-positive rate and spam catch rate at the operating
threshold (the probability at which ContentCheck's score reaches the quarantine threshold,
10 points) and at the tag threshold (5 points); the spam catch rate at the strictest
threshold that keeps ham FPR <= 0.1 %; 1-AUC; and messages/s of feature extraction plus
scoring on one core (best of ``--rounds`` passes over the preloaded messages). Not a test.
"""

from __future__ import annotations

import argparse
import bisect
import math
import tarfile
import time

from mailward.filter.content import probability_at, score_of
from mailward.filter.features import extract
from mailward.filter.model import ContentModel
from mailward.filter.pipeline import Thresholds

FPR_TARGET = 0.001


def read_corpus(path: str) -> list[tuple[str, bytes, bool]]:
    out = []
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            label = member.name.split("/", 1)[0]
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None and label in ("ham", "spam"):
                out.append((member.name, handle.read(), label == "spam"))
    out.sort()
    return out


def one_minus_auc(ham: list[float], spam: list[float]) -> float:
    """Share of (ham, spam) pairs ranked wrong; ties count half."""
    ham = sorted(ham)
    wins = 0.0
    for x in spam:
        lo, hi = bisect.bisect_left(ham, x), bisect.bisect_right(ham, x)
        wins += lo + 0.5 * (hi - lo)
    return 1.0 - wins / (len(ham) * len(spam))


def at_points(points: float, ham: list[float], spam: list[float], label: str) -> None:
    """Rates where the content score alone reaches ``points``."""
    fp = sum(score_of(p) >= points for p in ham)
    caught = sum(score_of(p) >= points for p in spam)
    print(f"{label} (score >= {points:g}, p >= {probability_at(points):.5f}): "
          f"ham FPR {fp / len(ham):.2%} ({fp}/{len(ham)}), "
          f"spam catch {caught / len(spam):.2%} ({caught}/{len(spam)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("corpus", nargs="?", default="/work/shared/corpus/test.tar.gz")
    parser.add_argument("--rounds", type=int, default=3, help="timing passes (best counts)")
    args = parser.parse_args()

    corpus = read_corpus(args.corpus)
    content = ContentModel.base()
    model = content.model
    print(f"{args.corpus}: {sum(not s for *_, s in corpus)} ham, "
          f"{sum(s for *_, s in corpus)} spam; model: {len(model.weights)} weights, "
          f"{model.params}")

    margins = {name: model.margin(extract(data)) for name, data, _ in corpus}
    ham_m = [margins[name] for name, _, s in corpus if not s]
    spam_m = [margins[name] for name, _, s in corpus if s]
    ham_p = [1.0 / (1.0 + math.exp(-m)) for m in ham_m]
    spam_p = [1.0 / (1.0 + math.exp(-m)) for m in spam_m]

    thresholds = Thresholds()
    at_points(thresholds.quarantine, ham_p, spam_p, "operating threshold")
    at_points(thresholds.tag, ham_p, spam_p, "tag threshold")
    allowed = math.floor(FPR_TARGET * len(ham_m))  # ham allowed at or above the threshold
    cut = sorted(ham_m, reverse=True)[allowed]  # spam must score strictly above this
    caught = sum(m > cut for m in spam_m)
    print(f"at ham FPR <= {FPR_TARGET:.1%} ({allowed} of {len(ham_m)} ham; "
          f"p > {1.0 / (1.0 + math.exp(-cut)):.6f}): "
          f"spam catch {caught / len(spam_m):.2%} ({caught}/{len(spam_m)})")
    print(f"1-AUC: {one_minus_auc(ham_m, spam_m):.5f}")
    worst = sorted((m, name) for name, _, s in corpus if not s for m in [margins[name]])[-5:]
    print("highest-scoring ham: " + ", ".join(
        f"{name.split('/')[-1][:22]} p={1.0 / (1.0 + math.exp(-m)):.4f}"
        for m, name in reversed(worst)))

    best = math.inf
    for _ in range(max(1, args.rounds)):
        start = time.process_time()
        for _, data, _ in corpus:
            content.probability(data)
        best = min(best, time.process_time() - start)
    print(f"speed: {len(corpus) / best:.0f} messages/s (extraction + scoring, one core, "
          f"mean {sum(len(d) for _, d, _ in corpus) / len(corpus):.0f} bytes)")


if __name__ == "__main__":
    main()
