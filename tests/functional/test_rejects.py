"""Refused requests in monitoring, end to end on moto: the real inference handler refuses requests and
captures them under rejects/, the real drift-check handler counts them in its report and publishes
RejectRate, and the RejectRate alarm spec evaluates the value read back from CloudWatch."""

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
from modelserve.records import decode_jsonl, reject_key
from modelserve.settings import Settings
from monitoring import metric_names as M
from tests.support import event, response_json

BUCKET = "rejects-test-captures"
NAMESPACE = "RejectsTest"


@pytest.fixture
def aws(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        yield


@pytest.fixture
def handlers(aws: Any, load_inference: Any) -> tuple[Any, Any]:
    inference = load_inference(capture_bucket=BUCKET, metrics_namespace=NAMESPACE)
    return inference, load_handler_module("drift_check")


def reject_objects(prefix: str = "rejects/") -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix) for o in p.get("Contents", [])]
    return [row for k in keys for row in decode_jsonl(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())]


def published(name: str, at: datetime, version: str) -> list[float]:
    dims = [
        {"Name": mn.DIM_MODEL_NAME, "Value": "penguins"},
        {"Name": mn.DIM_MODEL_VERSION, "Value": version},
        {"Name": mn.DIM_WINDOW, "Value": "24h"},
    ]  # the main window's series
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


def reject_alarm(**settings: Any) -> Any:
    (spec,) = [s for s in alarm_specs(Settings(**settings), "penguins", "v1") if s.id == "RejectRate"]
    return spec


def predict(inference: Any, ctx: Any, rows: list[dict[str, Any]], rid: str) -> int:
    return int(inference.handler(event("rest_v1", "POST", "/predict", {"instances": rows}, request_id=rid), ctx)["statusCode"])


def broken_feature(bundle: Any) -> str:
    return next(f.name for f in bundle.manifest.features if not f.nullable)


def test_broken_upstream_every_request_rejected_reports_the_cause_and_pages(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    field = broken_feature(sample_bundle)
    rng = random.Random(3)
    for i in range(150):  # the upstream pipeline stops filling one required field: every request is refused
        assert predict(inference, lambda_context, [{**rng.choice(rows), field: None} for _ in range(2)], f"broken-{i}") == 422
    assert len(reject_objects()) == 150 and reject_objects("captures/") == []

    at = datetime.now(UTC) + timedelta(seconds=1)
    out = drift.handler({"time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}, lambda_context)
    # no scored rows, yet not "no traffic": 150 requests, all refused, and why
    assert out["rows_seen"] == 0 and out["rejected_requests"] == 150 and out["reject_share"] == 1.0
    assert out["root_cause"].startswith(f"{field} null in 100% of rejected requests; 100% of requests rejected (150 of 150)")

    s3 = boto3.client("s3")
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key=out["report_json"].split("/", 3)[3])["Body"].read())
    rejects = doc["report"]["rejects"]
    assert rejects["rejected_requests"] == 150 and rejects["scored_requests"] == 0 and rejects["failed"] is True
    assert rejects["by_reason"] == {"null_not_allowed": 150} and rejects["by_field"] == {field: {"null_not_allowed": 150}}
    assert rejects["rejected_rows"] == 300
    assert doc["report"]["data_quality"]["n_failed"] == 1
    assert not any("empty window" in n for n in doc["report"]["notes"])
    html = s3.get_object(Bucket=BUCKET, Key=out["report_html"].split("/", 3)[3])["Body"].read().decode()
    assert "Rejected requests" in html and "null_not_allowed" in html

    version = sample_bundle.manifest.version
    (rate,) = published(M.REJECT_RATE, at, version)
    assert rate == 1.0 and published(M.REJECTED_REQUESTS, at, version) == [150.0]
    assert evaluate(reject_alarm(), rate) == "ALARM"


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_healthy_window_with_a_baseline_reject_share_stays_ok(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    rng = random.Random(4)
    for i in range(196):
        assert predict(inference, lambda_context, [dict(rng.choice(rows)) for _ in range(3)], f"ok-{i}") == 200
    for i in range(4):  # 2% of clients send a category the model never saw
        assert predict(inference, lambda_context, [{**rng.choice(rows), "island": "Atlantis"}], f"bad-{i}") == 422
    at = datetime.now(UTC) + timedelta(seconds=1)
    out = drift.handler({"time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}, lambda_context)
    assert out["rows_seen"] == 588 and out["rejected_requests"] == 4
    assert out["reject_share"] == pytest.approx(4 / 200)
    (rate,) = published(M.REJECT_RATE, at, sample_bundle.manifest.version)
    assert rate == pytest.approx(0.02)
    assert evaluate(reject_alarm(), rate) == "OK"
    doc = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key=out["report_json"].split("/", 3)[3])["Body"].read())
    assert doc["report"]["rejects"]["by_field"] == {"island": {"unseen_category": 4}}
    assert doc["report"]["rejects"]["failed"] is False


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_one_of_three_rejected_is_no_page(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    assert predict(inference, lambda_context, rows[:1], "a") == 200
    assert predict(inference, lambda_context, rows[1:2], "b") == 200
    assert predict(inference, lambda_context, [{**rows[2], broken_feature(sample_bundle): None}], "c") == 422
    at = datetime.now(UTC) + timedelta(seconds=1)
    out = drift.handler({"time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}, lambda_context)
    assert out["reject_share"] == pytest.approx(1 / 3)  # the report tells the share
    (rate,) = published(M.REJECT_RATE, at, sample_bundle.manifest.version)
    assert rate == 0.0 and evaluate(reject_alarm(), rate) == "OK"  # 3 requests are under reject_min_requests
    assert out["root_cause"] is None


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_reject_min_requests_setting_reaches_the_check(aws, load_inference, sample_bundle, lambda_context) -> None:
    inference = load_inference(capture_bucket=BUCKET, metrics_namespace=NAMESPACE, reject_min_requests="2")
    drift = load_handler_module("drift_check")
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    assert predict(inference, lambda_context, rows[:1], "a") == 200
    assert predict(inference, lambda_context, [{**rows[2], broken_feature(sample_bundle): None}], "c") == 422
    at = datetime.now(UTC) + timedelta(seconds=1)
    out = drift.handler({"time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}, lambda_context)
    (rate,) = published(M.REJECT_RATE, at, sample_bundle.manifest.version)
    assert rate == 0.5 and evaluate(reject_alarm(), rate) == "ALARM"
    assert "50% of requests rejected" in out["root_cause"]


def test_oip_infer_refusals_are_captured(handlers, sample_bundle, lambda_context) -> None:
    inference, _ = handlers
    m = sample_bundle.manifest
    row = sample_bundle.reference_rows()[0]["inputs"]
    inputs = []
    for f in m.features:
        value = "Atlantis" if f.name == "island" else row[f.name]
        kind = {"numeric": "FP64", "boolean": "BOOL"}.get(f.kind.value, "BYTES")
        inputs.append({"name": f.name, "shape": [1], "datatype": kind, "data": [value]})
    resp = inference.handler(
        event("rest_v1", "POST", f"/v2/models/{m.model_name}/infer", {"inputs": inputs}, request_id="oip-1"), lambda_context
    )
    assert resp["statusCode"] == 422, resp["body"]
    (record,) = reject_objects()
    assert record["route"] == "oip" and record["reason"] == "unseen_category" and record["rows"] == 1
    assert record["errors"][0]["field"] == "island"


def test_only_rejects_inside_the_window_count(handlers, sample_bundle, lambda_context) -> None:
    _, drift = handlers
    m = sample_bundle.manifest
    s3 = boto3.client("s3")
    now = datetime.now(UTC).replace(microsecond=0)
    body = (
        b'{"request_id":"x","event_time":"2026-01-01T00:00:00.000000Z","model_name":"penguins","model_version":"v",'
        b'"reason":"wrong_type","status":422,"rows":1,"rows_with_errors":1,"errors":[]}\n'
    )
    for i, t in enumerate([now - timedelta(hours=3), now - timedelta(minutes=30), now - timedelta(minutes=10), now + timedelta(minutes=5)]):
        s3.put_object(Bucket=BUCKET, Key=reject_key(m.model_name, m.version, t, f"r{i}"), Body=body)
    window = {"window": {"start": (now - timedelta(hours=1)).isoformat(), "end": now.isoformat()}}
    assert drift.handler(window, lambda_context)["rejected_requests"] == 2


def test_a_failing_reject_capture_is_counted_and_the_answer_is_unchanged(
    s3, load_inference, sample_bundle, lambda_context, capsys, monkeypatch
) -> None:
    s3.create_bucket(Bucket=BUCKET)
    inference = load_inference(capture_bucket=BUCKET)  # EMF metrics on (tests/functional/conftest.py)
    sink = inference.service.capturer.reject_sink
    monkeypatch.setattr(sink, "bucket", "no-such-bucket")
    row = sample_bundle.reference_rows()[0]["inputs"]
    resp = inference.handler(event("rest_v1", "POST", "/predict", {"instances": [{**row, "island": "Atlantis"}]}), lambda_context)
    assert resp["statusCode"] == 422 and response_json(resp)["error"] == "unseen_category"
    assert reject_objects() == []
    out = capsys.readouterr().out
    assert '"CaptureErrors"' in out


def test_with_the_firehose_sink_rejects_go_to_s3_under_their_prefix(s3, load_inference, sample_bundle, lambda_context) -> None:
    """The stream files every record under captures/ (which the window reader reads as capture records):
    refused requests go straight to the bucket, under rejects/."""
    s3.create_bucket(Bucket=BUCKET)
    boto3.client("firehose", region_name="us-east-1").create_delivery_stream(
        DeliveryStreamName="rejects-test",
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/fh",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": "captures/",
        },
    )
    inference = load_inference(capture_bucket=BUCKET, capture_sink="firehose", firehose_stream="rejects-test")
    row = sample_bundle.reference_rows()[0]["inputs"]
    assert predict(inference, lambda_context, [{**row, "island": "Atlantis"}], "fh-bad") == 422
    (record,) = reject_objects()
    assert record["request_id"] == "fh-bad" and record["reason"] == "unseen_category"
    assert reject_objects("captures/") == []


def test_reject_reads_are_capped_and_the_counts_scaled_corrupt_objects_skipped(aws, sample_bundle) -> None:
    from driftcheck.reject_reader import read_rejects
    from driftcheck.store import CaptureLocation
    from modelserve.records import RejectedField, RejectRecord, encode_jsonl_gz

    m = sample_bundle.manifest
    s3 = boto3.client("s3")
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(40):
        t = now - timedelta(minutes=1, seconds=i)
        reason, field = ("null_not_allowed", "sex") if i % 4 else ("wrong_type", "island")
        record = RejectRecord.build(f"r{i}", t, m.model_name, m.version, "prod", reason, 422, 2, [RejectedField(reason, 0, field)])
        s3.put_object(Bucket=BUCKET, Key=reject_key(m.model_name, m.version, t, f"r{i}"), Body=encode_jsonl_gz([record]))
    where = CaptureLocation(BUCKET, m.model_name, m.version)
    whole = read_rejects(s3, where, now - timedelta(hours=1), now)
    assert whole.rejected_requests == 40 and whole.objects_read == 40 and not whole.estimated
    assert whole.by_reason == {"null_not_allowed": 30, "wrong_type": 10} and whole.by_field == {
        "sex": {"null_not_allowed": 30},
        "island": {"wrong_type": 10},
    }
    assert whole.rejected_rows == 80
    capped = read_rejects(s3, where, now - timedelta(hours=1), now, max_objects=20)
    assert capped.rejected_requests == 40 and capped.objects_read == 20 and capped.estimated
    assert sum(capped.by_reason.values()) == 40  # scaled to every rejected request of the window
    s3.put_object(Bucket=BUCKET, Key=reject_key(m.model_name, m.version, now - timedelta(minutes=2), "bad"), Body=b"\x1f\x8bnot gzip")
    with_bad = read_rejects(s3, where, now - timedelta(hours=1), now)
    assert with_bad.rejected_requests == 41 and with_bad.corrupt_objects == 1
