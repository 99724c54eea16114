"""The performance-drop test in the library: its error rate under no change, its power, regression."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from monitoring import DriftChecker, DriftConfig, LabeledPredictions, PredictionColumns, ReferenceProfile
from monitoring.performance_drop import PerformanceDropResult, classification_estimates, measure_performance, two_proportion_p_value
from monitoring.types import FeatureKind, FeatureSpec

CLASSES = ("a", "b", "c")


def test_bootstrap_estimates_match_the_plain_metric_and_cover_it() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(CLASSES, 500)
    pred = np.where(rng.random(500) < 0.8, y, rng.choice(CLASSES, 500))
    est = classification_estimates(y, pred, None, CLASSES, n_boot=400)
    assert est["f1_macro"].value == pytest.approx(f1_score(y, pred, average="macro"))
    assert est["accuracy"].value == pytest.approx(np.mean(y == pred))
    # the binomial standard error of a proportion, which the bootstrap should reproduce
    p = est["accuracy"].value
    assert est["accuracy"].se == pytest.approx(np.sqrt(p * (1 - p) / 500), rel=0.15)


def test_two_proportion_false_alarm_rate_is_alpha_and_a_3_point_drop_is_found_at_10k() -> None:
    rng = np.random.default_rng(1)
    n_ref, n_win, trials = 2000, 1000, 2000
    ref = rng.binomial(n_ref, 0.9, trials) / n_ref
    same = rng.binomial(n_win, 0.9, trials) / n_win
    false_alarms = np.mean([two_proportion_p_value(r, n_ref, w, n_win) < 0.05 for r, w in zip(ref, same)])
    assert 0.03 < false_alarms < 0.07
    big = rng.binomial(10_000, 0.87, 200) / 10_000
    assert np.mean([two_proportion_p_value(r, n_ref, w, 10_000) < 0.05 / 3 for r, w in zip(ref, big)]) > 0.9


def _regression_checker(reference_errors: np.ndarray, min_labels: int = 100) -> DriftChecker:
    n = len(reference_errors)
    rng = np.random.default_rng(2)
    x = rng.normal(size=n)
    truth = 3 * x
    perf = measure_performance("regression", truth, truth + reference_errors, source="holdout", n_boot=300)
    profile = ReferenceProfile.fit(
        [FeatureSpec("x", FeatureKind.NUMERIC)], {"x": x}, PredictionColumns(values=truth + reference_errors), reference_performance=perf
    )
    return DriftChecker(profile, DriftConfig(performance_min_labels=min_labels, mmd_enabled=False))


def _window_result(checker: DriftChecker, errors: np.ndarray) -> PerformanceDropResult:
    rng = np.random.default_rng(3)
    x = rng.normal(size=len(errors))
    truth = 3 * x
    pred = PredictionColumns(values=truth + errors)
    report = checker.check({"x": x}, pred, LabeledPredictions(truth, pred))
    result = report.results["performance_drop"]
    assert isinstance(result, PerformanceDropResult)
    return result


def test_regression_errors_that_grow_page_and_the_same_errors_do_not() -> None:
    rng = np.random.default_rng(4)
    checker = _regression_checker(rng.normal(0, 1.0, 1000))
    same = _window_result(checker, rng.normal(0, 1.0, 800))
    assert same.degraded is False
    worse = _window_result(checker, rng.normal(0, 1.3, 800))
    assert worse.degraded is True
    names = {name for name, _, _ in worse.metrics()}
    assert {"MAEIncrease", "RMSEIncrease", "PerformanceDegraded"} <= names
    mae = next(c for c in worse.comparisons if c.metric == "mae")
    assert mae.drop == pytest.approx(0.3 * np.sqrt(2 / np.pi), abs=0.08)


def test_below_the_minimum_labels_there_is_no_verdict_and_nothing_published() -> None:
    rng = np.random.default_rng(5)
    checker = _regression_checker(rng.normal(0, 1.0, 500), min_labels=300)
    result = _window_result(checker, rng.normal(0, 5.0, 299))
    assert result.degraded is None and result.metrics() == [] and result.verdicts()[0].verdict is None
