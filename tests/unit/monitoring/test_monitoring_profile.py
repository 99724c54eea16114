"""ReferenceProfile: statistics, bounded joint sample, degenerate columns."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.profile import DEFAULT_QUANTILES, PredictionColumns, ReferenceProfile
from monitoring.types import FeatureKind, FeatureSpec, Outputs, Task


def test_profile_statistics_match_numpy(profile):
    fp = profile["num_b"]
    values = profile.sample["num_b"]  # 10k rows: the sample is the whole reference
    finite = values[~np.isnan(values)]
    assert profile.sample_rows == profile.n_rows == 10_000
    assert fp.missing_rate == pytest.approx(np.isnan(values).mean())
    assert 0.08 < fp.missing_rate < 0.12
    assert fp.quantiles == pytest.approx(tuple(np.quantile(finite, DEFAULT_QUANTILES)))
    assert fp.mean == pytest.approx(finite.mean())
    assert fp.sd == pytest.approx(finite.std(ddof=1))
    assert fp.quantile(0.5) == pytest.approx(np.median(finite))


def test_categorical_profile_has_frequencies_most_frequent_first_and_nulls_counted(profile):
    fp = profile["cat_color"]
    freqs = fp.category_frequencies
    assert list(freqs)[0] == "red"
    assert sum(freqs.values()) == pytest.approx(1.0)
    assert 0.36 < freqs["red"] < 0.44
    assert fp.n_missing == sum(v is None for v in profile.sample["cat_color"])
    assert set(fp.known_categories) == {"red", "green", "blue", "black", "white"}


def test_boolean_profile_counts_zero_one_levels(profile):
    fp = profile["flag"]
    assert set(fp.category_counts) == {"0", "1"}
    assert 0.25 < fp.category_frequencies["1"] < 0.35
    assert fp.mean == pytest.approx(fp.category_frequencies["1"])


def test_output_profile_records_task_classes_and_label_counts(profile):
    assert profile.outputs.task is Task.CLASSIFICATION
    assert profile.outputs.classes == ("no", "yes")
    assert sum(profile.outputs.label_counts.values()) == 10_000
    assert profile.sample_predictions.probabilities.shape == (10_000, 2)


def test_sample_is_bounded_and_keeps_rows_together():
    n = 3000
    x = np.arange(n, dtype=np.float64)
    table = {"x": x, "x_str": np.array([str(int(v)) for v in x], dtype=object)}
    specs = (FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("x_str", FeatureKind.CATEGORICAL))
    preds = PredictionColumns(values=x * 2)
    prof = ReferenceProfile.fit(specs, table, preds, max_sample_rows=500, seed=3)
    assert prof.sample_rows == 500 and prof.n_rows == n
    assert [str(int(v)) for v in prof.sample["x"]] == list(prof.sample["x_str"])
    assert np.array_equal(prof.sample_predictions.values, prof.sample["x"] * 2)
    assert prof["x"].n_rows == n  # statistics use every row
    assert prof.outputs.task is Task.REGRESSION


def test_degenerate_columns_do_not_raise():
    specs = (
        FeatureSpec("const", FeatureKind.NUMERIC),
        FeatureSpec("empty", FeatureKind.NUMERIC, nullable=True),
        FeatureSpec("empty_cat", FeatureKind.CATEGORICAL, nullable=True),
        FeatureSpec("empty_bool", FeatureKind.BOOLEAN, nullable=True),
    )
    table = {
        "const": np.full(50, 7.0),
        "empty": np.full(50, np.nan),
        "empty_cat": np.full(50, None, dtype=object),
        "empty_bool": np.full(50, np.nan),
    }
    prof = ReferenceProfile.fit(specs, table)
    assert prof["const"].sd == 0.0 and prof["const"].scale == 1.0
    assert prof["empty"].missing_rate == 1.0
    assert np.isnan(prof["empty"].mean) and len(prof["empty"].quantiles) == len(DEFAULT_QUANTILES)
    assert prof["empty_cat"].category_counts == {} and prof["empty_bool"].n_valid == 0


def test_fit_rejects_a_table_without_the_schema_features_or_misaligned_predictions():
    specs = (FeatureSpec("a", FeatureKind.NUMERIC),)
    with pytest.raises(KeyError):
        ReferenceProfile.fit(specs, {"b": np.zeros(3)})
    with pytest.raises(ValueError):
        ReferenceProfile.fit(specs, {"a": np.zeros(3)}, PredictionColumns(values=np.zeros(4)))


def test_classes_come_from_the_output_spec_in_probability_order():
    specs = (FeatureSpec("a", FeatureKind.NUMERIC),)
    preds = PredictionColumns(labels=np.array(["z", "a", "z"], dtype=object), probabilities=np.eye(2)[[0, 1, 0]])
    prof = ReferenceProfile.fit(specs, {"a": np.zeros(3)}, preds, outputs=Outputs(Task.CLASSIFICATION, ("z", "a")))
    assert prof.outputs.classes == ("z", "a")
