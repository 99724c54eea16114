"""Required detections at the default window size (10,000 rows) with the default config,
and multivariate/prediction/outlier detectors firing on drift but not on no-drift (seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from devtools import synthetic as syn
from monitoring import DriftChecker, DriftConfig, ReferenceProfile
from monitoring.expectations import MISSING_RATE, UNSEEN_CATEGORY, DataQualityResult
from monitoring.multivariate import MMDResult, ReconstructionCheck, ReconstructionResult
from monitoring.outliers import OutlierResult
from monitoring.prediction_drift import PredictionDriftResult
from monitoring.types import Task

WINDOW = 10_000  # default window: the drift Lambda reservoir-samples to 10,000 rows


@pytest.fixture(scope="module")
def checker(profile):
    return DriftChecker(profile, DriftConfig())


def _check(checker, rng, **kw):
    table = syn.make_table(WINDOW, rng, **kw)
    return checker.check(table, syn.make_predictions(table, rng))


@pytest.mark.parametrize("feature", ["num_a", "num_skew", "num_heavy"])
def test_mean_shift_of_0_2_sd_in_one_numeric_feature_is_drift_of_that_feature(checker, rng, feature):
    report = _check(checker, rng, mean_shift={feature: 0.2})
    assert report.features.drifted_features == [feature]
    r = report.features.get(feature)
    assert r.p_value_corrected < 0.05
    assert r.effect_size == pytest.approx(0.2, abs=0.05)
    assert report.dataset_drift is True


def test_new_category_at_ten_percent_is_feature_drift_and_an_unseen_category_failure(checker, rng):
    report = _check(checker, rng, new_category=("cat_color", "purple", 0.1))
    assert report.features.drifted_features == ["cat_color"]
    assert report.features.get("cat_color").effect_size == pytest.approx(0.228, abs=0.03)
    assert report.result(DataQualityResult).get("cat_color", UNSEEN_CATEGORY).failed
    assert report.result(DataQualityResult).unseen_category_rate == pytest.approx(0.1, abs=0.01)


def test_missing_rate_ten_to_twenty_percent_fails_the_missing_rate_expectation(checker, rng):
    report = _check(checker, rng, missing={"num_b": 0.2})
    assert report.result(DataQualityResult).get("num_b", MISSING_RATE).failed
    assert report.result(DataQualityResult).n_failed == 1
    # KS ignores nulls: the missingness is a data-quality finding, not distribution drift
    assert not report.features.get("num_b").is_drift


def test_no_drift_window_raises_no_alarm_at_all(checker, rng):
    report = _check(checker, rng)
    assert report.dataset_drift is False
    assert report.alarms == []


def test_mmd_detects_a_correlation_change_invisible_to_univariate_tests(checker, rng):
    report = _check(checker, rng, correlation=-0.6)
    assert report.features.get("num_a").is_drift is False and report.features.get("num_b").is_drift is False
    assert report.result(MMDResult).is_drift is True and report.result(MMDResult).p_value < 0.05
    assert report.result(ReconstructionResult).is_drift is True and report.result(ReconstructionResult).ratio > 1.3


def test_mmd_detects_a_moderate_joint_shift_and_not_no_drift(checker, rng):
    shifted = _check(checker, rng, joint_shift=0.1)
    assert shifted.result(MMDResult).is_drift is True
    same = _check(checker, rng)
    assert same.result(MMDResult).is_drift is False and same.result(MMDResult).p_value > 0.05
    assert same.result(MMDResult).n_reference == same.result(MMDResult).n_target == 1000  # bounded sample sizes


def test_mmd_is_reproducible_with_the_same_seed(profile):
    table = syn.make_table(3000, np.random.default_rng(9), joint_shift=0.05)
    a = DriftChecker(profile, DriftConfig(seed=5)).check(table).result(MMDResult)
    b = DriftChecker(profile, DriftConfig(seed=5)).check(table).result(MMDResult)
    assert (a.statistic, a.p_value) == (b.statistic, b.p_value)


def test_mmd_with_pca_components_runs_in_the_reduced_space(profile, rng):
    report = DriftChecker(profile, DriftConfig(mmd_pca_components=4)).check(syn.make_table(2000, rng, joint_shift=0.3))
    assert report.result(MMDResult).n_components == 4 and report.result(MMDResult).is_drift


def test_outlier_rate_is_near_one_percent_without_drift_and_fires_on_extreme_rows(checker, rng):
    base = _check(checker, rng)
    assert 0.005 < base.result(OutlierResult).rate < 0.02 and base.result(OutlierResult).is_drift is False
    table = syn.make_table(WINDOW, rng)
    hit = rng.random(WINDOW) < 0.1
    table["num_a"] = np.where(hit, 8.0, table["num_a"])
    report = checker.check(table)
    assert report.result(OutlierResult).rate > 0.09 and report.result(OutlierResult).is_drift is True


def test_prediction_drift_follows_a_shift_in_a_model_input(checker, rng):
    drifted = _check(checker, rng, mean_shift={"num_a": 0.3})
    assert drifted.result(PredictionDriftResult).is_drift is True
    assert drifted.result(PredictionDriftResult).get("probability[yes]").is_drift
    assert _check(checker, rng).result(PredictionDriftResult).is_drift is False


def test_regression_prediction_drift_uses_ks_on_values(regression_profile, rng):
    checker = DriftChecker(regression_profile)
    table = syn.make_table(WINDOW, rng, mean_shift={"num_a": 0.3})
    report = checker.check(table, syn.make_predictions(table, rng, Task.REGRESSION))
    assert [r.test for r in report.result(PredictionDriftResult).results] == ["ks"]
    assert report.result(PredictionDriftResult).is_drift is True
    table = syn.make_table(WINDOW, rng)
    assert checker.check(table, syn.make_predictions(table, rng, Task.REGRESSION)).result(PredictionDriftResult).is_drift is False


def test_fdr_correction_is_never_stricter_than_bonferroni(profile, rng):
    table = syn.make_table(2000, rng, mean_shift={"num_a": 0.1, "num_skew": 0.1})
    bonf = DriftChecker(profile, DriftConfig(mmd_enabled=False)).check(table).features
    fdr = DriftChecker(profile, DriftConfig(mmd_enabled=False, correction="fdr")).check(table).features
    for b, f in zip(bonf.results, fdr.results):
        assert f.p_value_corrected <= b.p_value_corrected + 1e-15
        assert f.p_value == b.p_value
    assert fdr.correction == "fdr"


def test_a_small_shift_is_drift_where_it_exceeds_the_reference_noise_and_a_floor_still_applies(profile, rng):
    # 0.06 sd: above the no-drift effect noise of a 10k-row window (~0.045), within that of 1k rows (~0.12)
    checker = DriftChecker(profile, DriftConfig(mmd_enabled=False))
    big = checker.check(syn.make_table(WINDOW, rng, mean_shift={"num_a": 0.06})).features.get("num_a")
    assert big.noise_threshold < 0.05 and big.effect_threshold == big.noise_threshold and big.is_drift
    small = checker.check(syn.make_table(1000, rng, mean_shift={"num_a": 0.06})).features.get("num_a")
    assert small.noise_threshold > 0.08 and not small.is_drift
    # the configured effect threshold is the gate's floor
    floored = DriftChecker(profile, DriftConfig(mmd_enabled=False, numeric_effect_threshold=0.1))
    r = floored.check(syn.make_table(WINDOW, rng, mean_shift={"num_a": 0.06})).features.get("num_a")
    assert r.effect_threshold == 0.1 and r.effect_size < 0.1 and not r.is_drift


def test_pca_sees_a_correlation_change_next_to_a_feature_whose_middle_half_is_nearly_constant(rng):
    """Hours worked: 80% of rows at 40 h. Scaled by its IQR, its variance swamped the PCA's retained
    components and the num_a / num_b correlation change went unseen (0 of 10 windows); scaled by its
    winsorized sd, it is caught in every window, and quiet windows stay quiet."""
    from monitoring.types import FeatureKind, FeatureSpec

    def table(n, correlation=0.6):
        t = syn.make_table(n, rng, correlation=correlation)
        t["hours"] = np.where(rng.random(n) < 0.8, 40 + rng.normal(0, 0.5, n), rng.uniform(5, 80, n))
        return t

    reference = table(10_000)
    specs = [*syn.feature_specs(), FeatureSpec("hours", FeatureKind.NUMERIC)]
    profile = ReferenceProfile.fit(specs, reference, syn.make_predictions(reference, rng), outputs=syn.output_spec())
    checker = DriftChecker(profile, DriftConfig(mmd_enabled=False), checks=(ReconstructionCheck,))
    for correlation, expected in ((0.0, True), (0.6, False)):
        for _ in range(10):
            window = table(3000, correlation)
            result = checker.check(window).result(ReconstructionResult)
            assert result is not None and result.is_drift is expected, (correlation, result)
