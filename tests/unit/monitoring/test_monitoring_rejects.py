"""Refused requests in the drift report: counted by reason and field, the reject share in the
data-quality check, the root cause when they are the cause, and the false-alarm rate of the verdict."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from devtools import synthetic as syn
from driftcheck.drift_service import drift_config
from modelserve.settings import DriftSettings
from monitoring import DriftChecker, DriftConfig, RejectCounts
from monitoring import metric_names as M
from monitoring.expectations import UNSEEN_CATEGORY, DataQualityResult
from monitoring.html_report import render_html
from monitoring.profile import ReferenceProfile

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from bench_reject_rate import BROKEN_FIELD, rates  # noqa: E402

BROKEN = RejectCounts(
    rejected_requests=620,
    scored_requests=380,
    by_reason={"null_not_allowed": 620},
    by_field={"body_mass_g": {"null_not_allowed": 620}, "island": {"unseen_category": 12}},
    rejected_rows=1240,
)


def _metrics(report) -> dict[str, float]:
    return {name: value for name, value, feature in report.metrics() if feature is None}


def test_every_request_refused_is_not_an_empty_window(profile: ReferenceProfile) -> None:
    everything = RejectCounts(500, 0, {"null_not_allowed": 500}, {"num_a": {"null_not_allowed": 500}}, rejected_rows=500)
    report = DriftChecker(profile).check({}, rejects=everything)
    assert report.window_rows == 0 and report.dataset_drift is None
    assert report.root_cause == "num_a null in 100% of rejected requests; 100% of requests rejected (500 of 500)"
    assert report.rejects is not None and report.rejects["by_field"] == {"num_a": {"null_not_allowed": 500}} and report.rejects["failed"]
    metrics = _metrics(report)
    assert metrics[M.REJECT_RATE] == 1.0 and metrics[M.REJECTED_REQUESTS] == 500 and metrics[M.DATA_QUALITY_FAILURES] == 1
    assert any("were refused by validation" in n for n in report.notes) and not any("empty window" in n for n in report.notes)
    assert "Rejected requests" in render_html(report, profile)
    assert report.to_dict()["rejects"]["requests"] == 500


def test_rejects_lead_the_findings_when_they_are_the_cause(profile: ReferenceProfile, rng: np.random.Generator) -> None:
    window = syn.make_table(1_000, rng, missing={"num_b": 0.4})
    report = DriftChecker(profile).check(window, rejects=BROKEN)
    assert report.root_cause == "body_mass_g null in 100% of rejected requests; 62% of requests rejected (620 of 1000)"
    assert len(report.findings) > 1  # the scored rows' own finding follows
    quality = report.result(DataQualityResult)
    assert quality is not None and quality.reject is not None and quality.reject.failed


def test_reject_share_under_the_threshold_or_the_minimum_requests_is_no_finding(
    profile: ReferenceProfile, rng: np.random.Generator
) -> None:
    window = syn.make_table(500, rng)
    healthy = DriftChecker(profile).check(window, rejects=RejectCounts(20, 980, {"wrong_type": 20}))
    assert healthy.root_cause is None and _metrics(healthy)[M.REJECT_RATE] == pytest.approx(0.02)
    one_of_three = DriftChecker(profile).check(window, rejects=RejectCounts(1, 2, {"wrong_type": 1}))
    assert one_of_three.root_cause is None and _metrics(one_of_three)[M.REJECT_RATE] == 0.0
    (verdict,) = [v for v in one_of_three.verdicts() if v.check.startswith("reject_rate")]
    assert verdict.verdict is None and verdict.statistic == pytest.approx(1 / 3)  # told, not judged
    # the settings reach the verdict: a lower minimum judges the same three requests
    judged = DriftChecker(profile, DriftConfig(reject_min_requests=3)).check(window, rejects=RejectCounts(1, 2, {"wrong_type": 1}))
    assert judged.root_cause is not None and "33% of requests rejected" in judged.root_cause


def test_without_reject_counts_nothing_about_rejects_is_published(profile: ReferenceProfile, rng: np.random.Generator) -> None:
    report = DriftChecker(profile).check(syn.make_table(500, rng))
    assert report.rejects is None and M.REJECT_RATE not in _metrics(report)
    empty = DriftChecker(profile).check({})
    assert [name for name, _, _ in empty.metrics()] == [M.WINDOW_ROWS]


@pytest.mark.parametrize("n", [1_000, 10_000])
def test_reject_false_alarm_rate_at_a_healthy_baseline_is_within_alpha(n: int) -> None:
    """A healthy 2% of refused requests (random reasons and fields) over 300 windows: the verdict fires
    in at most alpha + 3 binomial sd of them (alpha 0.05, the drift check's)."""
    windows, alpha = 300, 0.05
    fired, _ = rates(n, baseline=0.02, broken=0.0, windows=windows, seed=n)
    assert fired <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / windows)


@pytest.mark.parametrize("n", [1_000, 10_000])
def test_a_broken_field_in_a_tenth_of_requests_is_detected_and_named(n: int) -> None:
    fired, named = rates(n, baseline=0.02, broken=0.1, windows=100, seed=n)
    assert fired >= 0.99 and named >= 0.99, BROKEN_FIELD


def test_min_new_value_rows_setting_reaches_the_check(profile: ReferenceProfile, rng: np.random.Generator) -> None:
    """DriftSettings.min_new_value_rows -> drift_config -> the unseen-category verdict: 30 rows of a new
    value in a 10,000-row window (0.3%, under the 1% share threshold)."""
    window = syn.make_table(10_000, rng)
    cat = next(f.name for f in profile.features if f.kind.value == "categorical")
    window[cat] = window[cat].copy()
    window[cat][:30] = "never-seen"

    def unseen_failed(setting: int) -> bool:
        report = DriftChecker(profile, drift_config(DriftSettings(min_new_value_rows=setting))).check(window)
        quality = report.result(DataQualityResult)
        assert quality is not None
        result = quality.get(cat, UNSEEN_CATEGORY)
        assert result is not None and result.new_values == (("never-seen", 30),)
        return result.failed

    assert unseen_failed(20) is True and unseen_failed(50) is False
