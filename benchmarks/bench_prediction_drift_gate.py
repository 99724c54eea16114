"""Detection rate of prediction drift at effects near its gate: how often a shift of the model's own
probability output is flagged when its true effect is a multiple of the gate, per window size.

    python benchmarks/bench_prediction_drift_gate.py                          # 200 trials per cell, 300 and 3,000 rows
    python benchmarks/bench_prediction_drift_gate.py --trials 50 --sizes 300 3000 5000

The world: one feature ``x ~ N(0, 1)`` and a binary model ``P(pos) = sigmoid(1.2 x - 0.3)``; the
reference is 10,000 rows (the bundle's largest reference sample) with the model's outputs. A drifted
window moves the model's logit by ``s`` (its inputs moved along the direction the model reads), with
``s`` solved so that the *true* effect of the positive class's probability (Wasserstein distance /
reference sd, the check's effect measure, between the shifted and the unshifted populations) is a
multiple of the gate the check applies at the window's size. Each window runs
``detect_prediction_drift`` with the library's defaults, exactly as the drift check does; the table
counts the windows where the probability output drifted, where its corrected p-value alone passed,
where its effect alone passed the gate, and where the check's verdict (any output, the predicted-label
share included) said drift.

A window's measured effect is the true effect plus sampling noise, so at 1.0x the gate a window is
caught about as often as its noise pushes the effect above the gate; the gate itself is the 99.5%
no-drift quantile at that size, which is what keeps a quiet window's false rate near 0.5%.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import optimize, special, stats  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitoring.prediction_drift import detect_prediction_drift, probability_output  # noqa: E402
from monitoring.profile import PredictionColumns, ReferenceProfile  # noqa: E402
from monitoring.types import FeatureKind, FeatureSpec, Outputs, Task  # noqa: E402
from monitoring.univariate import KSDrift  # noqa: E402

CLASSES = ("neg", "pos")
SLOPE, INTERCEPT = 1.2, -0.3
REFERENCE_ROWS = 10_000
MULTIPLES = (0.0, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0)
SIZES = (300, 3000)
# the population's quantiles the true effect is computed on (a deterministic, fine grid)
GRID = stats.norm.ppf((np.arange(20_000) + 0.5) / 20_000)
POSITIVE = probability_output(CLASSES[1])


def outputs(x: np.ndarray, logit_shift: float = 0.0) -> PredictionColumns:
    p = special.expit(SLOPE * x + INTERCEPT + logit_shift)
    return PredictionColumns(labels=np.array(CLASSES, dtype=object)[(p > 0.5).astype(int)], probabilities=np.column_stack([1 - p, p]))


def reference_profile(rng: np.random.Generator) -> ReferenceProfile:
    x = rng.normal(size=REFERENCE_ROWS)
    specs = (FeatureSpec("x", FeatureKind.NUMERIC),)
    return ReferenceProfile.fit(specs, {"x": x}, outputs(x), outputs=Outputs(Task.CLASSIFICATION, CLASSES))


def true_effect(logit_shift: float) -> float:
    """Wasserstein-1 / sd between the shifted and the unshifted populations' positive-class probability
    (both monotone in x: the distance is the mean gap of their quantiles)."""
    base = special.expit(SLOPE * GRID + INTERCEPT)
    return float(np.mean(np.abs(special.expit(SLOPE * GRID + INTERCEPT + logit_shift) - base)) / base.std())


def shift_for_effect(effect: float) -> float:
    """The logit shift whose true effect is ``effect`` (0 for 0)."""
    if effect <= 0:
        return 0.0
    return float(optimize.brentq(lambda s: true_effect(s) - effect, 0.0, 10.0, xtol=1e-6))


def gate_at(profile: ReferenceProfile, n: int) -> float:
    """The effect gate the check applies to the positive class's probability at an n-row window: the
    same detector, with the same defaults, as ``detect_prediction_drift``."""
    assert profile.sample_predictions.probabilities is not None
    return KSDrift(profile.sample_predictions.probabilities[:, 1], feature=POSITIVE).threshold(n)[0]


@dataclass
class Cell:
    """Counts over the trials of one (window size, multiple of the gate)."""

    trials: int = 0
    drifted: int = 0  # the probability output drifted (p and effect)
    p_passed: int = 0  # its corrected p-value < alpha
    effect_passed: int = 0  # its effect >= the gate
    verdict: int = 0  # the check's verdict: any output drifted
    effects: float = 0.0  # the sum of measured effects

    def add(self, profile: ReferenceProfile, window: PredictionColumns) -> None:
        result = detect_prediction_drift(profile, window)
        r = result.get(POSITIVE)
        self.trials += 1
        self.drifted += r.is_drift
        self.p_passed += r.p_value_corrected < r.alpha
        self.effect_passed += r.effect_size >= r.effect_threshold
        self.verdict += bool(result.is_drift)
        self.effects += r.effect_size

    @property
    def detection_rate(self) -> float:
        return self.drifted / self.trials if self.trials else float("nan")


def detection(profile: ReferenceProfile, n: int, multiple: float, trials: int, rng: np.random.Generator, gate: float | None = None) -> Cell:
    """``trials`` windows of ``n`` rows whose true probability effect is ``multiple`` x the gate at ``n``."""
    gate = gate_at(profile, n) if gate is None else gate
    shift = shift_for_effect(multiple * gate)
    cell = Cell()
    for _ in range(trials):
        cell.add(profile, outputs(rng.normal(size=n), shift))
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    profile = reference_profile(rng)
    print(f"reference {REFERENCE_ROWS} rows; {args.trials} windows per cell; defaults (alpha 0.05 Bonferroni, noise gates)")
    columns = (
        "rows",
        "gate",
        "true effect",
        "× gate",
        "probability drifted",
        "p < alpha",
        "effect ≥ gate",
        "verdict (any output)",
        "mean effect",
    )
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for n in args.sizes:
        gate = gate_at(profile, n)
        for k in MULTIPLES:
            c = detection(profile, n, k, args.trials, rng, gate)
            t = args.trials
            print(
                f"| {n:,} | {gate:.3f} | {k * gate:.3f} | {k:g}× | {c.drifted}/{t} | {c.p_passed}/{t} | {c.effect_passed}/{t}"
                f" | {c.verdict}/{t} | {c.effects / t:.3f} |"
            )


if __name__ == "__main__":
    main()
