"""The library refuses mistakes instead of accepting them silently (data scientists call it directly)."""

from __future__ import annotations

import numpy as np
import pytest

from devtools import synthetic as syn
from monitoring import DriftChecker, DriftConfig
from monitoring.prediction_drift import PredictionDriftResult, detect_prediction_drift
from monitoring.profile import PredictionColumns, ReferenceProfile
from monitoring.types import FeatureKind, FeatureSpec, Outputs, Task

FAST = DriftConfig(mmd_permutations=20, mmd_max_rows=300)


def test_unknown_config_key_raises_naming_it():
    with pytest.raises(ValueError, match="alpah"):
        DriftConfig.from_dict({"alpah": 0.01})
    assert DriftConfig.from_dict({"alpha": 0.01}).alpha == 0.01
    assert DriftConfig.from_dict(DriftConfig(seed=3).to_dict()) == DriftConfig(seed=3)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("numeric_effect_threshold", -0.1),
        ("categorical_effect_threshold", 1.5),
        ("alpha", 0.0),
        ("outlier_rate_threshold", float("nan")),
        ("missing_rate_tolerance", -0.01),
        ("mmd_permutations", 0),
        ("min_new_value_rows", 0),
        ("reconstruction_variance", 1.2),
    ],
)
def test_out_of_range_config_value_raises_naming_the_key(key, value):
    with pytest.raises(ValueError, match=key):
        DriftConfig(**{key: value})


def test_wrongly_typed_config_value_raises_naming_the_key():
    with pytest.raises(TypeError, match="mmd_max_rows"):
        DriftConfig(mmd_max_rows=300.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="alpha"):
        DriftConfig(alpha="0.05")  # type: ignore[arg-type]


def _binary_profile(rng, n=4000, one_d=False):
    features = (FeatureSpec("x", FeatureKind.NUMERIC),)
    p = np.clip(rng.normal(0.3, 0.1, n), 0, 1)
    probabilities = p if one_d else np.c_[1 - p, p]
    labels = np.where(p > 0.5, 1, 0)
    preds = PredictionColumns(labels=labels, probabilities=probabilities)
    return ReferenceProfile.fit(features, {"x": rng.normal(size=n)}, preds, outputs=Outputs(Task.CLASSIFICATION, ("0", "1")))


def test_binary_model_tests_one_probability_column_the_positive_class():
    rng = np.random.default_rng(1)
    profile = _binary_profile(rng)
    p = np.clip(rng.normal(0.5, 0.1, 3000), 0, 1)
    result = detect_prediction_drift(profile, PredictionColumns(labels=(p > 0.5).astype(int), probabilities=np.c_[1 - p, p]))
    assert [r.feature for r in result.results] == ["predicted_label", "probability[1]"]
    assert result.get("probability[1]").is_drift


def test_one_dimensional_probabilities_are_the_positive_class_and_are_tested_against_two_columns():
    rng = np.random.default_rng(2)
    profile = _binary_profile(rng)  # the reference has two columns
    p = np.clip(rng.normal(0.5, 0.1, 3000), 0, 1)
    shifted = detect_prediction_drift(profile, PredictionColumns(probabilities=p))
    assert shifted.get("probability[1]").is_drift and shifted.notes == ()
    q = np.clip(rng.normal(0.3, 0.1, 3000), 0, 1)
    quiet = detect_prediction_drift(profile, PredictionColumns(probabilities=q))
    assert not quiet.get("probability[1]").is_drift
    # and the other way round: a 1-D reference against a two-column window
    one_d = _binary_profile(np.random.default_rng(3), one_d=True)
    assert detect_prediction_drift(one_d, PredictionColumns(probabilities=np.c_[1 - p, p])).get("probability[1]").is_drift


def test_probabilities_that_match_no_class_layout_are_a_note_not_a_silent_skip():
    rng = np.random.default_rng(4)
    profile = _binary_profile(rng)
    result = detect_prediction_drift(profile, PredictionColumns(probabilities=rng.random((100, 3))))
    assert result.results == () and "not tested" in result.notes[0]


def test_labels_are_compared_after_normalising_their_type():
    rng = np.random.default_rng(5)
    profile = _binary_profile(rng)  # reference labels are ints 0/1, classes "0"/"1"
    p = np.clip(rng.normal(0.3, 0.1, 3000), 0, 1)
    as_float = (p > 0.5).astype(np.float64)  # 0.0 / 1.0
    as_text = np.where(p > 0.5, "1", "0").astype(object)
    for labels in (as_float, as_text):
        result = detect_prediction_drift(profile, PredictionColumns(labels=labels))
        assert result.get("predicted_label").effect_size < 0.05
        assert not result.is_drift


def test_report_lists_the_drifted_features(profile, rng):
    checker = DriftChecker(profile, FAST)
    table = syn.make_table(5000, rng, mean_shift={"num_a": 0.5})
    report = checker.check(table, syn.make_predictions(table, rng))
    assert report.drifted_features == ["num_a"]
    assert report.to_dict()["drifted_features"] == ["num_a"]
    assert isinstance(report.result(PredictionDriftResult), PredictionDriftResult)
