"""Apache Arrow IPC bodies on /predict: pyarrow (what pandas, polars and DuckDB write through) in and
out of the real handler, on every event kind; the same answer and the same capture records as JSON."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.support import EVENT_KINDS, arrow_answer, arrow_stream, event, read_jsonl_gz, response_json

ARROW = "application/vnd.apache.arrow.stream"
BUCKET = "arrow-captures"


def _stream(table: pa.Table) -> bytes:
    return arrow_stream(table, max_chunksize=7)  # several record batches even for a few rows


@pytest.fixture
def inference(s3: Any, load_inference: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return load_inference(capture_bucket=BUCKET, capture_mode="sync")


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_an_arrow_batch_is_answered_as_json_predicts_it(inference: Any, sample_bundle: Any, lambda_context: Any, kind: str) -> None:
    rows = [dict(r["inputs"]) for r in sample_bundle.reference_rows()[:25]]  # nulls included
    body = _stream(pa.Table.from_pylist(rows))
    as_json = response_json(inference.handler(event(kind, "POST", "/predict", {"instances": rows}), lambda_context))
    resp = inference.handler(event(kind, "POST", "/predict", raw=body, headers={"content-type": ARROW}), lambda_context)
    assert resp["statusCode"] == 200, resp["body"]
    assert response_json(resp)["predictions"] == as_json["predictions"]  # Arrow in, JSON out by default
    resp = inference.handler(event(kind, "POST", "/predict", raw=body, headers={"content-type": ARROW, "accept": ARROW}), lambda_context)
    assert resp["statusCode"] == 200
    table = arrow_answer(resp)
    assert table.column("prediction").to_pylist() == as_json["predictions"]
    probs = np.column_stack([table.column(f"probability_{c}").to_numpy() for c in as_json["classes"]])
    np.testing.assert_allclose(probs, np.array(as_json["probabilities"]), atol=1e-12)


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_an_arrow_request_is_captured_as_the_same_records(inference: Any, sample_bundle: Any, lambda_context: Any, s3: Any) -> None:
    rows = [dict(r["inputs"]) for r in sample_bundle.reference_rows()[:10]]
    inference.handler(event("rest_v1", "POST", "/predict", {"instances": rows}, request_id="json-req"), lambda_context)
    inference.handler(
        event(
            "rest_v1", "POST", "/predict", raw=_stream(pa.Table.from_pylist(rows)), headers={"content-type": ARROW}, request_id="arrow-req"
        ),
        lambda_context,
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="captures/")["Contents"]]

    def records(suffix: str) -> list[dict[str, Any]]:
        key = next(k for k in keys if k.endswith(f"-{suffix}.jsonl.gz"))
        return [
            {k: r[k] for k in ("row", "inputs", "prediction", "probabilities")}
            for r in read_jsonl_gz(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        ]

    assert records("arrow-req") == records("json-req")


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_bad_arrow_bodies_get_a_4xx_naming_the_problem(inference: Any, sample_bundle: Any, lambda_context: Any, kind: str) -> None:
    row = dict(sample_bundle.reference_rows()[0]["inputs"])
    numeric = next(f.name for f in sample_bundle.manifest.features if f.kind.value == "numeric")
    cases = [
        ("not a stream", b"\x00\x01garbage", 400, "malformed_arrow"),
        ("truncated", _stream(pa.Table.from_pylist([row]))[:60], 400, "malformed_arrow"),
        ("nested column", _stream(pa.table({"x": pa.array([[1.0]])})), 400, "malformed_arrow"),
        ("text in a number column", _stream(pa.Table.from_pylist([{**row, numeric: "12,5"}])), 422, "wrong_type"),
        ("a feature missing", _stream(pa.Table.from_pylist([{k: v for k, v in row.items() if k != numeric}])), 422, "missing_feature"),
    ]
    for case, body, status, reason in cases:
        resp = inference.handler(event(kind, "POST", "/predict", raw=body, headers={"content-type": ARROW}), lambda_context)
        assert resp["statusCode"] == status, (case, resp["body"])
        assert response_json(resp)["error"] == reason, case
