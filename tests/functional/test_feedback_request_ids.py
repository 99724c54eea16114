"""Feedback is checked against the request it names, with no lookup: the API issues request ids that carry
the prediction's time and row count under an HMAC of the stack's key (serving/request_ids.py). Real
handler, REST v1, HTTP v2 and ALB events, S3 in moto."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from modelserve.records import feedback_prediction_hour_prefix, parse_utc
from serving.request_ids import IdCheck, IssuedId, RequestIds
from tests.support import EVENT_KINDS, event, header, read_jsonl_gz, response_json

BUCKET = "feedback-ids"
KEY = "k" * 32


@pytest.fixture
def inference(s3: Any, load_inference: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return load_inference(capture_bucket=BUCKET, request_id_key=KEY, capture_mode="sync")


def _predict(inference: Any, ctx: Any, bundle: Any, n: int, kind: str) -> dict[str, Any]:
    rows = [dict(r["inputs"]) for r in bundle.reference_rows()[:n]]
    resp = inference.handler(event(kind, "POST", "/predict", {"instances": rows}, request_id=f"gw-{kind}"), ctx)
    assert resp["statusCode"] == 200, resp["body"]
    answer = response_json(resp)
    assert header(resp, "x-request-id") == answer["request_id"]  # the header names the id feedback must name
    return dict(answer)


def _feedback(inference: Any, ctx: Any, body: Any, kind: str) -> tuple[int, Any]:
    resp = inference.handler(event(kind, "POST", "/feedback", body), ctx)
    return resp["statusCode"], response_json(resp)


def _stored(s3: Any) -> dict[str, list[dict[str, Any]]]:
    """Every feedback object (not the per-row label objects), by key."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="feedback/").get("Contents", []) if "/labels/" not in o["Key"]]
    return {k: read_jsonl_gz(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys}


def _altered_mac(rid: str) -> str:
    ms, rows, mac, base = rid.split(".", 3)
    return f"{ms}.{rows}.{'0' if mac[0] != '0' else '1'}{mac[1:]}.{base}"


def _more_rows(rid: str) -> str:
    ms, _, mac, base = rid.split(".", 3)
    return f"{ms}.99.{mac}.{base}"


# (case, the id sent for a 2-row request's answer id, row, status, reason)
TABLE: list[tuple[str, Any, int, int, str | None]] = [
    ("the answer's id, row 0", lambda rid: rid, 0, 202, None),
    ("the answer's id, its last row", lambda rid: rid, 1, 202, None),
    ("a row the request did not hold", lambda rid: rid, 2, 422, "row_out_of_range"),
    ("row 99 of a 2-row request", lambda rid: rid, 99, 422, "row_out_of_range"),
    ("the MAC altered", _altered_mac, 0, 422, "unknown_request_id"),
    ("the row count raised in the id", _more_rows, 5, 422, "unknown_request_id"),
    ("API Gateway's own id, not the answer's", lambda rid: rid.split(".", 3)[3], 0, 422, "unknown_request_id"),
    ("an id never issued", lambda rid: "never-issued", 0, 422, "unknown_request_id"),
]


@pytest.mark.parametrize("case", TABLE, ids=[c[0] for c in TABLE])
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_feedback_names_a_request_the_api_answered_and_a_row_it_held(
    kind: str, case: Any, s3: Any, inference: Any, sample_bundle: Any, lambda_context: Any
) -> None:
    _, make_id, row, status, reason = case
    answer = _predict(inference, lambda_context, sample_bundle, 2, kind)
    got, body = _feedback(inference, lambda_context, {"request_id": make_id(answer["request_id"]), "row": row, "label": "Adelie"}, kind)
    assert got == status, body
    if reason is not None:
        assert body["error"] == reason and body["details"][0]["field"] in ("row", "request_id")
        assert _stored(s3) == {}
    else:
        [(key, [record])] = _stored(s3).items()
        assert record["verified"] is True and record["request_id"] == answer["request_id"] and record["row"] == row


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_a_label_is_filed_by_the_hour_its_prediction_was_made(s3: Any, inference: Any, sample_bundle: Any, lambda_context: Any) -> None:
    answer = _predict(inference, lambda_context, sample_bundle, 3, "rest_v1")
    captures = s3.list_objects_v2(Bucket=BUCKET, Prefix="captures/")["Contents"]
    assert [c["Key"] for c in captures if answer["request_id"] in c["Key"]]  # the capture carries the issued id
    items = [{"request_id": answer["request_id"], "row": r, "label": "Gentoo"} for r in range(3)]
    assert _feedback(inference, lambda_context, items, "rest_v1")[0] == 202

    [(key, records)] = _stored(s3).items()
    predicted = parse_utc(records[0]["predicted_at"])
    assert abs((predicted - datetime.now(UTC)).total_seconds()) < 60
    assert key.startswith(feedback_prediction_hour_prefix(sample_bundle.manifest.model_name, predicted))
    assert [r["row"] for r in records] == [0, 1, 2]


def test_unsigned_ids_are_accepted_unverified_and_filed_by_receipt_when_the_setting_says_so(
    s3: Any, load_inference: Any, lambda_context: Any
) -> None:
    s3.create_bucket(Bucket=BUCKET)
    inference = load_inference(capture_bucket=BUCKET, request_id_key=KEY, unsigned_feedback_ids="accept")
    status, _ = _feedback(inference, lambda_context, {"request_id": "issued-before-the-upgrade", "row": 3, "label": "Adelie"}, "http_v2")
    assert status == 202
    [(key, [record])] = _stored(s3).items()
    assert "/predicted/" not in key and "verified" not in record and "predicted_at" not in record
    # a forged id of the issued shape is still refused
    forged = f"{'0' * 11}.2.{'0' * 16}.x"
    status, body = _feedback(inference, lambda_context, {"request_id": forged, "row": 0, "label": "Adelie"}, "http_v2")
    assert (status, body["error"]) == (422, "unknown_request_id")


def test_an_id_reads_back_only_with_the_key_that_issued_it() -> None:
    at = datetime(2026, 12, 6, 8, 59, 59, 999000, tzinfo=UTC)
    ids = RequestIds(KEY.encode())
    rid = ids.issue("c6af9ac6-7b61-11e6-9a41-93e8deadbeef", 7, at)
    assert ids.read(rid) == IssuedId(at, 7)
    assert RequestIds(b"another key of 16+ bytes").read(rid) is IdCheck.FORGED
    assert ids.read("c6af9ac6-7b61-11e6-9a41-93e8deadbeef") is IdCheck.NOT_ISSUED_FORM
    assert ids.issue("a/b", 1, at).endswith(".") is False and "/" not in ids.issue("a/b", 1, at)  # a base unsafe in keys is replaced
    later = ids.issue("b", 1, at.replace(hour=9))
    assert sorted([later, rid]) == [rid, later]  # ids sort by their prediction time
    assert json.dumps(rid).isascii() and len(rid) <= 128
