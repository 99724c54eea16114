"""What moved the predictions, end to end on moto: the real inference handler explains a sampled share of its
captured rows (``capture_explanations``), the real drift-check handler compares the window's mean |contribution|
per feature with the reference's (written into the bundle at export) and names the feature whose grew."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from devtools.local import load_handler_module
from tests.functional.test_drift_check_handler import BUCKET, NAMESPACE
from tests.support import event

# slow; and captures read back as the s3 sink files them, by event hour, at once
pytestmark = [pytest.mark.slow, pytest.mark.capture_sink("s3")]


@pytest.fixture
def handlers(aws_credentials, load_inference, monkeypatch):
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        inference = load_inference(
            capture_bucket=BUCKET, metrics_namespace=NAMESPACE, capture_explanations="true", explain_capture_fraction="1.0"
        )
        yield inference, load_handler_module("drift_check")


def send(inference: Any, ctx: Any, rows: list[dict[str, Any]], rng: random.Random, flipper_shift: float = 0.0) -> None:
    for _ in range(4):
        batch = [dict(rng.choice(rows)) for _row in range(30)]
        for r in batch:
            if r["flipper_length_mm"] is not None:
                r["flipper_length_mm"] += flipper_shift
        resp = inference.handler(event("rest_v1", "POST", "/predict", {"instances": batch}, request_id=f"r{rng.random()}"), ctx)
        assert resp["statusCode"] == 200, resp["body"][:300]


def check(drift: Any, ctx: Any, start: datetime, end: datetime) -> tuple[dict[str, Any], str]:
    out = drift.handler({"window": {"start": start.isoformat(), "end": end.isoformat()}}, ctx)
    s3 = boto3.client("s3")
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key=out["report_json"].split("/", 3)[3])["Body"].read())
    html = s3.get_object(Bucket=BUCKET, Key=out["report_html"].split("/", 3)[3])["Body"].read().decode()
    return doc["report"], html


def test_a_window_where_one_features_contribution_grows_names_it_first(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    rng = random.Random(3)
    t0 = datetime.now(UTC) - timedelta(seconds=1)
    send(inference, lambda_context, rows, rng)
    t1 = datetime.now(UTC) + timedelta(milliseconds=20)
    time.sleep(0.05)  # request times are whole milliseconds: the shifted requests start after t1
    send(inference, lambda_context, rows, rng, flipper_shift=40.0)
    t2 = datetime.now(UTC) + timedelta(seconds=1)

    quiet, _ = check(drift, lambda_context, t0, t1)
    attribution = quiet["attribution"]
    assert attribution["window_rows"] == 120 and attribution["reference_rows"] == 100
    assert attribution["moved"] is False and not any("moved through" in f for f in quiet["findings"])

    shifted, html = check(drift, lambda_context, t1, t2)
    attribution = shifted["attribution"]
    ranked = [f["feature"] for f in attribution["features"]]
    assert ranked[0] == "flipper_length_mm" and attribution["moved_features"] == ["flipper_length_mm"]
    top = attribution["features"][0]
    assert top["window_mean_abs"] > top["reference_mean_abs"] + 0.1 * attribution["reference_total"]
    moved = [f for f in shifted["findings"] if "moved through" in f]
    assert len(moved) == 1 and moved[0].startswith("model output moved through flipper_length_mm")
    assert "What moved the predictions" in html and html.index("flipper_length_mm</td>") < html.index("bill_length_mm</td>")


def test_without_captured_explanations_the_report_has_no_attribution(
    aws_credentials, load_inference, sample_bundle, lambda_context
) -> None:
    from moto import mock_aws

    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        inference = load_inference(capture_bucket=BUCKET, metrics_namespace=NAMESPACE)
        drift = load_handler_module("drift_check")
        t0 = datetime.now(UTC) - timedelta(seconds=1)
        send(inference, lambda_context, [r["inputs"] for r in sample_bundle.reference_rows()], random.Random(4))
        report, html = check(drift, lambda_context, t0, datetime.now(UTC) + timedelta(seconds=1))
    assert report["window_rows"] == 120 and report["attribution"] is None
    assert "What moved the predictions" not in html
