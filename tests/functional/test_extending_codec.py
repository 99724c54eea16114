"""A new request format is one module plus one registration (docs/development.md#extending).

A toy CSV codec, written here as a contributor would write its module, registered with
``CODECS.register`` and served by the real inference handler on the sample bundle against moto S3:
its rows are validated, scored and captured like a JSON request's, and its refusals go through the
pipeline's one reject bookkeeping (the 4xx answer, ValidationRejects by reason, the rejects capture).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from starlette.responses import Response

from modelserve import metric_catalogue as mn
from modelserve.records import decode_jsonl
from serving.codecs import CODECS, PREDICT, Codec, CodecRegistry, Decoded
from serving.validation import ColumnBatch
from tests.functional.test_capture import metric_points
from tests.support import event, header, response_json

BUCKET = "extending-codec-captures"
CSV = "text/csv"


def _value(text: str) -> Any:
    """A CSV cell: empty is missing, a number reads as one, anything else is a string."""
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


class CsvCodec(Codec):
    """``text/csv`` on /predict: a header row of feature names, then one row per instance."""

    route = PREDICT
    media_types = (CSV,)
    answer_media = CSV
    malformed_reason = "malformed_csv"
    read_errors = (csv.Error, UnicodeDecodeError, ValueError)
    openapi_note = "rows may also be sent as CSV (content-type text/csv, a header row of feature names)"

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Decoded:
        names, *rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline=""), strict=True)) or [[]]
        for i, row in enumerate(rows):
            if len(row) != len(names):
                raise ValueError(f"CSV row {i} has {len(row)} cells for {len(names)} columns")
        return Decoded(ColumnBatch(names, [[_value(row[j]) for row in rows] for j in range(len(names))]))

    def encode(self, answer: dict[str, Any], decoded: Decoded, headers: dict[str, str]) -> Response:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["prediction", *(f"probability_{c}" for c in answer.get("classes", []))])
        for i, label in enumerate(answer["predictions"]):
            writer.writerow([label, *(answer["probabilities"][i] if "classes" in answer else [])])
        return Response(out.getvalue(), 200, media_type=CSV, headers=headers)


@pytest.fixture
def csv_registered() -> Iterator[None]:
    CODECS.register(CsvCodec)
    try:
        yield
    finally:
        CODECS.unregister(CsvCodec)


@pytest.fixture
def bucket(s3: Any) -> Any:
    s3.create_bucket(Bucket=BUCKET)
    return s3


def reference_rows(bundle: Any, n: int) -> list[dict[str, Any]]:
    ref = bundle.reference_rows()
    return [dict(ref[i]["inputs"]) for i in range(n) if None not in ref[i]["inputs"].values()][:n]


def objects(s3: Any, prefix: str) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def as_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def post(mod: Any, ctx: Any, raw: bytes, rid: str, **headers: str) -> dict[str, Any]:
    return mod.handler(event("rest_v1", "POST", "/predict", raw=raw, request_id=rid, headers={"content-type": CSV, **headers}), ctx)


def test_unregistered_format_is_refused_as_unsupported_media(bucket, load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference(capture_bucket=BUCKET)
    resp = post(mod, lambda_context, as_csv(reference_rows(sample_bundle, 2)), "no-csv")
    assert resp["statusCode"] == 415 and response_json(resp)["error"] == "unsupported_media_type"


@pytest.mark.capture_sink("s3")  # reads the s3 sink's object per request
def test_registered_codec_is_scored_and_captured_like_json(csv_registered, bucket, load_inference, sample_bundle, lambda_context) -> None:
    mod = load_inference(capture_bucket=BUCKET)
    rows = reference_rows(sample_bundle, 5)
    as_json = mod.handler(event("rest_v1", "POST", "/predict", {"instances": rows}, request_id="json-1"), lambda_context)
    resp = post(mod, lambda_context, as_csv(rows), "csv-1")
    assert resp["statusCode"] == 200 and header(resp, "x-model-version") == sample_bundle.manifest.version
    answer = response_json(resp)  # no Accept: the route's default answer, JSON
    assert answer["request_id"] == "csv-1" and answer["predictions"] == response_json(as_json)["predictions"]
    # Accept names the codec's format: the answer is CSV, the same labels
    as_text = post(mod, lambda_context, as_csv(rows), "csv-2", accept=CSV)
    assert header(as_text, "content-type").startswith(CSV)
    table = list(csv.DictReader(io.StringIO(as_text["body"])))
    assert [r["prediction"] for r in table] == answer["predictions"]
    assert set(table[0]) == {"prediction", *(f"probability_{c}" for c in answer["classes"])}
    # captured row by row as the JSON request was: the same validated inputs, the same predictions
    records = {(r["request_id"], r["row"]): r for body in objects(bucket, "captures/").values() for r in decode_jsonl(body)}
    for i in range(len(rows)):
        by_csv, by_json = records[("csv-1", i)], records[("json-1", i)]
        assert by_csv["inputs"] == by_json["inputs"] and by_csv["prediction"] == by_json["prediction"]
    assert objects(bucket, "rejects/") == {}


@pytest.mark.parametrize(
    "body, status, reason, rows",
    [
        (b"island,sex\nTorgersen\n", 400, "malformed_csv", None),  # unreadable: the codec's own reason, no rows
        (None, 422, "unseen_category", 2),  # readable, refused by validation: the rows are recorded
    ],
)
def test_registered_codec_refusals_go_through_the_shared_reject_bookkeeping(
    csv_registered, bucket, load_inference, sample_bundle, lambda_context, capsys, body, status, reason, rows
) -> None:
    mod = load_inference(capture_bucket=BUCKET)
    if body is None:
        sent = reference_rows(sample_bundle, 2)
        sent[1]["island"] = "Atlantis"
        body = as_csv(sent)
    resp = post(mod, lambda_context, body, "csv-refused")
    error = response_json(resp)
    assert resp["statusCode"] == status and error["error"] == reason
    assert error["request_id"] == "csv-refused" and error["model_version"] == sample_bundle.manifest.version
    by_reason = [d for _, d, _ in metric_points(capsys.readouterr().out, mn.VALIDATION_REJECTS) if mn.DIM_REASON in d]
    assert [d[mn.DIM_REASON] for d in by_reason] == [reason]
    (reject,) = [decode_jsonl(b)[0] for b in objects(bucket, "rejects/").values()]
    assert (reject["request_id"], reject["reason"], reject["status"], reject["rows"], reject["route"]) == (
        "csv-refused",
        reason,
        status,
        rows,
        PREDICT,
    )
    assert objects(bucket, "captures/") == {}


def test_unsupported_media_names_every_registered_format(csv_registered, bucket, load_inference, lambda_context) -> None:
    mod = load_inference(capture_bucket=BUCKET)
    resp = post(mod, lambda_context, b"x", "plain", **{"content-type": "text/plain"})
    assert resp["statusCode"] == 415
    assert response_json(resp)["message"].endswith(f"send application/json or application/vnd.apache.arrow.stream or {CSV}")


def test_openapi_describes_a_registered_format(csv_registered, bucket, load_inference, lambda_context) -> None:
    mod = load_inference(capture_bucket=BUCKET)
    resp = mod.handler(event("rest_v1", "GET", "/openapi.json"), lambda_context)
    description = response_json(resp)["paths"]["/predict"]["post"]["description"]
    assert resp["statusCode"] == 200 and CsvCodec.openapi_note in description and "Apache Arrow IPC stream" in description


def test_a_media_type_is_read_by_one_codec_per_route() -> None:
    registry = CodecRegistry()
    registry.register(CsvCodec)

    class OtherCsv(CsvCodec):
        pass

    with pytest.raises(ValueError, match="already reads"):
        registry.register(OtherCsv)
