"""One cause, one finding: the report leads with the root cause, names new values with their counts,
and missing values do not count as extreme points for the outlier and PCA checks."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from devtools import synthetic as syn
from monitoring import DriftChecker, DriftConfig
from monitoring.expectations import UNSEEN_CATEGORY, DataQualityResult, check_expectations
from monitoring.html_report import render_html
from monitoring.multivariate import MMDResult, PCAReconstruction, ReconstructionResult
from monitoring.outliers import MahalanobisOutlierDetector, OutlierResult

WINDOW = 10_000


@pytest.fixture(scope="module")
def checker(profile):
    return DriftChecker(profile, DriftConfig(mmd_enabled=False))


def _check(checker, rng, n=WINDOW, **kw):
    table = syn.make_table(n, rng, **kw)
    return checker.check(table, syn.make_predictions(table, rng)), table


def test_nulls_rising_in_two_features_is_one_cause_named_as_missingness(checker, profile, rng):
    # num_a is never null in the reference, cat_color 2%: both jump to 25%
    report, table = _check(checker, rng, missing={"num_a": 0.25, "cat_color": 0.25})
    assert re.fullmatch(r"num_a missing in 2[4-6]% of rows, reference 0%", report.root_cause)
    assert re.fullmatch(r"cat_color missing in 2[4-6]% of rows, reference 2(\.\d)?%", report.findings[1].text)
    # the missingness leads; the outlier, PCA and feature verdicts do not fire for it (the model's
    # outputs and its estimated accuracy may move: it sees imputed values, a real consequence reported after the cause)
    assert [f.check for f in report.findings[:2]] == ["data_quality", "data_quality"]
    assert {f.check for f in report.findings[2:]} <= {"prediction_drift", "estimated_performance"}
    assert report.result(OutlierResult).is_drift is False
    assert report.result(ReconstructionResult).is_drift is False
    assert report.drifted_features == []
    assert report.result(OutlierResult).rate < 0.02
    # the same window with nulls encoded as extreme points (imputed + missing indicators, all rows) fires both
    reference = checker.reference
    with_nulls = reference.encoder.transform(table)
    assert MahalanobisOutlierDetector(reference.encoded_sample).predict(with_nulls).is_drift
    assert PCAReconstruction(reference.encoded_sample).predict(with_nulls).is_drift


def test_root_cause_leads_the_json_the_html_and_is_none_without_findings(checker, profile, rng):
    quiet, _ = _check(checker, rng)
    assert quiet.root_cause is None and quiet.findings == [] and quiet.to_dict()["root_cause"] is None
    report, _ = _check(checker, rng, missing={"num_a": 0.25})
    assert report.summary.startswith(report.root_cause)
    document = json.loads(json.dumps(report.to_dict()))
    assert document["root_cause"] == report.root_cause and document["findings"][0] == report.root_cause
    html = render_html(report, profile)
    assert html.index("Root cause:") < html.index("<h2>Checks</h2>")
    assert "num_a missing in 25% of rows" in html


def test_a_drifted_feature_is_the_root_cause_when_the_data_is_clean(checker, rng):
    report, _ = _check(checker, rng, mean_shift={"num_skew": 0.5})
    assert report.root_cause.startswith("num_skew shifted: effect")


def test_new_values_are_named_with_counts_in_json_html_and_verdicts(checker, profile, rng):
    report, table = _check(checker, rng, new_category=("cat_region", "r99", 0.05))
    expected = int(np.sum(table["cat_region"] == "r99"))
    assert report.new_values == {"cat_region": {"r99": expected}}
    assert report.to_dict()["new_values"] == {"cat_region": {"r99": expected}}
    assert f"'r99' in {expected} rows" in report.root_cause
    html = render_html(report, profile)
    assert "Values never seen in training" in html and f'<td>r99</td><td class="num">{expected}</td>' in html
    assert any("r99" in v.detail for v in report.verdicts() if v.check == f"{UNSEEN_CATEGORY} cat_region")


def test_a_new_value_in_enough_rows_is_flagged_whatever_its_share(profile, rng):
    table = syn.make_table(WINDOW, rng)
    table["cat_color"] = table["cat_color"].copy()
    table["cat_color"][:30] = "purple"  # 0.3% of the window: under the 1% share threshold
    flagged = check_expectations(profile, table, min_new_value_rows=20).get("cat_color", UNSEEN_CATEGORY)
    assert flagged.share < 0.01 and flagged.failed and flagged.new_values == (("purple", 30),)
    quiet = check_expectations(profile, table, min_new_value_rows=50).get("cat_color", UNSEEN_CATEGORY)
    assert not quiet.failed and quiet.new_values == (("purple", 30),)


def test_quiet_windows_name_no_new_values(profile, rng):
    result = check_expectations(profile, syn.make_table(WINDOW, rng))
    assert result.new_values == {} and isinstance(result, DataQualityResult)


def test_mmd_is_a_diagnostic_never_an_alarm_or_a_finding(profile, rng):
    checker = DriftChecker(profile, DriftConfig(mmd_permutations=50, mmd_max_rows=500))
    table = syn.make_table(2000, rng, correlation=-0.6)  # MMD sees this (test_monitoring_detection)
    report = checker.check(table, syn.make_predictions(table, rng))
    mmd = report.result(MMDResult)
    assert mmd.is_drift is True
    row = next(v for v in report.verdicts() if v.check.startswith("MMD"))
    assert row.verdict is None and "diagnostic only: p < 0.05" in row.detail
    assert not any(a.startswith("MMD") for a in report.alarms)
    assert all(f.check != "mmd" for f in report.findings)
