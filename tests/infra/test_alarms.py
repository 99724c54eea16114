"""cdk/alarms.py: the specs and evaluate() semantics (pure Python, no CDK). Their runbook links: tests/unit/test_docs.py."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest

from cdk.alarms import RUNBOOK_DOC, AlarmSpec, alarm_specs, evaluate, schedule_period_s
from modelserve.settings import Settings

REQUIRED = {
    "DatasetDrift", "PredictionDrift", "OutlierRate", "MissingRate", "OutOfRangeRate", "UnseenCategoryRate",
    "NoTraffic", "CaptureErrors", "DriftCheckErrors", "Api5xxRate", "ApiP99Latency", "InferenceThrottles",
}


def specs(**settings) -> dict[str, AlarmSpec]:
    return {s.id: s for s in alarm_specs(Settings(**settings), "penguins", "v1", bucket_name="my-bucket")}


def test_covers_every_required_alarm_once() -> None:
    ids = [s.id for s in alarm_specs(Settings(), "m", "v")]
    assert len(ids) == len(set(ids))
    assert set(ids) >= REQUIRED


def test_thresholds_and_namespaces_come_from_settings() -> None:
    sp = specs(outlier_rate_threshold=0.2, api_p99_latency_ms=250, metrics_namespace="Acme/Models", empty_window_alarm="ignore")
    assert sp["OutlierRate"].threshold == 0.2
    assert sp["OutlierRate"].namespace == "Acme/Models"
    assert sp["OutlierRate"].dimensions == {"ModelName": "penguins", "ModelVersion": "v1"}
    assert sp["ApiP99Latency"].threshold == 250 and sp["ApiP99Latency"].statistic == "p99"
    assert sp["ApiP99Latency"].namespace == "AWS/ApiGateway" and sp["ApiP99Latency"].dimensions == {}
    assert sp["InferenceThrottles"].namespace == "AWS/Lambda"
    assert sp["NoTraffic"].treat_missing_data == "ignore"
    assert {s.id for s in sp.values() if s.rollback} == {"Api5xxRate", "ApiP99Latency", "InferenceErrors"}


def test_descriptions_say_what_where_and_runbook() -> None:
    for s in specs().values():
        assert "s3://my-bucket/reports/model=penguins/" in s.description
        assert s.description.endswith(f"Runbook: {RUNBOOK_DOC}#{s.runbook_anchor}")
        assert re.fullmatch(r"alarm-[a-z0-9-]+", s.runbook_anchor)
        assert len(s.description) < 1024 - 64  # CloudWatch's limit, with room for a long bucket name


def test_drift_alarm_period_follows_the_schedule() -> None:
    assert specs(drift_schedule="rate(6 hours)")["DatasetDrift"].period_s == 6 * 3600
    assert schedule_period_s("rate(1 minute)") == 60
    assert schedule_period_s("rate(3 days)") == 86400  # CloudWatch's longest alarm period
    assert schedule_period_s("cron(0 * * * ? *)") == 3600


@pytest.mark.parametrize(
    "comparison, threshold, value, state",
    [
        ("GreaterThanThreshold", 0.05, 0.06, "ALARM"),
        ("GreaterThanThreshold", 0.05, 0.05, "OK"),
        ("GreaterThanOrEqualToThreshold", 1, 1, "ALARM"),
        ("GreaterThanOrEqualToThreshold", 1, 0, "OK"),
        ("LessThanThreshold", 1, 0, "ALARM"),
        ("LessThanThreshold", 1, 1, "OK"),
        ("LessThanOrEqualToThreshold", 1, 1, "ALARM"),
        ("LessThanOrEqualToThreshold", 1, 2, "OK"),
    ],
)
def test_evaluate_comparisons(comparison, threshold, value, state) -> None:
    s = replace(specs()["OutlierRate"], comparison=comparison, threshold=float(threshold))
    assert evaluate(s, value) == state


@pytest.mark.parametrize(
    "treat, state",
    [("breaching", "ALARM"), ("notBreaching", "OK"), ("ignore", "INSUFFICIENT_DATA"), ("missing", "INSUFFICIENT_DATA")],
)
def test_evaluate_missing_data(treat, state) -> None:
    s = replace(specs()["NoTraffic"], treat_missing_data=treat)
    assert evaluate(s, None) == state
    assert evaluate(s, math.nan) == state


def test_evaluate_defaults_read_like_the_demo() -> None:
    sp = specs()
    assert evaluate(sp["DatasetDrift"], 1.0) == "ALARM"
    assert evaluate(sp["DatasetDrift"], 0.0) == "OK"
    assert evaluate(sp["NoTraffic"], 0) == "ALARM"  # empty window
    assert evaluate(sp["NoTraffic"], None) == "ALARM"  # default empty_window_alarm = breaching
    assert evaluate(sp["NoTraffic"], 250) == "OK"
    assert evaluate(sp["CaptureErrors"], None) == "OK"  # no errors emitted
    assert evaluate(sp["DatasetDrift"], None) == "INSUFFICIENT_DATA"


def test_rate_alarms_ignore_windows_below_the_minimum_rows() -> None:
    sp = specs(alarm_min_window_rows=100)
    missing = sp["MissingRate"]
    assert missing.min_window_rows == 100 and sp["DatasetDrift"].min_window_rows == 0
    assert evaluate(missing, 0.5, window_rows=20) == "OK"  # 10 nulls in 20 rows: noise, not a page
    assert evaluate(missing, 0.5, window_rows=100) == "ALARM"
    assert evaluate(missing, 0.5) == "ALARM"  # window size unknown: no gate
    assert {k for k, s in sp.items() if s.min_window_rows} == {"OutlierRate", "MissingRate", "OutOfRangeRate", "UnseenCategoryRate"}
    assert all(s.min_window_rows == 0 for s in specs(alarm_min_window_rows=0).values())
