"""Calibration of the performance alarm (PerformanceDegraded) and of the CBPE estimate.

    python benchmarks/bench_performance_alarm.py                 # defaults: 200 trials per setting
    python benchmarks/bench_performance_alarm.py --trials 50     # quicker

A synthetic 3-class classifier whose probabilities are calibrated (labels drawn from them), so its
held-out accuracy is known; the reference performance is measured on a fresh held-out set per trial
as the export does (:func:`monitoring.performance_drop.measure_performance`; 400 bootstrap resamples
here instead of 1,000, for time), and each window runs the real check (:class:`PerformanceDropCheck`, default config:
``performance_alpha`` Bonferroni over accuracy / macro F1 / AUC, each against the conservative end of the
baseline's 95% interval).

- false alarms: windows with labels from the same distribution;
- detection: windows whose accuracy is 3 points lower (labels of correctly predicted rows changed
  to another class), at 1,000 and 10,000 labelled rows;
- CBPE: estimated accuracy vs realised accuracy on unlabelled windows (no shift), its error.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitoring import DriftChecker, DriftConfig, LabeledPredictions, PredictionColumns, ReferenceProfile  # noqa: E402
from monitoring.estimated_performance import EstimatedPerformanceCheck, EstimatedPerformanceResult  # noqa: E402
from monitoring.performance_drop import PerformanceDropCheck, PerformanceDropResult, measure_performance  # noqa: E402
from monitoring.types import FeatureKind, FeatureSpec, Outputs, Task  # noqa: E402

CLASSES = ("a", "b", "c")
SPEC = [FeatureSpec("x", FeatureKind.NUMERIC)]


def draw(rng: np.random.Generator, n: int, drop: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, predicted class and label; ``drop``: that much accuracy removed from the labels."""
    logits = rng.normal(0, 1.6, size=(n, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = probs.argmax(axis=1)
    u = rng.random(n)[:, None]
    y = (u > np.cumsum(probs, axis=1)).sum(axis=1)
    if drop:
        correct = np.flatnonzero(y == pred)
        flip = rng.choice(correct, size=int(round(drop * n)), replace=False)
        y[flip] = (pred[flip] + rng.integers(1, 3, len(flip))) % 3
    names = np.array(CLASSES, dtype=object)
    return probs, names[pred], names[y]


def checker(rng: np.random.Generator, reference_rows: int) -> DriftChecker:
    probs, pred, y = draw(rng, reference_rows)
    perf = measure_performance(Task.CLASSIFICATION, y, pred, probs, CLASSES, source="holdout", n_boot=400, seed=int(rng.integers(1 << 30)))
    columns = PredictionColumns(labels=pred, probabilities=probs)
    profile = ReferenceProfile.fit(
        SPEC, {"x": np.zeros(reference_rows)}, columns, outputs=Outputs(Task.CLASSIFICATION, CLASSES), targets=y, reference_performance=perf
    )
    return DriftChecker(profile, DriftConfig(), checks=(PerformanceDropCheck, EstimatedPerformanceCheck))


def window(
    c: DriftChecker, rng: np.random.Generator, n: int, drop: float
) -> tuple[PerformanceDropResult, EstimatedPerformanceResult, float]:
    probs, pred, y = draw(rng, n, drop)
    columns = PredictionColumns(labels=pred, probabilities=probs)
    report = c.check({"x": np.zeros(n)}, columns, LabeledPredictions(y, columns))
    perf, est = report.results["performance_drop"], report.results["estimated_performance"]
    assert isinstance(perf, PerformanceDropResult) and isinstance(est, EstimatedPerformanceResult)
    return perf, est, float(np.mean(pred == y))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--reference-rows", type=int, default=5000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    alpha = DriftConfig().performance_alpha
    print(
        f"reference: {args.reference_rows} held-out rows per trial; {args.trials} trials per line; "
        f"performance_alpha {alpha:g} (Bonferroni over 3 metrics, against the baseline's 95% bound)"
    )
    for n in (1000, 10_000):
        for drop in (0.0, 0.03):
            degraded, errors = [], []
            for _ in range(args.trials):
                perf, est, realised = window(checker(rng, args.reference_rows), rng, n, drop)
                degraded.append(bool(perf.degraded))
                if not drop:
                    errors.append(est.estimated_accuracy - realised)
            what = "false-alarm rate (no change)" if not drop else "detection of a 3-point accuracy drop"
            line = f"{n:>6} labelled rows  {what:<38} {np.mean(degraded):.3f}"
            if errors:
                line += f"   CBPE error mean {np.mean(errors):+.4f}, 95% within ±{np.percentile(np.abs(errors), 95):.4f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
