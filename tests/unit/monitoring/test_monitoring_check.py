"""run_drift_check: report structure, metrics, JSON form, degenerate windows and a plugged-in check."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from devtools import synthetic as syn
from monitoring import DriftChecker, DriftConfig, MissingColumnsError, run_drift_check
from monitoring import metric_names as M
from monitoring.check_protocol import Check, Metric, Reference, Verdict, Window
from monitoring.checker import DEFAULT_CHECKS, feature_metric_names, published_metric_names
from monitoring.expectations import DataQualityResult
from monitoring.html_report import render_html
from monitoring.multivariate import MMDResult
from monitoring.outliers import OutlierResult
from monitoring.performance import LabeledPredictions, PerformanceResult
from monitoring.prediction_drift import PredictionDriftResult
from monitoring.profile import PredictionColumns, ReferenceProfile
from monitoring.report import REPORT_KEYS
from monitoring.types import FeatureKind, FeatureSpec
from monitoring.univariate import FeatureDriftCheck

FAST = DriftConfig(mmd_permutations=20, mmd_max_rows=300)


def _empty_table(profile):
    return {
        f.name: np.array([], dtype=object) if f.kind is FeatureKind.CATEGORICAL else np.array([], dtype=np.float64)
        for f in profile.features
    }


@pytest.mark.parametrize("make_target", [_empty_table, lambda p: {}])
def test_empty_window_gives_zero_rows_and_no_verdict_without_raising(profile, make_target):
    report = run_drift_check(profile, make_target(profile), PredictionColumns(), FAST)
    assert report.window_rows == 0
    assert report.dataset_drift is None
    assert report.features is None and report.result(MMDResult) is None
    assert report.metrics() == [(M.WINDOW_ROWS, 0.0, None)]
    json.dumps(report.to_dict(), allow_nan=False)


def test_single_row_window_runs_every_check(profile, rng):
    table = syn.make_table(1, rng)
    report = run_drift_check(profile, table, syn.make_predictions(table, rng), FAST)
    assert report.window_rows == 1
    assert report.dataset_drift in (True, False)
    assert report.result(MMDResult).is_drift is None  # needs two rows
    assert report.result(OutlierResult).n_target == 1
    json.dumps(report.to_dict(), allow_nan=False)


def test_all_null_window_columns_do_not_raise_and_are_reported_as_missing(profile, rng):
    table = syn.make_table(500, rng)
    table["num_a"] = np.full(500, np.nan)
    table["cat_color"] = np.full(500, None, dtype=object)
    table["flag"] = np.full(500, np.nan)
    report = run_drift_check(profile, table, None, FAST)
    ks = report.features.get("num_a")
    assert not ks.tested and ks.note == "no window values" and not ks.is_drift
    assert report.result(DataQualityResult).get("num_a", "missing_rate").failed
    # like KS, the chi-squared test leaves nulls out: missingness is one finding, the expectation's
    assert not report.features.get("cat_color").tested and not report.features.get("flag").tested
    assert report.features.n_tested == len(profile.features) - 3
    assert report.root_cause.startswith("num_a missing in 100% of rows")
    assert report.result(OutlierResult).is_drift is None  # no complete rows
    assert report.result(PredictionDriftResult) is None
    json.dumps(report.to_dict(), allow_nan=False)


def test_constant_and_all_null_reference_columns_do_not_raise():
    specs = (
        FeatureSpec("const", FeatureKind.NUMERIC),
        FeatureSpec("null_num", FeatureKind.NUMERIC, nullable=True),
        FeatureSpec("one_cat", FeatureKind.CATEGORICAL),
        FeatureSpec("null_cat", FeatureKind.CATEGORICAL, nullable=True),
        FeatureSpec("x", FeatureKind.NUMERIC),
    )
    rng = np.random.default_rng(0)
    n = 300

    def table(m, const=1.0):
        return {
            "const": np.full(m, const),
            "null_num": np.full(m, np.nan),
            "one_cat": np.array(["a"] * m, dtype=object),
            "null_cat": np.full(m, None, dtype=object),
            "x": rng.normal(size=m),
        }

    prof = ReferenceProfile.fit(specs, table(n))
    same = run_drift_check(prof, table(100), None, FAST)
    assert same.features.get("const").p_value == 1.0 and not same.features.get("const").is_drift
    assert not same.features.get("null_num").tested
    assert same.dataset_drift is False
    changed = run_drift_check(prof, table(100, const=2.0), None, FAST)
    assert changed.features.get("const").is_drift  # effect in absolute units when sd = IQR = 0
    assert changed.result(DataQualityResult).get("const", "out_of_range").failed
    for r in (same, changed):
        json.dumps(r.to_dict(), allow_nan=False)


def test_window_missing_a_feature_column_raises_naming_it_and_the_unknown_column(profile, rng):
    table = syn.make_table(300, rng)
    table["num_skw"] = table.pop("num_skew")  # a misspelt column
    with pytest.raises(MissingColumnsError, match="missing_column") as raised:
        run_drift_check(profile, table, None, FAST)
    assert raised.value.missing == ("num_skew",) and raised.value.unknown == ("num_skw",)


def test_metrics_cover_the_published_names_with_feature_dimensions(profile, rng):
    table = syn.make_table(2000, rng)
    preds = syn.make_predictions(table, rng)
    labels = LabeledPredictions(syn.make_ground_truth(preds, rng)[:500], preds.take(np.arange(500)))
    report = run_drift_check(profile, table, preds, FAST, labels=labels)
    metrics = report.metrics()
    names = {m[0] for m in metrics}
    assert names <= set(published_metric_names())
    for name in (
        M.DATASET_DRIFT,
        M.DRIFT_SHARE,
        M.MMD_P_VALUE,
        M.PCA_RECONSTRUCTION_RATIO,
        M.PREDICTION_DRIFT,
        M.OUTLIER_RATE,
        M.MISSING_RATE,
        M.OUT_OF_RANGE_RATE,
        M.UNSEEN_CATEGORY_RATE,
        M.WINDOW_ROWS,
        M.DATA_QUALITY_FAILURES,
        M.LABELED_ROWS,
        M.ACCURACY,
        M.F1,
        M.AUC,
    ):
        assert name in names, name
    assert M.MAE not in names
    per_feature = {(m[0], m[2]) for m in metrics if m[2] is not None}
    assert {m[0] for m in metrics if m[2] is not None} == feature_metric_names()
    assert {(M.FEATURE_P_VALUE, f.name) for f in profile.features} <= per_feature
    assert dict((m[0], m[1]) for m in metrics if m[2] is None)[M.LABELED_ROWS] == 500
    assert dict((m[0], m[1]) for m in metrics if m[2] is None)[M.WINDOW_ROWS] == 2000
    assert 0.6 < report.result(PerformanceResult).accuracy < 0.95 and 0.6 < report.result(PerformanceResult).auc < 0.95


def test_without_labels_no_performance_metrics_are_published(profile, rng):
    table = syn.make_table(300, rng)
    report = run_drift_check(profile, table, syn.make_predictions(table, rng), FAST)
    assert report.result(PerformanceResult) is None
    assert not {M.ACCURACY, M.F1, M.AUC, M.LABELED_ROWS} & {m[0] for m in report.metrics()}


def test_regression_labels_publish_mae_and_rmse(regression_profile, rng):
    from monitoring.types import Task

    table = syn.make_table(300, rng)
    preds = syn.make_predictions(table, rng, Task.REGRESSION)
    labels = LabeledPredictions(syn.make_ground_truth(preds, rng), preds)
    names = {m[0] for m in run_drift_check(regression_profile, table, preds, FAST, labels).metrics()}
    assert {M.MAE, M.RMSE, M.LABELED_ROWS} <= names and M.ACCURACY not in names


def test_report_to_dict_is_strict_json_with_one_entry_per_check(profile, rng):
    table = syn.make_table(1000, rng, new_category=("cat_color", "purple", 0.1))
    table["num_a"][:1000] = np.nan  # NaN statistics must serialise as null
    preds = syn.make_predictions(table, rng)
    report = run_drift_check(profile, table, preds, FAST, LabeledPredictions(syn.make_ground_truth(preds, rng), preds))
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["features"]["results"][0]["p_value"] is None
    assert set(d) == REPORT_KEYS | {c.name for c in DEFAULT_CHECKS}
    assert d["dataset_drift"] is True and d["data_quality"]["n_failed"] >= 1
    assert d["metrics"] == [list(m) for m in report.metrics()]


def test_drift_config_validates():
    with pytest.raises(ValueError):
        DriftConfig(correction="holm")
    with pytest.raises(ValueError):
        DriftConfig(alpha=0.0)


def test_drift_share_threshold_sets_the_dataset_verdict(profile, rng):
    table = syn.make_table(3000, rng, mean_shift={"num_skew": 0.3})  # independent of the other features
    any_feature = run_drift_check(profile, table, None, DriftConfig(mmd_enabled=False))
    half = run_drift_check(profile, table, None, DriftConfig(mmd_enabled=False, drift_share_threshold=0.5))
    assert "num_skew" in any_feature.drifted_features
    assert any_feature.drift_share == half.drift_share and 0 < any_feature.drift_share < 0.5
    assert any_feature.dataset_drift is True and half.dataset_drift is False


def test_histograms_share_bins_and_count_every_row(profile, rng):
    table = syn.make_table(1000, rng)
    report = run_drift_check(profile, table, None, FAST)
    assert [h.feature for h in report.histograms] == profile.feature_names
    for h in report.histograms:
        assert len(h.labels) == len(h.reference_counts) == len(h.target_counts)
        assert sum(h.target_counts) == 1000
        assert sum(h.reference_counts) == profile.n_rows
    num = report.histograms[0]
    assert num.kind == "numeric" and len(num.labels) == 20 + 3


def test_wrong_typed_values_and_a_one_row_reference_do_not_raise():
    specs = (
        FeatureSpec("x", FeatureKind.NUMERIC),
        FeatureSpec("c", FeatureKind.CATEGORICAL),
        FeatureSpec("b", FeatureKind.BOOLEAN),
    )
    prof = ReferenceProfile.fit(specs, {"x": np.array([1.0]), "c": np.array(["a"], dtype=object), "b": np.array([1.0])})
    window = {
        "x": np.array([np.inf, 2.0, np.nan]),
        "c": np.array([3, "a", None], dtype=object),
        "b": np.array([2.0, 0.0, np.nan]),
    }
    report = run_drift_check(prof, window, None, FAST)
    assert report.window_rows == 3
    assert report.result(MMDResult) is None and any("too small" in n for n in report.notes)
    assert report.result(DataQualityResult).wrong_type_rate == pytest.approx(1 / 3)
    assert sum(report.histograms[1].target_counts) == 2  # the wrong-typed category is not binned
    json.dumps(report.to_dict(), allow_nan=False)


@dataclass(frozen=True)
class SmallWindowResult:
    n_rows: int
    minimum: int

    def verdicts(self) -> list[Verdict]:
        return [Verdict("small window", self.n_rows, None, self.minimum, self.n_rows < self.minimum)]

    def metrics(self) -> list[Metric]:
        return [("SmallWindow", float(self.n_rows < self.minimum), None)]

    def to_dict(self) -> dict:
        return {"n_rows": self.n_rows, "minimum": self.minimum}


class SmallWindowCheck(Check):
    """A check written outside the library: windows under 1% of the reference's rows."""

    name = "small_window"
    metric_names = ("SmallWindow",)

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum

    @classmethod
    def fit(cls, reference: Reference) -> SmallWindowCheck:
        return cls(reference.profile.n_rows // 100)

    def run(self, window: Window) -> SmallWindowResult:
        return SmallWindowResult(window.n_rows, self.minimum)


def test_a_new_check_plugs_into_the_json_verdicts_alarms_metrics_and_html(profile, rng):
    checks = (*DEFAULT_CHECKS, SmallWindowCheck)
    report = DriftChecker(profile, FAST, checks).check(syn.make_table(50, rng))
    assert report.to_dict()["small_window"] == {"n_rows": 50, "minimum": 100}
    assert "small window" in report.alarms
    assert ("SmallWindow", 1.0, None) in report.metrics()
    assert "SmallWindow" in published_metric_names(checks) and "SmallWindow" not in published_metric_names()
    assert "small window" in render_html(report, profile)
    assert DriftChecker(profile, FAST, checks).check(syn.make_table(200, rng)).alarms == []


def test_a_check_that_does_not_apply_is_null_in_the_report(profile, rng):
    report = run_drift_check(profile, syn.make_table(300, rng), None, DriftConfig(mmd_enabled=False))
    assert report.result(MMDResult) is None and report.to_dict()["mmd"] is None
    assert not any(v.check.startswith("MMD") for v in report.verdicts())


def test_check_names_must_be_unique_and_not_a_report_field(profile):
    with pytest.raises(ValueError):
        DriftChecker(profile, FAST, (*DEFAULT_CHECKS, FeatureDriftCheck))

    class Metrics(SmallWindowCheck):
        name = "metrics"

    with pytest.raises(ValueError):
        DriftChecker(profile, FAST, (Metrics,))
