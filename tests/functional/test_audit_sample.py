"""The daily manual audit sample on moto: written by the real drift-check handler as CSV and
JSON Lines, stratified by predicted class with low-confidence rows oversampled; labels sent back
through /feedback as audit labels give the agreement and its interval in the next report."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from devtools.local import load_handler_module
from modelserve.records import audit_key
from tests.support import event, response_json

BUCKET = "audit-test-captures"


@pytest.fixture
def handlers(aws_credentials, monkeypatch, load_inference):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        inference = load_inference(capture_bucket=BUCKET, audit_sample_rows=60)
        yield inference, load_handler_module("drift_check")


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_the_audit_sample_is_written_stratified_and_its_labels_come_back(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    rng = random.Random(0)
    for i in range(60):
        batch = [rng.choice(rows) for _ in range(10)]
        assert (
            inference.handler(event("rest_v1", "POST", "/predict", {"instances": batch}, request_id=f"q{i}"), lambda_context)["statusCode"]
            == 200
        )
    at = datetime.now(UTC) + timedelta(seconds=1)
    drift.handler({"time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}, lambda_context)

    s3 = boto3.client("s3")
    day = at.date()
    lines = [
        json.loads(x) for x in s3.get_object(Bucket=BUCKET, Key=audit_key("penguins", day, "jsonl"))["Body"].read().decode().splitlines()
    ]
    table = list(csv.DictReader(io.StringIO(s3.get_object(Bucket=BUCKET, Key=audit_key("penguins", day, "csv"))["Body"].read().decode())))
    assert len(lines) == len(table) == 60
    assert [(r["request_id"], int(r["row"])) for r in table] == [(r["request_id"], r["row"]) for r in lines]
    assert set(table[0]) >= {"request_id", "row", "prediction", "confidence", "label", *sample_bundle.manifest.feature_names}
    assert all(r["label"] == "" for r in table) and all(r["label"] is None for r in lines)
    # every class the model predicted is there, the rare ones with as many rows as they have up to an equal share
    predicted = [r["prediction"] for r in lines]
    assert set(predicted) == {"Adelie", "Chinstrap", "Gentoo"} and min(predicted.count(c) for c in set(predicted)) >= 15
    # low-confidence answers are oversampled: the sample is less sure than the traffic it came from
    window = [json.loads(x) for x in _captured_lines(s3)]
    traffic_confidence = sum(max(r["probabilities"].values()) for r in window) / len(window)
    assert sum(r["confidence"] for r in lines) / len(lines) < traffic_confidence

    # a person labels the sample: agrees with the model on all but 6 rows; labels come back marked "audit"
    items = [
        {
            "request_id": r["request_id"],
            "row": r["row"],
            "label": r["prediction"] if k >= 6 else next(c for c in ("Adelie", "Gentoo") if c != r["prediction"]),
            "source": "audit",
        }
        for k, r in enumerate(lines)
    ]
    assert inference.handler(event("rest_v1", "POST", "/feedback", items, request_id="audit-1"), lambda_context)["statusCode"] == 202
    summary = drift.handler({"time": (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}, lambda_context)
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key=summary["report_json"].split("/", 3)[3])["Body"].read())
    audit = doc["audit"]
    assert audit["labelled_rows"] == 60 and audit["agreeing_rows"] == 54 and audit["agreement"] == pytest.approx(0.9)
    low, high = audit["interval_95"]
    assert low < 0.9 < high and high - low < 0.2
    page = s3.get_object(Bucket=BUCKET, Key=summary["report_html"].split("/", 3)[3])["Body"].read().decode()
    assert "<h2>Manual audit</h2>" in page and "agreed with 54 of 60 audited rows (90.0%" in page


def _captured_lines(s3) -> list[bytes]:
    import gzip

    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="captures/"):
        for o in page.get("Contents", []):
            out.extend(x for x in gzip.decompress(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()).splitlines() if x.strip())
    return out


def test_feedback_refuses_a_source_other_than_audit(handlers, lambda_context) -> None:
    inference, _ = handlers
    resp = inference.handler(
        event("rest_v1", "POST", "/feedback", [{"request_id": "r", "row": 0, "label": "Adelie", "source": "crowd"}]), lambda_context
    )
    assert resp["statusCode"] == 422 and response_json(resp)["details"][0]["field"] == "source"
