"""Target drift in the library: chi-squared on classes (new classes named), KS for regression."""

from __future__ import annotations

import re

import numpy as np

from monitoring import DriftChecker, DriftConfig, LabeledPredictions, PredictionColumns, ReferenceProfile
from monitoring.target_drift import TargetDriftCheck, TargetDriftResult
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
    profile = ReferenceProfile.fit(
        SPEC, {"x": rng.normal(size=3000)}, ref_pred, outputs=Outputs(Task.CLASSIFICATION, classes), targets=ref_y
    )
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
    profile = ReferenceProfile.fit(
        SPEC, {"x": rng.normal(size=3000)}, PredictionColumns(values=ref_y), outputs=Outputs(Task.REGRESSION), targets=ref_y
    )
    checker = DriftChecker(profile, DriftConfig(mmd_enabled=False))
    same = rng.normal(10, 2, 500)
    assert _result(checker, same, PredictionColumns(values=same)).drift is False
    moved = rng.normal(11, 2, 500)
    r = _result(checker, moved, PredictionColumns(values=moved))
    assert r.drift is True and r.test == "two-sample KS"
    few = _result(checker, moved[:50], PredictionColumns(values=moved[:50]))
    assert few.drift is None and few.metrics() == []


def _binary_checker(rng: np.random.Generator, positive_rate: float = 0.496) -> DriftChecker:
    classes = ("0", "1")
    ref_y = rng.permutation(np.where(np.arange(10_000) < round(positive_rate * 10_000), "1", "0").astype(object))
    profile = ReferenceProfile.fit(
        SPEC, {"x": rng.normal(size=10_000)}, PredictionColumns(labels=ref_y), outputs=Outputs(Task.CLASSIFICATION, classes), targets=ref_y
    )
    return DriftChecker(profile, DriftConfig(mmd_enabled=False), checks=(TargetDriftCheck,))


def _labels(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, PredictionColumns]:
    y = np.where(rng.random(n) < rate, "1", "0").astype(object)
    return y, PredictionColumns(labels=y)


def test_no_drift_control_windows_of_300_and_3000_labels_stay_quiet() -> None:
    rng = np.random.default_rng(21)
    checker = _binary_checker(rng)
    for n in (300, 3000):
        verdicts = [_result(checker, *_labels(rng, n, 0.496)).drift for _ in range(200)]
        assert sum(verdicts) <= 2, n  # <= 1%: p < alpha alone gave 3-7.5%, growing with the window


def test_a_significant_but_tiny_move_of_the_class_mix_is_no_verdict_and_a_real_one_is() -> None:
    rng = np.random.default_rng(22)
    checker = _binary_checker(rng)
    # year-over-year windows: the positive rate 0.496 -> 0.500-0.512 at 5,000 labels (under 1.6 points)
    tiny = [_result(checker, *_labels(rng, 5000, rate)) for rate in np.linspace(0.500, 0.512, 40)]
    significant = sum(r.p_value is not None and r.p_value < 0.05 for r in tiny)
    assert significant >= 5  # the p-value alone would page on these
    assert sum(bool(r.drift) for r in tiny) <= 1
    moved = _result(checker, *_labels(rng, 3000, 0.60))
    assert moved.drift is True and moved.effect_size is not None and moved.effect_threshold is not None
    assert moved.effect_size >= moved.effect_threshold
    report_text = moved.findings()[0].text
    assert report_text.startswith("labels' class mix moved: ")
    assert re.search(
        r"'1' 6\d\.\d% vs reference 49\.6%, '0' 3\d\.\d% vs reference 50\.4%; "
        r"effect jensen_shannon 0\.\d+ >= noise gate 0\.\d+ at 3000 labels, "
        r"p = [\d.e-]+ < 0\.05$",
        report_text,
    ), report_text
