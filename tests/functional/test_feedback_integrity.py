"""Ground truth cannot be replaced silently: /feedback checks each item and the label its row holds,
on REST v1, HTTP v2 and ALB events (real handler, S3 in moto)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelserve.records import label_key
from tests.support import EVENT_KINDS, event, read_jsonl_gz, response_json

BUCKET = "feedback-integrity"


@pytest.fixture
def inference(s3: Any, load_inference: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return load_inference(capture_bucket=BUCKET)


def _predict(inference: Any, ctx: Any, rows: list[dict[str, Any]], kind: str, rid: str) -> str:
    resp = inference.handler(event(kind, "POST", "/predict", {"instances": rows}, request_id=rid), ctx)
    assert resp["statusCode"] == 200, resp["body"]
    return str(response_json(resp)["request_id"])


def _feedback(inference: Any, ctx: Any, body: Any, kind: str, headers: dict[str, str] | None = None, **kw: Any) -> tuple[int, Any]:
    ev = event(kind, "POST", "/feedback", body, headers=headers, **kw)
    resp = inference.handler(ev, ctx)
    return resp["statusCode"], response_json(resp)


def _batches(s3: Any) -> list[dict[str, Any]]:
    """Every feedback record stored, in key (receipt) order."""
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="feedback/").get("Contents", []) if "/dt=" in o["Key"])
    return [r for k in keys for r in read_jsonl_gz(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read())]


def _rows(bundle: Any, n: int) -> list[dict[str, Any]]:
    return [dict(r["inputs"]) for r in bundle.reference_rows()[:n]]


# (case, items sent after a 2-row request "<rid>" got its answer, status, reason, records stored)
TABLE: list[tuple[str, list[dict[str, Any]], int, str | None, int]] = [
    ("a row of the request", [{"request_id": "<rid>", "row": 1, "label": "Adelie"}], 202, None, 1),
    ("row 1e300", [{"request_id": "<rid>", "row": 1e300, "label": "Adelie"}], 422, "wrong_type", 0),
    (
        "two labels for one row in a batch",
        [{"request_id": "<rid>", "row": 0, "label": "Adelie"}, {"request_id": "<rid>", "row": 0, "label": "Gentoo"}],
        409,
        "label_conflict",
        0,
    ),
    (
        "the same label twice in a batch",
        [{"request_id": "<rid>", "row": 0, "label": "Adelie"}, {"request_id": "<rid>", "row": 0, "label": "Adelie"}],
        202,
        None,
        1,
    ),
    ("a NUL in the request id", [{"request_id": "abc\u0000def", "row": 0, "label": "Adelie"}], 422, "wrong_type", 0),
    ("a lone surrogate request id", [{"request_id": "\ud800", "row": 0, "label": "Adelie"}], 422, "wrong_type", 0),
    ("a label that is not a class", [{"request_id": "<rid>", "row": 0, "label": "Emperor"}], 422, "wrong_type", 0),
    ("replace without a reason", [{"request_id": "<rid>", "row": 0, "label": "Adelie", "replace": True}], 422, "wrong_type", 0),
    ("a reason without replace", [{"request_id": "<rid>", "row": 0, "label": "Adelie", "reason": "typo"}], 422, "bad_shape", 0),
    (
        "a request not captured (yet): kept, joined by the drift check",
        [{"request_id": "never-seen", "row": 5, "label": "Adelie"}],
        202,
        None,
        1,
    ),
    (
        "one bad item: nothing stored",
        [{"request_id": "<rid>", "row": 0, "label": "Adelie"}, {"request_id": "<rid>", "row": -1, "label": "Adelie"}],
        422,
        "wrong_type",
        0,
    ),
    ("row past max_batch_rows", [{"request_id": "<rid>", "row": 10**6, "label": "Adelie"}], 422, "wrong_type", 0),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", TABLE, ids=[c[0] for c in TABLE])
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_feedback_items_are_checked_before_anything_is_stored(
    kind: str, case: Any, s3: Any, inference: Any, sample_bundle: Any, lambda_context: Any
) -> None:
    _, items, status, reason, n_records = case
    rid = _predict(inference, lambda_context, _rows(sample_bundle, 2), kind, f"req-{kind}")
    body = json.loads(json.dumps(items).replace("<rid>", rid))
    got, answer = _feedback(inference, lambda_context, body, kind)
    assert got == status, answer
    if reason is not None:
        assert answer["error"] == reason
    assert len(_batches(s3)) == n_records


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_a_label_is_idempotent_a_different_one_conflicts_and_a_correction_keeps_the_history(
    kind: str, s3: Any, inference: Any, sample_bundle: Any, lambda_context: Any
) -> None:
    rid = _predict(inference, lambda_context, _rows(sample_bundle, 2), kind, f"req-{kind}")
    first = {"request_id": rid, "row": 1, "label": "Chinstrap"}
    assert _feedback(inference, lambda_context, first, kind)[0] == 202
    assert _feedback(inference, lambda_context, first, kind)[0] == 202  # a retry: accepted, nothing new stored
    assert len(_batches(s3)) == 1

    status, answer = _feedback(inference, lambda_context, {**first, "label": "Gentoo"}, kind)
    assert status == 409 and answer["error"] == "label_conflict", answer
    assert "Chinstrap" in answer["details"][0]["message"]
    assert len(_batches(s3)) == 1

    correction = {**first, "label": "Gentoo", "replace": True, "reason": "re-measured: bill depth was misread"}
    assert _feedback(inference, lambda_context, correction, kind)[0] == 202
    records = _batches(s3)
    assert [r["label"] for r in records] == ["Chinstrap", "Gentoo"]
    assert records[1]["replaces"] == "Chinstrap" and records[1]["reason"] == correction["reason"]
    held = json.loads(s3.get_object(Bucket=BUCKET, Key=label_key(sample_bundle.manifest.model_name, rid, 1))["Body"].read())
    assert held["label"] == "Gentoo" and [h["label"] for h in held["history"]] == ["Chinstrap"]
    # the corrected label is now the one a retry must match
    assert _feedback(inference, lambda_context, {**first, "label": "Gentoo"}, kind)[0] == 202
    assert _feedback(inference, lambda_context, first, kind)[0] == 409


def test_a_label_for_a_request_not_captured_conflicts_like_any_other(s3: Any, inference: Any, lambda_context: Any) -> None:
    item = {"request_id": "not-captured-yet", "row": 0, "label": "Adelie"}
    assert _feedback(inference, lambda_context, item, "rest_v1")[0] == 202
    assert _feedback(inference, lambda_context, {**item, "label": "Gentoo"}, "rest_v1")[0] == 409


def test_the_record_names_the_api_key_that_sent_it(s3: Any, inference: Any, lambda_context: Any) -> None:
    ev = event("rest_v1", "POST", "/feedback", {"request_id": "r-1", "row": 0, "label": "Adelie"})
    ev["requestContext"]["identity"]["apiKeyId"] = "k1a2b3c4d5"
    assert inference.handler(ev, lambda_context)["statusCode"] == 202
    assert _batches(s3)[0]["caller"] == "k1a2b3c4d5"
