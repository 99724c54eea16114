"""run_drift_check: report structure, metrics, JSON round trip and degenerate windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from devtools import synthetic as syn
from monitoring import metric_names as M
from monitoring.check import DriftConfig, DriftReport, run_drift_check
from monitoring.performance import LabeledPredictions
from monitoring.profile import PredictionColumns, ReferenceProfile
from monitoring.types import FeatureKind, FeatureSpec

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
    assert report.features is None and report.mmd is None
    assert report.metrics() == [(M.WINDOW_ROWS, 0.0, None)]
    json.dumps(report.to_dict(), allow_nan=False)


def test_single_row_window_runs_every_check(profile, rng):
    table = syn.make_table(1, rng)
    report = run_drift_check(profile, table, syn.make_predictions(table, rng), FAST)
    assert report.window_rows == 1
    assert report.dataset_drift in (True, False)
    assert report.mmd.is_drift is None  # needs two rows
    assert report.outliers.n_target == 1
    json.dumps(report.to_dict(), allow_nan=False)


def test_all_null_window_columns_do_not_raise_and_are_reported_as_missing(profile, rng):
    table = syn.make_table(500, rng)
    table["num_a"] = np.full(500, np.nan)
    table["cat_color"] = np.full(500, None, dtype=object)
    table["flag"] = np.full(500, np.nan)
    report = run_drift_check(profile, table, None, FAST)
    ks = report.features.get("num_a")
    assert not ks.tested and ks.note == "no window values" and not ks.is_drift
    assert report.data_quality.get("num_a", "missing_rate").failed
    assert report.features.get("cat_color").is_drift  # null is a level of the chi-squared test
    assert report.features.n_tested == len(profile.features) - 1
    assert report.prediction_drift is None
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
    assert changed.data_quality.get("const", "out_of_range").failed
    for r in (same, changed):
        json.dumps(r.to_dict(), allow_nan=False)


def test_window_missing_a_feature_column_treats_it_as_null_with_a_note(profile, rng):
    table = syn.make_table(300, rng)
    del table["num_skew"]
    report = run_drift_check(profile, table, None, FAST)
    assert any("num_skew" in n for n in report.notes)
    assert report.data_quality.get("num_skew", "missing_rate").share == 1.0


def test_metrics_cover_the_published_names_with_feature_dimensions(profile, rng):
    table = syn.make_table(2000, rng)
    preds = syn.make_predictions(table, rng)
    labels = LabeledPredictions(syn.make_ground_truth(preds, rng)[:500], preds.take(np.arange(500)))
    report = run_drift_check(profile, table, preds, FAST, labels=labels)
    metrics = report.metrics()
    names = {m[0] for m in metrics}
    assert names <= set(M.ALL_METRICS)
    for name in (M.DATASET_DRIFT, M.DRIFT_SHARE, M.MMD_P_VALUE, M.PCA_RECONSTRUCTION_RATIO, M.PREDICTION_DRIFT,
                 M.OUTLIER_RATE, M.MISSING_RATE, M.OUT_OF_RANGE_RATE, M.UNSEEN_CATEGORY_RATE, M.WINDOW_ROWS,
                 M.DATA_QUALITY_FAILURES, M.LABELED_ROWS, M.ACCURACY, M.F1, M.AUC):
        assert name in names, name
    assert M.MAE not in names
    per_feature = {(m[0], m[2]) for m in metrics if m[2] is not None}
    assert {m[0] for m in metrics if m[2] is not None} == M.PER_FEATURE_METRICS
    assert {(M.FEATURE_P_VALUE, f.name) for f in profile.features} <= per_feature
    assert dict((m[0], m[1]) for m in metrics if m[2] is None)[M.LABELED_ROWS] == 500
    assert dict((m[0], m[1]) for m in metrics if m[2] is None)[M.WINDOW_ROWS] == 2000
    assert 0.6 < report.performance.accuracy < 0.95 and 0.6 < report.performance.auc < 0.95


def test_without_labels_no_performance_metrics_are_published(profile, rng):
    table = syn.make_table(300, rng)
    report = run_drift_check(profile, table, syn.make_predictions(table, rng), FAST)
    assert report.performance is None
    assert not {M.ACCURACY, M.F1, M.AUC, M.LABELED_ROWS} & {m[0] for m in report.metrics()}


def test_regression_labels_publish_mae_and_rmse(regression_profile, rng):
    from monitoring.types import Task

    table = syn.make_table(300, rng)
    preds = syn.make_predictions(table, rng, Task.REGRESSION)
    labels = LabeledPredictions(syn.make_ground_truth(preds, rng), preds)
    names = {m[0] for m in run_drift_check(regression_profile, table, preds, FAST, labels).metrics()}
    assert {M.MAE, M.RMSE, M.LABELED_ROWS} <= names and M.ACCURACY not in names


def test_report_to_dict_is_strict_json_and_round_trips(profile, rng):
    table = syn.make_table(1000, rng, new_category=("cat_color", "purple", 0.1))
    table["num_a"][:1000] = np.nan  # NaN statistics must serialise as null
    preds = syn.make_predictions(table, rng)
    report = run_drift_check(profile, table, preds, FAST, LabeledPredictions(syn.make_ground_truth(preds, rng), preds))
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["features"]["results"][0]["p_value"] is None
    restored = DriftReport.from_dict(d)
    assert restored.to_dict() == d
    assert restored.metrics() == report.metrics()


def test_drift_config_validates_and_round_trips():
    with pytest.raises(ValueError):
        DriftConfig(correction="holm")
    with pytest.raises(ValueError):
        DriftConfig(alpha=0.0)
    cfg = DriftConfig(correction="fdr", mmd_pca_components=5, seed=3)
    assert DriftConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_drift_share_threshold_sets_the_dataset_verdict(profile, rng):
    table = syn.make_table(3000, rng, mean_shift={"num_a": 0.3})
    any_feature = run_drift_check(profile, table, None, DriftConfig(mmd_enabled=False))
    half = run_drift_check(profile, table, None, DriftConfig(mmd_enabled=False, drift_share_threshold=0.5))
    assert any_feature.drift_share == half.drift_share == pytest.approx(1 / 8)
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
    assert report.mmd is None and any("too small" in n for n in report.notes)
    assert report.data_quality.wrong_type_rate == pytest.approx(1 / 3)
    assert sum(report.histograms[1].target_counts) == 2  # the wrong-typed category is not binned
    json.dumps(report.to_dict(), allow_nan=False)
