"""The drift check reads the labels of its window's own prediction hours: feedback for other predictions,
however much, adds no GET; labels filed by receipt (written before, or unverified) are still read (the
migration path). S3 requests counted on the real boto3 client with botocore's event hooks, against moto."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftcheck.feedback_reader import LABEL_GRACE, read_feedback
from driftcheck.store import CaptureLocation
from modelserve.records import FeedbackRecord, encode_jsonl_gz, feedback_key, feedback_prediction_key, utc_iso
from tests.functional.test_read_cost import count_requests
from tests.support import event, response_json

BUCKET = "labels-by-hour"
MODEL = "penguins"
WHERE = CaptureLocation(BUCKET, MODEL, "v1")
START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
END = START + timedelta(hours=2)


def _label(rid: str, row: int, label: str, received: datetime, predicted: datetime | None) -> FeedbackRecord:
    return FeedbackRecord(
        rid,
        row,
        label,
        utc_iso(received),
        MODEL,
        verified=predicted is not None,
        predicted_at=None if predicted is None else utc_iso(predicted),
    )


def _put_by_prediction(s3: Any, record: FeedbackRecord, received: datetime, predicted: datetime, batch: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=feedback_prediction_key(MODEL, predicted, received, batch), Body=encode_jsonl_gz([record]))


def _put_by_receipt(s3: Any, record: FeedbackRecord, received: datetime, batch: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=feedback_key(MODEL, received, batch), Body=encode_jsonl_gz([record]))


def _window_labels(s3: Any) -> set[tuple[str, int]]:
    """The window's 20 labelled rows, filed by prediction hour, received within the hour after."""
    wanted = set()
    for i in range(20):
        predicted = START + timedelta(minutes=6 * i)
        _put_by_prediction(
            s3,
            _label(f"w{i}", 0, "Adelie", predicted + timedelta(minutes=30), predicted),
            predicted + timedelta(minutes=30),
            predicted,
            f"w{i}",
        )
        wanted.add((f"w{i}", 0))
    return wanted


def _gets(unrelated: int, layout: str, now: datetime) -> tuple[Counter[str], int]:
    """GETs and LISTs of one read of the window with ``unrelated`` feedback objects for predictions made
    the day before the window, received inside its label span, filed by ``layout``."""
    rng = random.Random(unrelated)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        wanted = _window_labels(s3)
        for k in range(unrelated):
            predicted = START - timedelta(hours=rng.randrange(2, 24), minutes=rng.randrange(60))
            received = START + timedelta(minutes=rng.randrange(int((min(END + LABEL_GRACE, now) - START).total_seconds() // 60)))
            record = _label(f"other-{k}", 0, "Gentoo", received, predicted if layout == "predicted" else None)
            if layout == "predicted":
                _put_by_prediction(s3, record, received, predicted, f"o{k}")
            else:
                _put_by_receipt(s3, record, received, f"o{k}")
        client = boto3.client("s3")
        calls = count_requests(client)
        labels = read_feedback(client, WHERE, START, END, wanted, now=now)
        assert set(labels) == wanted
        return calls, labels.unmatched


@pytest.mark.parametrize("now", [END + timedelta(hours=3), END + timedelta(days=3)], ids=["hours live", "hours final"])
def test_feedback_for_other_predictions_adds_no_get(aws_credentials: None, now: datetime) -> None:
    quiet, unmatched = _gets(0, "predicted", now)
    busy, busy_unmatched = _gets(200, "predicted", now)
    assert busy["GetObject feedback"] == quiet["GetObject feedback"] and busy["GetObject"] == quiet["GetObject"]
    assert busy["ListObjectsV2"] == quiet["ListObjectsV2"]
    assert unmatched == busy_unmatched == 0  # other hours' labels are no business of this window
    # the same unrelated feedback filed by receipt (the layout before) costs a GET per object, which the
    # receipt-hour reading still pays for labels written before
    before, _ = _gets(200, "receipt", now)
    assert before["GetObject feedback"] >= quiet["GetObject feedback"] + 200


def test_labels_filed_either_way_join_and_a_final_hour_is_read_once(aws_credentials: None) -> None:
    now = END + timedelta(days=3)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        at = START + timedelta(minutes=10)
        _put_by_prediction(s3, _label("new", 0, "Gentoo", at + timedelta(hours=5), at), at + timedelta(hours=5), at, "b1")
        _put_by_receipt(s3, _label("old", 1, "Adelie", at + timedelta(hours=1), None), at + timedelta(hours=1), "b2")
        # past the grace of its prediction hour: not a label of this window
        late = at + timedelta(hours=1) + LABEL_GRACE
        _put_by_prediction(s3, _label("late", 0, "Chinstrap", late, at), late, at, "b3")
        # sent for this window's hours but joining no captured row (sampled out, or not captured yet)
        _put_by_prediction(s3, _label("pending", 0, "Adelie", at, at), at, at, "b4")
        wanted = {("new", 0), ("old", 1), ("late", 0)}
        runs = []
        for _ in range(2):
            client = boto3.client("s3")
            calls = count_requests(client)
            runs.append((read_feedback(client, WHERE, START, END, wanted, now=now), calls))
        (first, _), (again, again_calls) = runs
        for labels in (first, again):
            assert {k: r.label for k, r in labels.items()} == {("new", 0): "Gentoo", ("old", 1): "Adelie"}
            assert labels.unmatched == 1
        assert again_calls["ListObjectsV2"] == 0  # every hour final and kept: one labels object each


@pytest.mark.slow
def test_a_label_sent_through_the_api_joins_its_captured_row(s3: Any, load_inference: Any, sample_bundle: Any, lambda_context: Any) -> None:
    s3.create_bucket(Bucket=BUCKET)
    inference = load_inference(capture_bucket=BUCKET, request_id_key="k" * 32, capture_mode="sync")
    rows = [dict(r["inputs"]) for r in sample_bundle.reference_rows()[:2]]
    answer = response_json(inference.handler(event("http_v2", "POST", "/predict", {"instances": rows}), lambda_context))
    item = {"request_id": answer["request_id"], "row": 1, "label": "Chinstrap"}
    assert inference.handler(event("http_v2", "POST", "/feedback", item), lambda_context)["statusCode"] == 202
    m = sample_bundle.manifest
    now = datetime.now(UTC)
    where = CaptureLocation(BUCKET, m.model_name, m.version)
    labels = read_feedback(s3, where, now - timedelta(hours=1), now + timedelta(minutes=1), {(answer["request_id"], 1)}, now=now)
    assert labels[(answer["request_id"], 1)].label == "Chinstrap" and labels[(answer["request_id"], 1)].verified
