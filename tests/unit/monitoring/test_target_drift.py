"""Target drift in the library: chi-squared on classes (new classes named), KS for regression."""

from __future__ import annotations

import numpy as np

from monitoring import DriftChecker, DriftConfig, LabeledPredictions, PredictionColumns, ReferenceProfile
from monitoring.target_drift import TargetDriftResult
from monitoring.types import FeatureKind, FeatureSpec, Outputs, Task

SPEC = [FeatureSpec("x", FeatureKind.NUMERIC)]


def _result(checker: DriftChecker, y: np.ndarray, pred: PredictionColumns) -> TargetDriftResult:
    x = np.zeros(len(y))
    r = checker.check({"x": x}, pred, LabeledPredictions(y, pred)).results["target_drift"]
    assert isinstance(r, TargetDriftResult)
    return r


def test_classes_false_alarm_rate_and_a_new_class() -> None:
    rng = np.random.default_rng(0)
    classes = ("a", "b", "c")
    shares = [0.5, 0.3, 0.2]
    ref_y = rng.choice(classes, 3000, p=shares)
    ref_pred = PredictionColumns(labels=ref_y)
    profile = ReferenceProfile.fit(SPEC, {"x": rng.normal(size=3000)}, ref_pred, outputs=Outputs(Task.CLASSIFICATION, classes), targets=ref_y)
    checker = DriftChecker(profile, DriftConfig(mmd_enabled=False))
    alarms = []
    for _ in range(200):
        y = rng.choice(classes, 500, p=shares)
        alarms.append(_result(checker, y, PredictionColumns(labels=y)).drift)
    assert np.mean(alarms) < 0.09  # alpha 0.05 with sampling noise
    y = np.array(list(rng.choice(classes, 490, p=shares)) + ["d"] * 10, dtype=object)
    r = _result(checker, y, PredictionColumns(labels=rng.choice(classes, 500)))
    assert r.drift is True and r.new_classes == ("d",)
    assert {n for n, _, _ in r.metrics()} == {"TargetDrift", "TargetDriftPValue"}


def test_regression_targets_shifted_by_half_a_standard_deviation() -> None:
    rng = np.random.default_rng(1)
    ref_y = rng.normal(10, 2, 3000)
    profile = ReferenceProfile.fit(SPEC, {"x": rng.normal(size=3000)}, PredictionColumns(values=ref_y), outputs=Outputs(Task.REGRESSION), targets=ref_y)
    checker = DriftChecker(profile, DriftConfig(mmd_enabled=False))
    same = rng.normal(10, 2, 500)
    assert _result(checker, same, PredictionColumns(values=same)).drift is False
    moved = rng.normal(11, 2, 500)
    r = _result(checker, moved, PredictionColumns(values=moved))
    assert r.drift is True and r.test == "two-sample KS"
    few = _result(checker, moved[:50], PredictionColumns(values=moved[:50]))
    assert few.drift is None and few.metrics() == []
