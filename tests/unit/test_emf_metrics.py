"""The inference function's EMF lines: what CloudWatch's Embedded Metric Format specification requires,
the catalogue's units, one line per dimension set per flush, and the same content Powertools' Metrics wrote."""

from __future__ import annotations

import contextlib
import io
import json
import time
from typing import Any

import pytest
from aws_lambda_powertools.metrics import EphemeralMetrics, Metrics, MetricUnit

from modelserve import metric_catalogue as mn
from modelserve.observability import MAX_VALUES, EmfMetricHook

MODEL_DIMS = {mn.DIM_MODEL_NAME: "penguins", mn.DIM_MODEL_VERSION: "v7", mn.DIM_DEPLOYMENT: "ModelServe-penguins"}


@pytest.fixture(autouse=True)
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)


def hook() -> EmfMetricHook:
    return EmfMetricHook("ModelServing", "inference", "penguins", "v7", "ModelServe-penguins")


def printed(fn: Any) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        fn()
    return [json.loads(line) for line in out.getvalue().splitlines()]


def assert_emf(blob: dict[str, Any]) -> None:
    """The specification's root node: _aws with an epoch-ms Timestamp and its directives; every dimension a
    top-level string member, every metric a top-level member with numeric values (at most 100)."""
    aws = blob["_aws"]
    assert isinstance(aws["Timestamp"], int) and abs(aws["Timestamp"] - time.time() * 1000) < 60_000
    for directive in aws["CloudWatchMetrics"]:
        assert isinstance(directive["Namespace"], str) and directive["Namespace"]
        for dim_set in directive["Dimensions"]:
            assert 1 <= len(dim_set) <= 30 and all(isinstance(blob[d], str) for d in dim_set)
        assert 1 <= len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert metric["Unit"] == mn.CATALOGUE.unit(metric["Name"])  # the catalogue's unit, a valid EMF unit
            values = blob[metric["Name"]]
            assert isinstance(values, list) and 1 <= len(values) <= 100 and all(isinstance(v, float) for v in values)


def test_one_invocation_is_one_line_per_dimension_set_with_the_catalogue_units() -> None:
    metrics = hook()
    metrics(mn.ROWS_SCORED, 3, {})
    metrics(mn.PREDICTION_LATENCY_MS, 0.25, {})
    metrics(mn.ROWS_SCORED, 2, {})
    metrics(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: "wrong_type"})
    metrics(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: "wrong_type"})
    metrics(mn.VALIDATION_REJECTS, 1, {mn.DIM_REASON: "missing_field"})
    lines = printed(metrics.flush)
    for blob in lines:
        assert_emf(blob)
    assert len(lines) == 3  # the totals, and one line per Reason
    totals = next(b for b in lines if mn.DIM_REASON not in b)
    assert {k: totals[k] for k in MODEL_DIMS} == MODEL_DIMS
    assert totals[mn.ROWS_SCORED] == [3.0, 2.0] and totals[mn.PREDICTION_LATENCY_MS] == [0.25]
    assert totals[mn.VALIDATION_REJECTS] == [1.0, 1.0, 1.0]  # the total under the model's dimensions
    reasons = {b[mn.DIM_REASON]: b[mn.VALIDATION_REJECTS] for b in lines if mn.DIM_REASON in b}
    assert reasons == {"wrong_type": [1.0, 1.0], "missing_field": [1.0]}
    assert printed(metrics.flush) == []  # flushed: nothing left, nothing written


def test_the_lines_say_what_powertools_metrics_said() -> None:
    """The same values through Powertools' Metrics (the totals) and EphemeralMetrics (each breakdown), as the
    hook wrote them before: the same lines but for the timestamp and the breakdowns' grouping."""
    calls = [(mn.ROWS_SCORED, 4, {}), (mn.CAPTURE_ERRORS, 1, {mn.DIM_REASON: "AccessDenied"}), (mn.PREDICTION_LATENCY_MS, 0.1 + 0.2, {})]
    units = {"Count": MetricUnit.Count, "Milliseconds": MetricUnit.Milliseconds, "None": MetricUnit.NoUnit}

    def with_powertools() -> None:
        totals = Metrics(namespace="ModelServing", service="")
        totals.set_default_dimensions(**MODEL_DIMS)
        for name, value, dims in calls:
            unit = units[mn.CATALOGUE.unit(name)]
            totals.add_metric(name=name, unit=unit, value=value)
            if dims:
                breakdown = EphemeralMetrics(namespace="ModelServing", service="")
                for k, v in {**MODEL_DIMS, **dims}.items():
                    breakdown.add_dimension(name=k, value=v)
                breakdown.add_metric(name=name, unit=unit, value=value)
                breakdown.flush_metrics()
        totals.flush_metrics()
        totals.clear_metrics()
        totals.clear_default_dimensions()

    def with_hook() -> None:
        metrics = hook()
        for name, value, dims in calls:
            metrics(name, value, dims)
        metrics.flush()

    def comparable(lines: list[dict[str, Any]]) -> list[str]:
        return sorted(json.dumps({**b, "_aws": {**b["_aws"], "Timestamp": 0}}, sort_keys=True) for b in lines)

    assert comparable(printed(with_hook)) == comparable(printed(with_powertools))


def test_a_metric_reaching_100_values_is_written_at_once() -> None:
    metrics = hook()
    lines = printed(lambda: [metrics(mn.ROWS_SCORED, 1, {}) for _ in range(MAX_VALUES + 1)])
    assert len(lines) == 1 and lines[0][mn.ROWS_SCORED] == [1.0] * MAX_VALUES
    assert printed(metrics.flush)[0][mn.ROWS_SCORED] == [1.0]


def test_metrics_disabled_collect_and_write_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    metrics = hook()
    metrics(mn.ROWS_SCORED, 1, {})
    assert printed(metrics.flush) == []
