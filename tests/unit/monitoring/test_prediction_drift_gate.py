"""The prediction-drift gate's premise, as benchmarks/bench_prediction_drift_gate.py measures it: a shift of the
model's probability output well below the gate is rarely flagged, one well above it nearly always, and the
effect the benchmark injects is the effect the check measures."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from monitoring.prediction_drift import detect_prediction_drift

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from bench_prediction_drift_gate import POSITIVE, detection, gate_at, outputs, reference_profile, shift_for_effect, true_effect  # noqa: E402

TRIALS = 20


@pytest.fixture(scope="module")
def profile():
    return reference_profile(np.random.default_rng(7))


def test_the_injected_shift_has_the_requested_true_effect() -> None:
    for effect in (0.03, 0.06, 0.2):
        assert true_effect(shift_for_effect(effect)) == pytest.approx(effect, abs=1e-5)
    assert shift_for_effect(0.0) == 0.0


def test_a_large_window_measures_about_the_true_effect(profile) -> None:
    shift = shift_for_effect(0.1)
    measured = detect_prediction_drift(profile, outputs(np.random.default_rng(1).normal(size=200_000), shift)).get(POSITIVE)
    # the window's effect against the 10,000-row reference: the true effect plus the reference's own noise
    assert measured.effect_size == pytest.approx(0.1, abs=0.015)


def test_the_gate_is_the_check_s_own_and_shrinks_with_the_window(profile) -> None:
    for n in (300, 3000):
        r = detect_prediction_drift(profile, outputs(np.random.default_rng(n).normal(size=n))).get(POSITIVE)
        assert r.effect_threshold == gate_at(profile, n)
    assert gate_at(profile, 300) > 2 * gate_at(profile, 3000)


@pytest.mark.parametrize("n", [300, 3000])
def test_detection_is_rare_well_below_the_gate_a_coin_flip_at_it_and_near_certain_well_above_it(profile, n) -> None:
    # the benchmark's 400 trials: 4-7% at 0.5x, 44-45% at 1x, 100% at 2x; 20 trials here, binomial margins
    rng = np.random.default_rng(n)
    below = detection(profile, n, 0.5, TRIALS, rng)
    at = detection(profile, n, 1.0, TRIALS, rng)
    above = detection(profile, n, 2.0, TRIALS, rng)
    assert below.detection_rate <= 0.25, below
    assert 0.15 <= at.detection_rate <= 0.8, at
    assert above.detection_rate >= 0.9, above
