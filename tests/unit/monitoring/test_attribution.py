"""What moved the predictions (monitoring.attribution): each feature's mean |contribution|, reference vs window,
ranked by growth; a feature moved when its growth is large against the reference's total and significant."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring import DriftChecker, DriftConfig, ReferenceProfile
from monitoring.attribution import AttributionResult, compare_attributions
from monitoring.html_report import render_html
from monitoring.types import FeatureKind, FeatureSpec

FEATURES = ["a", "b", "c", "d"]
SCALES = {"a": 0.20, "b": 0.05, "c": 0.10, "d": 0.02}  # the reference's typical contribution per feature


def contributions(rows: int, seed: int, grow: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Signed contributions as an explainer gives them: centred, each feature at its own scale (times ``grow``)."""
    rng = np.random.default_rng(seed)
    grow = grow or {}
    return {name: rng.normal(0.0, SCALES[name] * grow.get(name, 1.0), rows) for name in FEATURES}


def test_the_feature_whose_contribution_grows_is_ranked_first_and_named_first() -> None:
    result = compare_attributions(contributions(100, 1), contributions(400, 2, grow={"b": 4.0}), FEATURES)
    assert [f.feature for f in result.features][0] == "b"
    assert result.moved is True and result.moved_features[0] == "b"
    finding = result.findings()[0]
    assert finding.feature == "b" and finding.text.startswith("model output moved through b: mean |contribution|")
    b = result.features[0]
    assert b.window == pytest.approx(4 * 0.05 * np.sqrt(2 / np.pi), rel=0.15)  # E|N(0, s)| = s sqrt(2/pi)


def test_windows_like_the_reference_move_nothing_at_most_about_alpha_of_the_time() -> None:
    # the reference's own noise (100 explained rows) is in Welch's test: family-wise false findings stay near alpha
    moved = [compare_attributions(contributions(100, 1000 + s), contributions(400, s), FEATURES).moved for s in range(200)]
    assert None not in moved and sum(moved) / len(moved) <= 0.08


def test_a_small_growth_under_the_threshold_is_ranked_but_not_moved() -> None:
    # d doubles, from 0.016 to 0.032: under a tenth of the reference's total (0.295); large samples, little noise
    result = compare_attributions(contributions(5000, 1), contributions(5000, 2, grow={"d": 2.0}), FEATURES)
    assert result.features[0].feature == "d" and result.features[0].p_value is not None and result.features[0].p_value < 1e-6
    assert result.features[0].change < 0.1 * result.reference_total
    assert result.moved is False


def test_too_few_explained_window_rows_rank_without_a_verdict() -> None:
    result = compare_attributions(contributions(100, 1), contributions(10, 2, grow={"b": 4.0}), FEATURES, min_rows=30)
    assert result.features[0].feature == "b"
    assert result.moved is None and all(f.moved is None and f.p_value is None for f in result.features)
    assert result.verdicts()[0].verdict is None


def test_a_feature_missing_from_the_window_explanations_is_not_tested() -> None:
    window = contributions(200, 2)
    window["c"] = np.full(200, np.nan)  # hashed or redacted at capture: no contribution recorded
    result = compare_attributions(contributions(100, 1), window, FEATURES)
    c = next(f for f in result.features if f.feature == "c")
    assert c.window_rows == 0 and c.moved is None and result.features[-1].feature == "c"


def _profile(with_contributions: bool) -> ReferenceProfile:
    rng = np.random.default_rng(0)
    specs = [FeatureSpec(name, FeatureKind.NUMERIC) for name in FEATURES]
    table = {name: rng.normal(size=300) for name in FEATURES}
    return ReferenceProfile.fit(specs, table, contributions=contributions(100, 1) if with_contributions else None)


def test_the_report_carries_the_attribution_in_its_json_and_html() -> None:
    profile = _profile(True)
    table = {name: np.random.default_rng(5).normal(size=300) for name in FEATURES}
    report = DriftChecker(profile, DriftConfig()).check(table, contributions=contributions(300, 3, grow={"a": 2.0}))
    result = report.result(AttributionResult)
    assert result is not None and result.moved_features == ["a"]
    doc = report.to_dict()["attribution"]
    assert doc["moved_features"] == ["a"] and doc["features"][0]["feature"] == "a"
    assert any(f.startswith("model output moved through a") for f in report.to_dict()["findings"])
    html = render_html(report, profile)
    section = html[html.index("What moved the predictions") :]
    assert section.index(">a</td>") < section.index(">c</td>")


def test_without_reference_or_window_explanations_the_check_is_left_out() -> None:
    table = {name: np.random.default_rng(5).normal(size=300) for name in FEATURES}
    without_reference = DriftChecker(_profile(False)).check(table, contributions=contributions(300, 3))
    without_window = DriftChecker(_profile(True)).check(table)
    for report in (without_reference, without_window):
        assert report.to_dict()["attribution"] is None and "What moved the predictions" not in render_html(report, _profile(False))
