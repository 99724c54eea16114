"""POST /feedback through the real inference handler, stored in S3 in moto (in-process)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.local import load_handler_module
from modelserve import metric_catalogue as mn
from modelserve.records import parse_utc
from tests.support import event, header, read_jsonl_gz, response_json

BUCKET = "modelserve-test-feedback"


def stored(s3: Any) -> dict[str, bytes]:
    resp = s3.list_objects_v2(Bucket=BUCKET)
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in resp.get("Contents", [])}


def batches(s3: Any) -> dict[str, bytes]:
    """The feedback objects (one per accepted batch); besides them each labelled row holds its label object."""
    return {k: v for k, v in stored(s3).items() if "/dt=" in k}


def metric_points(stdout: str, name: str) -> list[tuple[float, dict[str, str]]]:
    points = []
    for line in stdout.splitlines():
        if not (line.startswith("{") and '"_aws"' in line):
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            if any(m["Name"] == name for m in directive["Metrics"]):
                dims = {d: blob[d] for dset in directive["Dimensions"] for d in dset}
                values = blob[name] if isinstance(blob[name], list) else [blob[name]]
                points += [(float(v), dims) for v in values]
    return points


def send(
    mod: Any, ctx: Any, body: Any = None, *, raw: bytes | None = None, kind: str = "rest_v1", request_id: str | None = None
) -> dict[str, Any]:
    return mod.handler(event(kind, "POST", "/feedback", body, raw=raw, request_id=request_id), ctx)


@pytest.fixture
def inference(s3: Any, load_inference: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return load_inference(capture_bucket=BUCKET)


def _key_pattern(model_name: str, batch_id: str) -> str:
    return rf"^feedback/model={re.escape(model_name)}/dt=(\d{{4}}-\d{{2}}-\d{{2}})/(\d{{12}})-{re.escape(batch_id)}\.jsonl\.gz$"


@pytest.mark.parametrize("kind", ["rest_v1", "http_v2"])
def test_single_item_is_stored(s3, inference, sample_bundle, lambda_context, capsys, kind) -> None:
    m = sample_bundle.manifest
    before = datetime.now(UTC)
    resp = send(inference, lambda_context, {"request_id": "pred-123", "row": 0, "label": "Gentoo"}, kind=kind, request_id="fb-single")
    after = datetime.now(UTC)
    assert resp["statusCode"] == 202
    assert response_json(resp) == {"accepted": 1, "feedback_id": "fb-single"}
    assert header(resp, "x-request-id") == "fb-single"

    objects = batches(s3)
    assert len(objects) == 1
    ((key, data),) = objects.items()
    match = re.match(_key_pattern(m.model_name, "fb-single"), key)
    assert match, key
    (record,) = read_jsonl_gz(data)
    received = parse_utc(record["received_time"])
    assert before <= received <= after
    assert match.groups() == (f"{received:%Y-%m-%d}", f"{received:%H%M%S%f}")
    assert record == {
        "request_id": "pred-123",
        "row": 0,
        "label": "Gentoo",
        "received_time": record["received_time"],
        "model_name": m.model_name,
    }
    out = capsys.readouterr().out
    assert [p[0] for p in metric_points(out, mn.FEEDBACK_ROWS)] == [1.0]
    assert metric_points(out, mn.FEEDBACK_ERRORS) == []


def test_batch_is_stored_as_one_object_and_unknown_request_ids_are_accepted(s3, inference, sample_bundle, lambda_context) -> None:
    items = [
        {"request_id": "never-seen-before", "row": 0, "label": "Adelie"},  # no lookup of the request id
        {"request_id": "pred-1", "row": 7, "label": "Chinstrap"},
        {"request_id": "pred-2", "label": "Gentoo"},  # row is optional: 0
    ]
    resp = send(inference, lambda_context, items, request_id="fb-batch")
    assert resp["statusCode"] == 202 and response_json(resp)["accepted"] == 3
    objects = batches(s3)
    assert len(objects) == 1
    ((key, data),) = objects.items()
    assert re.match(_key_pattern(sample_bundle.manifest.model_name, "fb-batch"), key)
    records = read_jsonl_gz(data)
    assert [(r["request_id"], r["row"], r["label"]) for r in records] == [
        ("never-seen-before", 0, "Adelie"),
        ("pred-1", 7, "Chinstrap"),
        ("pred-2", 0, "Gentoo"),
    ]
    assert len({r["received_time"] for r in records}) == 1


def test_feedback_for_a_real_prediction_round_trip(s3, inference, sample_bundle, lambda_context) -> None:
    rows = [r["inputs"] for r in sample_bundle.reference_rows()[:2]]
    pred = inference.handler(event("rest_v1", "POST", "/predict", {"instances": rows}, request_id="pred-real"), lambda_context)
    assert pred["statusCode"] == 200
    rid = response_json(pred)["request_id"]
    resp = send(inference, lambda_context, [{"request_id": rid, "row": 1, "label": "Adelie"}], request_id="fb-real")
    assert resp["statusCode"] == 202
    fb = [k for k in batches(s3) if k.startswith("feedback/")]
    assert len(fb) == 1 and read_jsonl_gz(stored(s3)[fb[0]])[0]["request_id"] == "pred-real"


GOOD = {"request_id": "pred-1", "row": 0, "label": "Adelie"}


@pytest.fixture(scope="class")
def shared(sample_bundle: Any) -> Iterator[tuple[Any, Any]]:
    """One handler import for a class of rejection tests (nothing is stored by them)."""
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):
            if k.startswith("MS_"):
                mp.delenv(k)
        for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "POWERTOOLS_METRICS_DISABLED"):
            mp.delenv(k, raising=False)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            mp.setenv(k, "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_REGION", "us-east-1")
        mp.setenv("MS_MODEL_BUNDLE_PATH", str(sample_bundle.root))
        mp.setenv("MS_CAPTURE_BUCKET", BUCKET)
        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket=BUCKET)
            yield load_handler_module("inference"), s3


class TestRejections:
    @pytest.mark.parametrize(
        "bad, field, reason",
        [
            ({"request_id": "pred-1", "row": 0, "label": 3}, "label", "wrong_type"),  # wrong label type
            ({"request_id": "pred-1", "row": 0, "label": "Emperor"}, "label", "wrong_type"),  # unknown class
            ({"request_id": "pred-1", "row": -1, "label": "Adelie"}, "row", "wrong_type"),  # negative row
            ({"request_id": "pred-1", "row": 1.5, "label": "Adelie"}, "row", "wrong_type"),
            ({"request_id": "pred-1", "row": True, "label": "Adelie"}, "row", "wrong_type"),
            ({"request_id": "pred-1", "row": 0}, "label", "wrong_type"),  # missing label
            ({"request_id": "pred-1", "row": 0, "label": None}, "label", "wrong_type"),
            ({"request_id": "pred-1", "row": 0, "label": "Adelie", "weight": 2}, None, "bad_shape"),  # extra key
            ({"row": 0, "label": "Adelie"}, "request_id", "wrong_type"),
            ({"request_id": "", "row": 0, "label": "Adelie"}, "request_id", "wrong_type"),
            ({"request_id": "x" * 129, "row": 0, "label": "Adelie"}, "request_id", "wrong_type"),
            (["pred-1", 0, "Adelie"], None, "bad_shape"),  # not an object
        ],
    )
    def test_invalid_item_is_rejected_naming_the_item(self, shared, lambda_context, capsys, bad, field, reason) -> None:
        mod, s3 = shared
        resp = send(mod, lambda_context, [GOOD, bad, GOOD])
        assert resp["statusCode"] == 422
        body = response_json(resp)
        assert body["error"] == reason
        assert len(body["details"]) == 1
        detail = body["details"][0]
        assert detail["row"] == 1 and detail["field"] == field and detail["reason"] == reason  # row: the item's index
        assert "item 1" in detail["message"] and "item 1" in body["message"]
        assert stored(s3) == {}  # nothing of the batch is stored
        assert metric_points(capsys.readouterr().out, mn.FEEDBACK_ROWS) == []

    def test_single_invalid_object_is_rejected(self, shared, lambda_context) -> None:
        mod, s3 = shared
        resp = send(mod, lambda_context, {"request_id": "pred-1", "label": "Emperor"})
        assert resp["statusCode"] == 422
        assert response_json(resp)["details"][0]["row"] == 0 and stored(s3) == {}

    def test_empty_list_is_rejected(self, shared, lambda_context) -> None:
        mod, s3 = shared
        resp = send(mod, lambda_context, [])
        assert resp["statusCode"] == 422 and response_json(resp)["error"] == "empty_batch"
        assert stored(s3) == {}

    def test_too_many_items_are_rejected(self, shared, lambda_context) -> None:
        mod, s3 = shared
        resp = send(mod, lambda_context, [GOOD] * (mod.serving.max_batch_rows + 1))
        assert resp["statusCode"] == 422 and response_json(resp)["error"] == "batch_too_large"

    @pytest.mark.parametrize("raw", [b'{"request_id": "pred-1", "label": ', b"not json", b"\xff\xfe"])
    def test_malformed_json_is_rejected(self, shared, lambda_context, raw) -> None:
        mod, s3 = shared
        resp = send(mod, lambda_context, raw=raw)
        assert resp["statusCode"] == 400 and response_json(resp)["error"] == "malformed_json"
        assert stored(s3) == {}


def test_storage_failure_answers_503_and_counts(s3, load_inference, sample_bundle, lambda_context, capsys) -> None:
    mod = load_inference(capture_bucket=BUCKET)  # the bucket does not exist
    resp = send(mod, lambda_context, [GOOD])
    assert resp["statusCode"] == 503
    assert response_json(resp)["error"] == "feedback_unavailable"
    out = capsys.readouterr().out
    (point,) = metric_points(out, mn.FEEDBACK_ERRORS)
    assert point[0] == 1.0
    assert point[1][mn.DIM_MODEL_NAME] == sample_bundle.manifest.model_name
    assert point[1][mn.DIM_MODEL_VERSION] == sample_bundle.manifest.version
    assert metric_points(out, mn.FEEDBACK_ROWS) == []


def test_feedback_without_storage_configured_answers_503(aws_credentials, load_inference, lambda_context) -> None:
    mod = load_inference()  # no MS_CAPTURE_BUCKET
    resp = send(mod, lambda_context, [GOOD])
    assert resp["statusCode"] == 503 and response_json(resp)["error"] == "feedback_unavailable"
