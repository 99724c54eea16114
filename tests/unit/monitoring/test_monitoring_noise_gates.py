"""Effect gates from the reference's own noise, and verdicts robust to one extreme row."""

from __future__ import annotations

import numpy as np
import pytest

from devtools import synthetic as syn
from monitoring import DriftChecker, DriftConfig
from monitoring.multivariate import ReconstructionResult
from monitoring.prediction_drift import PredictionDriftResult, detect_prediction_drift
from monitoring.profile import PredictionColumns, ReferenceProfile
from monitoring.types import FeatureKind, FeatureSpec, Outputs, Task
from monitoring.univariate import KSDrift, size_bucket

FAST = DriftConfig(mmd_enabled=False)


def _verdicts(report):
    return {v.check: v.verdict for v in report.verdicts()}


def test_one_extreme_real_looking_row_in_a_no_drift_window_changes_no_verdict(profile):
    checker = DriftChecker(profile, FAST)
    changed = 0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        table = syn.make_table(300, rng)
        before = checker.check(table, syn.make_predictions(table, rng))
        # a skewed feature at 400x its reference median (1243 against ~3 on real census data)
        extreme = {k: v.copy() for k, v in table.items()}
        extreme["num_skew"][0] = 400.0 * float(np.median(profile.sample["num_skew"]))
        after = checker.check(extreme, syn.make_predictions(extreme, rng))
        changed += _verdicts(before) != _verdicts(after)
        assert abs(after.features.get("num_skew").effect_size - before.features.get("num_skew").effect_size) < 0.05
        assert after.result(ReconstructionResult).ratio < before.result(ReconstructionResult).ratio + 0.1
    assert changed == 0


def test_unclipped_wasserstein_would_have_been_dominated_by_that_row(profile):
    ref = profile.sample["num_skew"]
    rng = np.random.default_rng(0)
    window = syn.make_table(300, rng)["num_skew"]
    window[0] = 400.0 * float(np.median(ref))
    det = KSDrift(ref)
    from monitoring.univariate import wasserstein_effect

    assert wasserstein_effect(det.x_ref, window, det.scale) > 0.5  # the raw effect: one row moves it past any gate
    assert det.effect(window) < 0.2


def _probability_profile(rng: np.random.Generator, n: int = 10_000) -> ReferenceProfile:
    features = (FeatureSpec("x", FeatureKind.NUMERIC),)
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(0.8 * x - 0.5)))
    preds = PredictionColumns(labels=(p > 0.5).astype(int), probabilities=p)
    return ReferenceProfile.fit(features, {"x": x}, preds, outputs=Outputs(Task.CLASSIFICATION, ("0", "1")))


def _outputs(rng: np.random.Generator, n: int, shift: float) -> PredictionColumns:
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(0.8 * x - 0.5 + shift)))
    return PredictionColumns(labels=(p > 0.5).astype(int), probabilities=p)


def test_a_small_real_shift_of_a_probability_output_at_5000_rows_is_flagged_and_no_drift_is_not():
    rng = np.random.default_rng(11)
    profile = _probability_profile(rng)
    flagged = quiet_alarms = 0
    effects = []
    for _ in range(20):
        shifted = detect_prediction_drift(profile, _outputs(rng, 5000, 0.08)).get("probability[1]")
        effects.append(shifted.effect_size)
        flagged += shifted.is_drift
        quiet = detect_prediction_drift(profile, _outputs(rng, 5000, 0.0)).get("probability[1]")
        quiet_alarms += bool(quiet.is_drift)
    assert 0.05 <= np.median(effects) <= 0.08  # the case: effect 0.05-0.08, under the former fixed 0.1
    assert flagged >= 18 and quiet_alarms == 0
    # with the former fixed threshold the same shift was never flagged
    fixed = detect_prediction_drift(profile, _outputs(rng, 5000, 0.08), numeric_effect_threshold=0.1, adaptive=False)
    assert not fixed.get("probability[1]").is_drift


def test_the_gate_follows_the_window_size_and_is_cached_per_size_bucket(profile):
    det = KSDrift(profile.sample["num_a"])
    small, _ = det.threshold(1000)
    large, _ = det.threshold(10_000)
    assert small > 2 * large  # noise shrinks like 1/sqrt(n)
    assert det.threshold(10_500) == det.threshold(10_000)  # same bucket, cached
    assert size_bucket(10_000) <= 10_000 and size_bucket(5000) <= 5000
    assert set(det.gate.cache) == {size_bucket(1000), size_bucket(10_000)}


@pytest.mark.parametrize("n", [1000, 10_000])
def test_noise_gates_are_exceeded_about_as_rarely_as_their_quantile_says(profile, n):
    # fresh no-drift windows: a gate at the 99.5% no-drift quantile is exceeded in ~0.5% of
    # (feature, window) pairs; 240 pairs, at most 2% (5) allowed
    checker = DriftChecker(profile, FAST)
    rng = np.random.default_rng(n)
    pairs = exceeded = 0
    for _ in range(30):
        for r in checker.check(syn.make_table(n, rng)).features.results:
            pairs += 1
            exceeded += r.effect_size >= r.effect_threshold
    assert exceeded / pairs <= 0.02, exceeded


def test_report_json_carries_the_gate_and_the_noise(profile, rng):
    table = syn.make_table(2000, rng)
    report = DriftChecker(profile, FAST).check(table, syn.make_predictions(table, rng))
    row = report.to_dict()["features"]["results"][0]
    assert row["effect_threshold"] >= row["noise_threshold"] > 0
    assert isinstance(report.result(PredictionDriftResult), PredictionDriftResult)
