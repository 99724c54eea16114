"""Data-quality expectations against the reference profile."""

from __future__ import annotations

import math

import numpy as np
import pytest

from devtools import synthetic as syn
from monitoring.expectations import MISSING_RATE, OUT_OF_RANGE, UNSEEN_CATEGORY, WRONG_TYPE, check_expectations
from monitoring.profile import ReferenceProfile
from monitoring.types import FeatureKind, FeatureSpec

WINDOW = 10_000


def test_no_drift_window_passes_every_expectation(profile, rng):
    res = check_expectations(profile, syn.make_table(WINDOW, rng))
    assert res.passed, res.failed_checks()


def test_missing_rate_ten_to_twenty_percent_is_detected(profile, rng):
    res = check_expectations(profile, syn.make_table(WINDOW, rng, missing={"num_b": 0.2}))
    r = res.get("num_b", MISSING_RATE)
    assert r.failed
    assert r.share == pytest.approx(0.2, abs=0.015)
    assert [f.feature for f in res.failed_checks()] == ["num_b"]


def test_missing_threshold_is_reference_rate_plus_tolerance_plus_sampling_margin(profile, rng):
    p_ref = profile["num_b"].missing_rate
    res = check_expectations(profile, syn.make_table(400, rng), missing_rate_tolerance=0.05, missing_rate_z=3.0)
    assert res.get("num_b", MISSING_RATE).threshold == pytest.approx(p_ref + 0.05 + 3 * math.sqrt(p_ref * (1 - p_ref) / 400))
    res0 = check_expectations(profile, syn.make_table(400, rng), missing_rate_tolerance=0.05, missing_rate_z=0.0)
    assert res0.get("num_b", MISSING_RATE).threshold == pytest.approx(p_ref + 0.05)


def test_new_category_share_is_reported_as_unseen(profile, rng):
    res = check_expectations(profile, syn.make_table(WINDOW, rng, new_category=("cat_color", "purple", 0.1)))
    r = res.get("cat_color", UNSEEN_CATEGORY)
    assert r.failed and r.share == pytest.approx(0.1, abs=0.01)
    assert res.unseen_category_rate == r.share


def _small_profile():
    specs = (
        FeatureSpec("x", FeatureKind.NUMERIC, min=-5.0, max=5.0),
        FeatureSpec("c", FeatureKind.CATEGORICAL, categories=("a", "b", "rare")),
        FeatureSpec("f", FeatureKind.BOOLEAN),
    )
    table = {
        "x": np.linspace(0, 1, 100),
        "c": np.array(["a", "b"] * 50, dtype=object),
        "f": np.array([0.0, 1.0] * 50),
    }
    return ReferenceProfile.fit(specs, table)


def test_out_of_range_uses_the_wider_of_schema_and_reference_range():
    prof = _small_profile()
    window = {
        "x": np.array([-6.0, -4.0, 0.5, 4.9, 5.1, np.nan, 6.0, 1.0, 2.0, 3.0]),
        "c": np.array(["a"] * 10, dtype=object),
        "f": np.zeros(10),
    }
    r = check_expectations(prof, window).get("x", OUT_OF_RANGE)
    assert r.n_flagged == 3 and r.share == pytest.approx(0.3) and r.failed


def test_schema_categories_missing_from_the_reference_are_not_unseen():
    prof = _small_profile()
    window = {"x": np.zeros(4), "c": np.array(["rare", "a", "zzz", None], dtype=object), "f": np.zeros(4)}
    r = check_expectations(prof, window).get("c", UNSEEN_CATEGORY)
    assert r.n_flagged == 1 and r.share == pytest.approx(0.25)


def test_wrong_types_infinity_non_binary_boolean_and_non_string_category():
    prof = _small_profile()
    window = {
        "x": np.array([np.inf, -np.inf, 1.0, 2.0]),
        "c": np.array(["a", 3, "b", None], dtype=object),
        "f": np.array([0.0, 1.0, 2.0, np.nan]),
    }
    res = check_expectations(prof, window)
    assert res.get("x", WRONG_TYPE).n_flagged == 2
    assert res.get("c", WRONG_TYPE).n_flagged == 1
    assert res.get("f", WRONG_TYPE).n_flagged == 1
    assert res.get("f", MISSING_RATE).n_flagged == 1  # the NaN, not the 2.0
    assert res.get("x", OUT_OF_RANGE).n_flagged == 0  # infinities are wrong types, not out of range
    assert res.wrong_type_rate == pytest.approx(0.5)
    assert res.n_failed >= 3


def test_aggregates_are_the_maximum_across_features():
    prof = _small_profile()
    window = {
        "x": np.array([np.nan, 1.0, 1.0, 1.0]),
        "c": np.array([None, None, "a", "a"], dtype=object),
        "f": np.zeros(4),
    }
    res = check_expectations(prof, window)
    assert res.missing_rate == pytest.approx(0.5)
    assert res.missing_share_max == pytest.approx(0.5)
    assert res.out_of_range_rate == 0.0


def test_published_missing_rate_is_the_largest_rise_over_the_reference(profile, rng):
    # num_b is 10% null in the reference: a no-drift window has ~0 rise, 20% nulls a ~0.1 rise
    quiet = check_expectations(profile, syn.make_table(WINDOW, rng))
    assert quiet.missing_share_max == pytest.approx(0.1, abs=0.015)
    assert quiet.missing_rate < 0.015
    shifted = check_expectations(profile, syn.make_table(WINDOW, rng, missing={"num_b": 0.2}))
    assert shifted.missing_rate == pytest.approx(0.2 - profile["num_b"].missing_rate, abs=0.015)


def test_absent_feature_column_counts_as_all_missing_instead_of_raising():
    prof = _small_profile()
    res = check_expectations(prof, {"x": np.zeros(5), "f": np.zeros(5)})
    assert res.get("c", MISSING_RATE).share == 1.0 and res.get("c", MISSING_RATE).failed


def test_exact_window_counts_replace_the_samples_shares_of_missing_out_of_range_and_unseen():
    """A sample of 100 clean rows, and the whole window's exact counts (from a query engine) naming
    what the sample missed: the expectations take the window's counts, over the window's rows."""
    from monitoring.types import WindowCounts

    profile = _small_profile()
    sample = {"x": np.linspace(0, 1, 100), "c": np.array(["a", "b"] * 50, dtype=object), "f": np.array([0.0, 1.0] * 50)}
    assert check_expectations(profile, sample).passed
    counts = WindowCounts(
        rows=100_000,
        nulls={"x": 9_000, "c": 0, "f": 0},
        out_of_range={"x": 2_000},
        categories={"c": {"a": 50_000, "b": 49_975, "Atlantis": 25}},
    )
    res = check_expectations(profile, sample, counts=counts)
    missing, outside, unseen = res.get("x", MISSING_RATE), res.get("x", OUT_OF_RANGE), res.get("c", UNSEEN_CATEGORY)
    assert (missing.n_flagged, missing.n_rows, missing.share) == (9_000, 100_000, 0.09) and missing.failed
    assert (outside.n_flagged, outside.share) == (2_000, 0.02) and outside.failed
    # 25 of 100,000 rows: far under the 1% share, but at least min_new_value_rows, named exactly
    assert unseen.new_values == (("Atlantis", 25),) and unseen.n_rows == 100_000 and unseen.failed
    assert res.get("x", WRONG_TYPE).n_rows == 100  # a typed column has no wrong types to count: the sample's
    # the margin of the missing-rate gate is over the window's rows, not the sample's
    p_ref = profile["x"].missing_rate
    assert missing.threshold == pytest.approx(p_ref + 0.05 + 3 * math.sqrt(p_ref * (1 - p_ref) / 100_000))


def test_a_feature_the_counts_leave_out_is_counted_on_the_sample():
    from monitoring.types import WindowCounts

    profile = _small_profile()
    sample = {"x": np.array([np.nan] * 50 + [0.5] * 50), "c": np.array(["a", "b"] * 50, dtype=object), "f": np.array([0.0, 1.0] * 50)}
    res = check_expectations(profile, sample, counts=WindowCounts(rows=1_000_000, nulls={"c": 0}))
    assert (res.get("x", MISSING_RATE).n_flagged, res.get("x", MISSING_RATE).n_rows) == (50, 100)
    assert res.get("c", MISSING_RATE).n_rows == 1_000_000
