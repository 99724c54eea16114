"""Performance against the reference, end to end on moto: predictions through the real
inference handler, labels back through /feedback, the real drift-check handler, metrics in CloudWatch
and the report in S3, read by the alarm specs the stack deploys."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdk.alarms import alarm_specs, evaluate
from devtools.local import load_handler_module
from modelserve import metric_catalogue as mn
from modelserve.settings import Settings
from monitoring import metric_names as M
from tests.support import event

# captures read back as the s3 sink files them, by event hour, at once
pytestmark = pytest.mark.capture_sink("s3")

BUCKET = "perf-test-captures"
NAMESPACE = "PerfTest"


@pytest.fixture
def handlers(aws_credentials, monkeypatch, load_inference, sample_bundle):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        inference = load_inference(capture_bucket=BUCKET, metrics_namespace=NAMESPACE)
        yield inference, load_handler_module("drift_check")


def predict_and_label(inference: Any, ctx: Any, reference: list[dict], n_requests: int, rng: random.Random, wrong_share: float) -> None:
    """Rows of the reference scored through /predict; each row's true class (or, for ``wrong_share``
    of them, another class: the world changed, P(y|X) moved) sent back through /feedback."""
    classes = sorted({r["target"] for r in reference})
    for i in range(n_requests):
        batch = [rng.choice(reference) for _ in range(10)]
        rid = f"req-{i}-{rng.random()}"
        resp = inference.handler(event("rest_v1", "POST", "/predict", {"instances": [r["inputs"] for r in batch]}, request_id=rid), ctx)
        assert resp["statusCode"] == 200, resp["body"]
        items = []
        for row, r in enumerate(batch):
            label = r["target"]
            if rng.random() < wrong_share:
                label = rng.choice([c for c in classes if c != label])
            items.append({"request_id": rid, "row": row, "label": label})
        # each batch its own request id: the feedback object's key carries it
        resp = inference.handler(event("rest_v1", "POST", "/feedback", items, request_id=f"fb-{rid}"), ctx)
        assert resp["statusCode"] == 202, resp["body"]


def metric(name: str, at: datetime, version: str) -> list[float]:
    """The main (24 h) window's series."""
    dims = [
        {"Name": mn.DIM_MODEL_NAME, "Value": "penguins"},
        {"Name": mn.DIM_MODEL_VERSION, "Value": version},
        {"Name": mn.DIM_WINDOW, "Value": "24h"},
    ]
    resp = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dims}, "Period": 60, "Stat": "Maximum"},
            }
        ],
        StartTime=at - timedelta(minutes=2),
        EndTime=at + timedelta(minutes=2),
    )
    return resp["MetricDataResults"][0]["Values"]


def run_check(drift: Any, ctx: Any) -> tuple[datetime, dict[str, Any]]:
    at = datetime.now(UTC) + timedelta(seconds=1)
    summary = drift.handler({"time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}, ctx)
    s3 = boto3.client("s3")
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key=summary["report_json"].split("/", 3)[3])["Body"].read())
    html = s3.get_object(Bucket=BUCKET, Key=summary["report_html"].split("/", 3)[3])["Body"].read().decode()
    return at, {**doc["report"], "html": html}


def alarm(alarm_id: str) -> Any:
    return next(s for s in alarm_specs(Settings(metrics_namespace=NAMESPACE), "penguins", "v") if s.id == alarm_id)


def test_labels_as_good_as_the_reference_do_not_page(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    predict_and_label(inference, lambda_context, sample_bundle.reference_rows(), 40, random.Random(1), wrong_share=0.0)
    at, report = run_check(drift, lambda_context)
    result = report["performance_drop"]
    assert result["n_labels"] == 400 and result["degraded"] is False
    assert result["reference_source"] == "holdout_refit"
    values = metric(M.PERFORMANCE_DEGRADED, at, sample_bundle.manifest.version)
    assert values == [0.0] and evaluate(alarm("PerformanceDegraded"), values[0]) == "OK"
    # labels drawn like the reference targets: no target drift either
    assert report["target_drift"]["drift"] is False and report["target_drift"]["new_classes"] == []
    assert evaluate(alarm("TargetDrift"), metric(M.TARGET_DRIFT, at, sample_bundle.manifest.version)[0]) == "OK"


def test_a_real_accuracy_drop_pages_with_the_drop_published(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    predict_and_label(inference, lambda_context, sample_bundle.reference_rows(), 40, random.Random(2), wrong_share=0.2)
    at, report = run_check(drift, lambda_context)
    result = report["performance_drop"]
    accuracy = next(c for c in result["comparisons"] if c["metric"] == "accuracy")
    reference_accuracy = sample_bundle.manifest.export_metrics["reference_performance"]["metrics"]["accuracy"]["value"]
    assert accuracy["reference"] == pytest.approx(reference_accuracy)
    assert result["degraded"] is True and accuracy["p_value"] < 0.05 / len(result["comparisons"])
    version = sample_bundle.manifest.version
    (drop,) = metric(M.ACCURACY_DROP, at, version)
    assert drop == pytest.approx(accuracy["reference"] - accuracy["window"]) and 0.1 < drop < 0.3
    (degraded,) = metric(M.PERFORMANCE_DEGRADED, at, version)
    assert evaluate(alarm("PerformanceDegraded"), degraded) == "ALARM"
    assert "performance_drop[accuracy]" in report["html"] and "estimated_performance" in report["html"]  # the verdict table


def test_too_few_labels_give_no_verdict_and_no_datapoint(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    predict_and_label(inference, lambda_context, sample_bundle.reference_rows(), 5, random.Random(3), wrong_share=0.5)
    at, report = run_check(drift, lambda_context)
    assert report["performance_drop"]["degraded"] is None and report["performance_drop"]["n_labels"] == 50
    assert metric(M.PERFORMANCE_DEGRADED, at, sample_bundle.manifest.version) == []


def test_estimated_accuracy_is_published_on_every_check_without_labels(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    reference = sample_bundle.reference_rows()
    rng = random.Random(4)
    for i in range(30):
        batch = [rng.choice(reference)["inputs"] for _ in range(10)]
        assert (
            inference.handler(event("rest_v1", "POST", "/predict", {"instances": batch}, request_id=f"u{i}"), lambda_context)["statusCode"]
            == 200
        )
    at, report = run_check(drift, lambda_context)
    est = report["estimated_performance"]
    assert est["n_rows"] == 300 and est["calibrated"] is True and est["degraded"] is False
    (published,) = metric(M.ESTIMATED_ACCURACY, at, sample_bundle.manifest.version)
    assert published == pytest.approx(est["estimated_accuracy"])
    # traffic like the reference: the estimate reads the reference's own accuracy
    assert published == pytest.approx(est["reference_accuracy"], abs=0.03)
    assert evaluate(alarm("EstimatedAccuracyDrop"), metric(M.ESTIMATED_ACCURACY_DROP, at, sample_bundle.manifest.version)[0]) == "OK"


def test_a_class_mix_that_moved_is_target_drift_with_the_vanished_classes_named(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    gentoo = [r for r in sample_bundle.reference_rows() if r["target"] == "Gentoo"]
    predict_and_label(inference, lambda_context, gentoo, 25, random.Random(6), wrong_share=0.0)
    at, report = run_check(drift, lambda_context)
    result = report["target_drift"]
    assert result["drift"] is True and result["p_value"] < 1e-6
    assert result["vanished_classes"] == ["Adelie", "Chinstrap"]
    assert result["observed_shares"] == {"Gentoo": 1.0}
    assert result["predicted_shares"]["Gentoo"] > 0.95  # the model saw the change too: its answers moved with the labels
    assert evaluate(alarm("TargetDrift"), metric(M.TARGET_DRIFT, at, sample_bundle.manifest.version)[0]) == "ALARM"
