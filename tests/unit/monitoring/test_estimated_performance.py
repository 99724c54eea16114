"""CBPE: the estimate follows a covariate shift that lowers real accuracy, and cannot see a change of
P(y|X). The model is a fixed logistic scorer; the world draws labels from its own P(y|X)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from monitoring import DriftChecker, DriftConfig, PredictionColumns, ReferenceProfile
from monitoring.estimated_performance import EstimatedPerformanceCheck, EstimatedPerformanceResult, IsotonicCalibrator
from monitoring.performance import roc_auc_ovr_macro
from monitoring.types import FeatureKind, FeatureSpec, Outputs, Task

CLASSES = ("neg", "pos")
# the stated tolerance: |estimated - realised accuracy| on 5,000-row windows
TOLERANCE = 0.02


def model(x: np.ndarray) -> PredictionColumns:
    """An overconfident model: its probabilities are sharper than the world's (calibration must fix that)."""
    p = 1 / (1 + np.exp(-4 * x))
    probs = np.column_stack([1 - p, p])
    return PredictionColumns(labels=np.array(CLASSES, dtype=object)[(p > 0.5).astype(int)], probabilities=probs)


def world(x: np.ndarray, rng: np.random.Generator, slope: float = 2.0) -> np.ndarray:
    return np.array(CLASSES, dtype=object)[(rng.random(len(x)) < 1 / (1 + np.exp(-slope * x))).astype(int)]


def checker(rng: np.random.Generator) -> DriftChecker:
    x = rng.normal(0, 1.5, 5000)
    profile = ReferenceProfile.fit(
        [FeatureSpec("x", FeatureKind.NUMERIC)], {"x": x}, model(x), outputs=Outputs(Task.CLASSIFICATION, CLASSES), targets=world(x, rng)
    )
    return DriftChecker(profile, DriftConfig(mmd_enabled=False))


def estimate(c: DriftChecker, x: np.ndarray) -> EstimatedPerformanceResult:
    result = c.check({"x": x}, model(x)).results["estimated_performance"]
    assert isinstance(result, EstimatedPerformanceResult)
    return result


def realised(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model(x).labels == y))


def test_isotonic_calibration_is_scikit_learns() -> None:
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(0)
    s = np.round(rng.random(5_000), 3)  # ties too
    y = (rng.random(5_000) < s**2).astype(float)
    cal = IsotonicCalibrator.fit(s, y)
    grid = np.linspace(-0.1, 1.1, 241)
    expected = IsotonicRegression(out_of_bounds="clip").fit(s, y).predict(grid)
    assert np.abs(cal(grid) - expected).max() < 1e-9


def test_the_estimate_follows_a_covariate_shift_that_lowers_accuracy() -> None:
    rng = np.random.default_rng(1)
    c = checker(rng)
    x_ref = rng.normal(0, 1.5, 5000)
    quiet = estimate(c, x_ref)
    assert quiet.estimated_accuracy == pytest.approx(realised(x_ref, world(x_ref, rng)), abs=TOLERANCE)
    assert quiet.degraded is False
    # rows move towards the decision boundary, where the model is often wrong
    x_shift = rng.normal(0, 0.4, 5000)
    truth = realised(x_shift, world(x_shift, rng))
    shifted = estimate(c, x_shift)
    assert quiet.estimated_accuracy - truth > 0.1  # the shift really costs accuracy
    assert shifted.estimated_accuracy == pytest.approx(truth, abs=TOLERANCE)
    assert shifted.degraded is True
    names = {n for n, _, _ in shifted.metrics()}
    assert names == {"EstimatedAccuracy", "EstimatedF1", "EstimatedAUC", "EstimatedAccuracyDrop", "EstimatedPerformanceDegraded"}


def test_the_estimate_cannot_see_a_change_of_p_y_given_x() -> None:
    rng = np.random.default_rng(2)
    c = checker(rng)
    x = rng.normal(0, 1.5, 5000)
    before = realised(x, world(x, rng))
    after = realised(x, world(x, rng, slope=0.5))  # same inputs, labels far noisier: concept drift
    assert before - after > 0.1
    est = estimate(c, x)
    assert est.estimated_accuracy == pytest.approx(before, abs=TOLERANCE)  # still reads the old world
    assert est.degraded is False


def test_small_windows_publish_the_estimate_without_a_verdict() -> None:
    rng = np.random.default_rng(3)
    result = estimate(checker(rng), rng.normal(0, 0.4, 50))
    assert result.degraded is None
    assert {n for n, _, _ in result.metrics()} == {"EstimatedAccuracy", "EstimatedF1", "EstimatedAUC"}


def estimate_only(rng: np.random.Generator) -> DriftChecker:
    """The reference of :func:`checker`, with only the estimate (fast enough for many windows)."""
    x = rng.normal(0, 1.5, 5000)
    profile = ReferenceProfile.fit(
        [FeatureSpec("x", FeatureKind.NUMERIC)], {"x": x}, model(x), outputs=Outputs(Task.CLASSIFICATION, CLASSES), targets=world(x, rng)
    )
    return DriftChecker(profile, DriftConfig(), checks=(EstimatedPerformanceCheck,))


def test_a_covariate_shift_costing_two_to_four_points_breaches_the_band_before_labels() -> None:
    rng = np.random.default_rng(11)
    c = estimate_only(rng)
    reference_accuracy = np.mean([realised(x, world(x, rng)) for x in rng.normal(0, 1.5, (10, 5000))])
    drops = []
    for _ in range(10):
        x = rng.normal(0, 1.2, 3000)  # rows drift towards the boundary: a few points of accuracy lost
        drops.append(reference_accuracy - realised(x, world(x, rng)))
        result = estimate(c, x)
        assert result.accuracy_drop < 0.05  # the former fixed threshold would not have paged
        assert result.degraded is True
        assert ("EstimatedPerformanceDegraded", 1.0, None) in result.metrics()
    assert 0.02 < np.mean(drops) < 0.04 and max(drops) < 0.05


def test_quiet_windows_stay_inside_the_band_at_300_and_3000_rows() -> None:
    rng = np.random.default_rng(12)
    c = estimate_only(rng)
    for n in (300, 3000):
        breaches = [estimate(c, x).degraded for x in rng.normal(0, 1.5, (150, n))]
        assert sum(bool(b) for b in breaches) <= 1, n  # 3 sd one-sided per metric: ~0.1-0.4% expected


def test_the_band_is_the_estimates_own_noise_at_the_windows_size() -> None:
    rng = np.random.default_rng(13)
    c = estimate_only(rng)
    check = c.checks["estimated_performance"]
    assert isinstance(check, EstimatedPerformanceCheck)
    for n in (300, 3000):
        observed = np.std([estimate(c, x).estimated_accuracy for x in rng.normal(0, 1.5, (200, n))], ddof=1)
        se = check.standard_errors(n)["accuracy"] / np.sqrt(1 + n / 5000)  # without the reference's own noise
        assert se == pytest.approx(observed, rel=0.3), n
    assert check.standard_errors(3000)["accuracy"] < check.standard_errors(300)["accuracy"] / 2


def test_the_estimated_auc_reads_the_real_auc_before_and_after_a_covariate_shift() -> None:
    rng = np.random.default_rng(14)
    c = estimate_only(rng)
    for sd in (1.5, 0.6):
        x = rng.normal(0, sd, 20_000)
        y = world(x, rng)
        real_auc = roc_auc_ovr_macro(y, model(x).probabilities, CLASSES)
        assert estimate(c, x).estimated_auc == pytest.approx(real_auc, abs=0.015), sd


def test_a_breach_is_a_finding_that_says_what_moved_by_how_much_and_against_what() -> None:
    rng = np.random.default_rng(15)
    c = estimate_only(rng)
    x = rng.normal(0, 0.8, 3000)
    report = c.check({"x": x}, model(x))
    assert report.root_cause is not None
    assert re.fullmatch(
        r"estimated (accuracy|macro F1|AUC) 0\.\d{3} vs reference 0\.\d{3} \(-0\.\d{3}\); lower band edge 0\.\d{3} "
        r"\(3 sd = [\d.e-]+ at this window's size\), before labels, on 3000 rows",
        report.root_cause,
    ), report.root_cause
