"""Past the sample cap, the Athena path's drift tests on counts take the exact counts over every row: the
categorical features' chi-squared and Jensen-Shannon tests (category counts) and a classifier's predicted-label
test (predicted-class counts). On moto: captures from the real inference handler, the Athena results the drift
check's own SQL run on DuckDB over the same rows as hour-partitioned Parquet (tests/athena_support.py).

What it proves: with ``sample_cap`` 100 over a 3,000-row window, each of those tests through Athena gives
exactly what the Lambda path gives when it reads every row (``sample_cap`` above the window: its sample is
the window), statistic, p-value, effect and gate; and so do the report's histograms on the reference's bins
(numeric features: one query; categorical: the category counts), where the Lambda path on a 100-row sample
does not."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from driftcheck.drift_service import DriftService
from modelserve.schema import FeatureKind
from monitoring.prediction_drift import PredictionDriftResult
from monitoring.univariate import UnivariateResult
from tests.functional.test_drift_athena import BUCKET, load, queue_the_windows_queries, send
from tests.functional.test_drift_athena import aws as aws_fixture  # noqa: F401 - used by pytestmark
from tests.functional.test_drift_check_handler import scheduled_event

# slow: hundreds of real requests, three drift checks; aws_fixture: moto with Athena speaking its JSON protocol
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_fixture")]


def lambda_path(drift, sample_cap: int) -> DriftService:
    """The same check without Athena, reading the window from the capture objects in S3."""
    settings = drift.drift.model_copy(update={"sample_cap": sample_cap})
    return DriftService(drift.bundle, settings, drift.service.s3, drift.service.cloudwatch, BUCKET)


def outcome(result: UnivariateResult) -> tuple[float, ...]:
    """What a test found: rows tested, statistic, p-values, effect."""
    return (result.n_target, result.statistic, result.p_value, result.p_value_corrected, result.effect_size)


def predicted_label_test(report) -> UnivariateResult:
    outputs = report.result(PredictionDriftResult)
    return next(r for r in outputs.results if r.test == "chi2")


def test_past_the_sample_cap_the_count_tests_on_athena_equal_the_lambda_path_reading_every_row(
    load_inference, monkeypatch, sample_bundle, lambda_context, tmp_path
) -> None:
    inference, drift = load(load_inference, monkeypatch, sample_cap=100)
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    rng = random.Random(21)
    send(inference, lambda_context, rows, 150, rng)
    send(inference, lambda_context, rows, 150, rng, rare_rows=40, shift=True)  # 3,000 rows, a new island in 40
    at = datetime.now(UTC) + timedelta(seconds=1)
    queue_the_windows_queries(drift, tmp_path, at)

    athena = drift.service.run(scheduled_event(at))
    every_row = lambda_path(drift, 10_000).run(scheduled_event(at))
    sampled = lambda_path(drift, 100).run(scheduled_event(at))

    assert athena.summary(BUCKET)["read_by"] == "athena" and athena.window.rows_seen == every_row.window.rows_seen == 3000
    assert len(athena.window.rows) <= 100 and len(every_row.window.rows) == 3000
    categorical = [f.name for f in sample_bundle.manifest.features if f.kind is FeatureKind.CATEGORICAL]
    assert categorical
    for name in categorical:
        on_athena, exact = athena.report.features.get(name), every_row.report.features.get(name)
        assert outcome(on_athena) == pytest.approx(outcome(exact), rel=1e-9) and on_athena.n_target > 2900
        assert on_athena.effect_threshold == pytest.approx(exact.effect_threshold) and on_athena.is_drift == exact.is_drift
    assert sampled.report.features.get("island").n_target <= 100  # the Lambda path's sample: a test on 100 rows
    label_athena, label_exact = predicted_label_test(athena.report), predicted_label_test(every_row.report)
    assert label_athena.n_target == 3000
    assert outcome(label_athena) == pytest.approx(outcome(label_exact), rel=1e-9)
    assert predicted_label_test(sampled.report).n_target <= 100
    # the scored requests next to the refused ones (RejectRate's denominator): counted, not scaled from the sample
    assert athena.rejects.scored_requests == every_row.rejects.scored_requests == 300
    # the report's histograms on the reference's bins: every feature's, exact
    assert [h.to_dict() for h in athena.report.histograms] == [h.to_dict() for h in every_row.report.histograms]
    assert sum(athena.report.histograms[0].target_counts) == 3000
    assert sum(sampled.report.histograms[0].target_counts) <= 100
