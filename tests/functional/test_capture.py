"""Capture through the real inference handler, against S3 and Firehose in moto (in-process, no network).

``mock_aws`` is entered before the handler module is imported: the handler builds its boto3
clients at import, as Lambda's init does.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from modelserve import metric_catalogue as mn
from modelserve.records import capture_key, decode_jsonl, hour_prefixes, model_capture_prefix, parse_utc
from modelserve.settings import ServingSettings
from serving.wiring import inference_service
from tests.support import event, header, read_jsonl_gz, response_json

# these tests read the s3 sink's object per request (its key, its failures, its sampling)
pytestmark = pytest.mark.capture_sink("s3")

BUCKET = "modelserve-test-captures"
STREAM = "modelserve-test-captures"
SALT = "a-test-salt-of-at-least-16-chars"


# --- helpers -------------------------------------------------------------------------------------


def make_bucket(s3: Any) -> None:
    s3.create_bucket(Bucket=BUCKET)


def rows(bundle: Any, n: int) -> list[dict[str, Any]]:
    ref = bundle.reference_rows()
    return [dict(ref[i % len(ref)]["inputs"]) for i in range(n)]


def objects(s3: Any, prefix: str = "") -> dict[str, bytes]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
    return out


def emf_blobs(stdout: str) -> list[dict[str, Any]]:
    """The EMF documents Powertools printed (JSON log lines are skipped)."""
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            out.append(json.loads(line))
    return out


def metric_points(stdout: str, name: str) -> list[tuple[float, dict[str, str], str | None]]:
    """(value, dimensions, unit) of every data point of metric ``name`` in the EMF output."""
    points = []
    for blob in emf_blobs(stdout):
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for m in directive["Metrics"]:
                if m["Name"] != name:
                    continue
                dims = {d: blob[d] for dset in directive["Dimensions"] for d in dset}
                values = blob[name] if isinstance(blob[name], list) else [blob[name]]
                points += [(float(v), dims, m.get("Unit")) for v in values]
    return points


def count_attempts(client: Any, operation: str, fail: Exception | None = None) -> list[int]:
    """Count HTTP attempts of ``operation`` on a boto3 client (and optionally fail each one).

    Registered first on ``before-send``, so it runs before moto answers the request.
    """
    calls: list[int] = []

    def on_send(**kwargs: Any) -> None:
        calls.append(1)
        if fail is not None:
            raise fail

    client.meta.events.register_first(f"before-send.{client.meta.service_model.service_name}.{operation}", on_send)
    return calls


def live_event(kind: str, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
    """An event as API Gateway would send it now: its request time (ms) is the current time."""
    ev = event(kind, method, path, body, **kw)
    ms = int(time.time() * 1000)
    ctx = ev["requestContext"]
    for k in ("requestTimeEpoch", "timeEpoch"):
        if k in ctx:
            ctx[k] = ms
    return ev


def utc_now_ms() -> datetime:
    """Now, floored to the millisecond (API Gateway's request times have ms resolution)."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def post(mod: Any, ctx: Any, body: Any, kind: str = "rest_v1", **kw: Any) -> dict[str, Any]:
    return mod.handler(live_event(kind, "POST", "/predict", body, **kw), ctx)


# --- one object per request ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rest_v1", "http_v2"])
def test_batch_request_writes_one_whole_object_matching_the_answer(s3, load_inference, sample_bundle, lambda_context, capsys, kind) -> None:
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET)
    m = sample_bundle.manifest
    sent = rows(sample_bundle, 8)  # row 3 of the penguins sample has nulls
    assert any(v is None for r in sent for v in r.values())
    before = utc_now_ms()
    ev = live_event(kind, "POST", "/predict", {"instances": sent})
    api_request_id = ev["requestContext"]["requestId"]
    puts = count_attempts(mod.service.capturer.sink.client, "PutObject")

    resp = mod.handler(ev, lambda_context)
    after = datetime.now(UTC)

    assert resp["statusCode"] == 200
    answer = response_json(resp)
    assert answer["request_id"] == api_request_id == header(resp, "x-request-id")
    assert len(puts) == 1  # one PutObject of the complete gzip: the object is whole or absent

    stored = objects(s3)
    assert len(stored) == 1
    ((key, data),) = stored.items()
    pattern = (
        rf"^captures/model={re.escape(m.model_name)}/version={re.escape(m.version)}/"
        rf"dt=(\d{{4}}-\d{{2}}-\d{{2}})/hour=(\d{{2}})/(\d{{12}})-{re.escape(api_request_id)}\.jsonl\.gz$"
    )
    match = re.match(pattern, key)
    assert match, key

    records = read_jsonl_gz(data)  # gunzip-able, one JSON object per line
    assert [r["row"] for r in records] == list(range(len(sent)))
    event_time = parse_utc(records[0]["event_time"])
    assert before <= event_time <= after
    # dt / hour / time of day in the key are those of the records' event time
    assert match.groups() == (f"{event_time:%Y-%m-%d}", f"{event_time:%H}", f"{event_time:%H%M%S%f}")
    assert key == capture_key(m.model_name, m.version, event_time, api_request_id)

    for i, r in enumerate(records):
        assert r["request_id"] == api_request_id
        assert r["event_time"] == records[0]["event_time"]
        assert (r["model_name"], r["model_version"], r["stage"]) == (m.model_name, m.version, "prod")
        assert r["inputs"] == sent[i]
        assert r["prediction"] == answer["predictions"][i]
        assert r["probabilities"] == dict(zip(answer["classes"], answer["probabilities"][i]))

    out = capsys.readouterr().out
    assert [p[0] for p in metric_points(out, mn.CAPTURED_ROWS)] == [len(sent)]
    assert metric_points(out, mn.CAPTURE_ERRORS) == []


def test_capture_is_dated_by_the_api_gateway_request_time(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET)
    ev = event("rest_v1", "POST", "/predict", {"instances": rows(sample_bundle, 2)}, request_id="req-dated")
    ev["requestContext"]["requestTimeEpoch"] = 1767323045678  # 2026-01-02T03:04:05.678Z
    assert mod.handler(ev, lambda_context)["statusCode"] == 200
    (key,) = objects(s3)
    assert "/dt=2026-01-02/hour=03/030405678000-req-dated.jsonl.gz" in key


def test_service_dates_capture_by_the_given_event_time(s3, sample_bundle) -> None:
    make_bucket(s3)
    service = inference_service(sample_bundle, ServingSettings(capture_sink="s3"), {"MS_CAPTURE_BUCKET": BUCKET})
    t = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    service.predict({"instances": rows(sample_bundle, 2)}, "req-1", event_time=t)
    (key,) = objects(s3)
    m = sample_bundle.manifest
    assert key == f"captures/model={m.model_name}/version={m.version}/dt=2026-01-02/hour=03/030405678000-req-1.jsonl.gz"
    assert {r["event_time"] for r in read_jsonl_gz(objects(s3)[key])} == {"2026-01-02T03:04:05.678000Z"}


def test_each_request_gets_its_own_object(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET)
    for i, n in enumerate((1, 3, 100)):
        assert post(mod, lambda_context, {"instances": rows(sample_bundle, n)}, request_id=f"req-{i}")["statusCode"] == 200
    stored = objects(s3)
    by_request = {re.search(r"-(req-\d)\.jsonl\.gz$", k).group(1): len(read_jsonl_gz(v)) for k, v in stored.items()}
    assert by_request == {"req-0": 1, "req-1": 3, "req-2": 100}


# --- sampling ------------------------------------------------------------------------------------


def test_sampling_zero_writes_nothing_through_the_handler(s3, load_inference, sample_bundle, lambda_context, capsys) -> None:
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET, capture_sampling="0.0")
    calls = count_attempts(mod.service.capturer.sink.client, "PutObject")
    for i in range(20):
        resp = post(mod, lambda_context, {"instances": rows(sample_bundle, 2)}, request_id=f"r{i}")
        assert resp["statusCode"] == 200 and len(response_json(resp)["predictions"]) == 2
    assert objects(s3) == {} and calls == []
    assert metric_points(capsys.readouterr().out, mn.CAPTURED_ROWS) == []


def test_sampling_through_the_handler_captures_a_share(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET, capture_sampling="0.3")
    assert mod.service.capturer.sampling == 0.3
    mod.service.capturer.rng = random.Random(7)
    n = 200
    for i in range(n):
        assert post(mod, lambda_context, {"instances": rows(sample_bundle, 1)}, request_id=f"r{i}")["statusCode"] == 200
    _assert_binomial(len(objects(s3)), n, 0.3)


def test_sampling_point_three_of_2000_requests(s3, sample_bundle) -> None:
    """Driven through the service (same Capturer and S3 sink as the handler) to stay fast."""
    make_bucket(s3)
    service = inference_service(sample_bundle, ServingSettings(capture_sink="s3", capture_sampling=0.3), {"MS_CAPTURE_BUCKET": BUCKET})
    service.capturer.rng = random.Random(2026)
    payload = {"instances": rows(sample_bundle, 1)}
    n = 2000
    for i in range(n):
        service.predict(payload, f"r{i:04d}")
    stored = objects(s3)
    _assert_binomial(len(stored), n, 0.3)
    assert all(len(read_jsonl_gz(v)) == 1 for v in list(stored.values())[:20])


def _assert_binomial(k: int, n: int, p: float, sds: float = 4.0) -> None:
    sd = math.sqrt(n * p * (1 - p))
    assert abs(k - n * p) <= sds * sd, f"{k} of {n} captured; expected {n * p:.0f} +- {sds * sd:.0f}"


# --- redaction and hashing -----------------------------------------------------------------------


def test_redacted_features_absent_and_hashed_ones_salted_sha256(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET, redact_features='["island"]', hash_features="sex,body_mass_g", capture_hash_salt=SALT)
    sent = rows(sample_bundle, 8)
    assert post(mod, lambda_context, {"instances": sent})["statusCode"] == 200
    (data,) = objects(s3).values()
    records = read_jsonl_gz(data)

    def sha(text: str) -> str:
        return "sha256:" + hashlib.sha256((SALT + text).encode()).hexdigest()

    for r, row in zip(records, sent):
        assert "island" not in r["inputs"]
        assert set(r["inputs"]) == set(row) - {"island"}
        assert r["inputs"]["bill_length_mm"] == row["bill_length_mm"]  # untouched
        for f in ("sex", "body_mass_g"):
            if row[f] is None:
                assert r["inputs"][f] is None  # missingness stays visible
                continue
            h = r["inputs"][f]
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", h)
            assert h != row[f] and str(row[f]) not in h
            assert h == sha(row[f] if isinstance(row[f], str) else json.dumps(row[f]))
    # same value -> same hash, different value -> different hash
    by_value: dict[Any, set[str]] = {}
    for r, row in zip(records, sent):
        if row["sex"] is not None:
            by_value.setdefault(row["sex"], set()).add(r["inputs"]["sex"])
    assert len(by_value) == 2 and all(len(h) == 1 for h in by_value.values())
    assert len(set.union(*by_value.values())) == 2
    assert SALT not in data.decode("latin-1") and "Torgersen" not in json.dumps(records)


def test_hashed_features_use_the_salt_the_stack_generated_in_secrets_manager(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    generated = "g3n3rated-salt-of-48-characters-0123456789abcdef"
    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name="salt", SecretString=generated)["ARN"]
    mod = load_inference(capture_bucket=BUCKET, hash_features="sex", MS_CAPTURE_HASH_SALT_SECRET_ARN=arn)
    sent = [r for r in rows(sample_bundle, 20) if r["sex"] is not None][:3]
    assert post(mod, lambda_context, {"instances": sent})["statusCode"] == 200
    (data,) = objects(s3).values()
    for r, row in zip(read_jsonl_gz(data), sent):
        assert r["inputs"]["sex"] == "sha256:" + hashlib.sha256((generated + row["sex"]).encode()).hexdigest()


def test_without_a_salt_hashed_features_are_redacted_never_written_plain(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    mod = load_inference(
        capture_bucket=BUCKET,
        hash_features="sex",
        MS_CAPTURE_HASH_SALT_SECRET_ARN="arn:aws:secretsmanager:us-east-1:123456789012:secret:missing",
    )
    sent = rows(sample_bundle, 5)
    assert post(mod, lambda_context, {"instances": sent})["statusCode"] == 200  # serving is unaffected
    (data,) = objects(s3).values()
    records = read_jsonl_gz(data)
    assert len(records) == 5 and all("sex" not in r["inputs"] for r in records)
    assert all(r["inputs"]["island"] == row["island"] for r, row in zip(records, sent))


# --- Firehose ------------------------------------------------------------------------------------


def test_firehose_sink_delivers_records_under_the_model_prefix(s3, load_inference, sample_bundle, lambda_context) -> None:
    make_bucket(s3)
    m = sample_bundle.manifest
    prefix = model_capture_prefix(m.model_name, m.version)
    boto3.client("firehose", region_name="us-east-1").create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose-captures",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": prefix,
            "ErrorOutputPrefix": "errors/captures/",
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
        },
    )
    mod = load_inference(capture_bucket=BUCKET, capture_sink="firehose", firehose_stream=STREAM)
    assert type(mod.service.capturer.sink).__name__ == "FirehoseCaptureSink"

    before = utc_now_ms()
    answers, sent = {}, {}
    for rid, n in (("fh-1", 3), ("fh-2", 5)):
        sent[rid] = rows(sample_bundle, n)
        resp = post(mod, lambda_context, {"instances": sent[rid]}, kind="http_v2", request_id=rid)
        assert resp["statusCode"] == 200
        answers[rid] = response_json(resp)
    after = datetime.now(UTC)

    stored = objects(s3)
    assert stored and all(k.startswith(prefix) for k in stored)
    # moto appends YYYY/MM/DD/HH/ (Firehose's default): the readers' hour prefixes find them
    hour_dirs = {p for t in (before, after) for p in hour_prefixes(m.model_name, m.version, t)}
    assert all(any(k.startswith(p) for p in hour_dirs) for k in stored)
    records = [r for data in stored.values() for r in decode_jsonl(data)]
    assert sorted((r["request_id"], r["row"]) for r in records) == [(rid, i) for rid in ("fh-1", "fh-2") for i in range(len(sent[rid]))]
    for r in records:
        answer = answers[r["request_id"]]
        assert r["inputs"] == sent[r["request_id"]][r["row"]]
        assert r["prediction"] == answer["predictions"][r["row"]]
        assert r["probabilities"] == dict(zip(answer["classes"], answer["probabilities"][r["row"]]))
        assert before <= parse_utc(r["event_time"]) <= after


# --- faults: the prediction is answered, the capture retried once and counted ---------------------


def _deny_put_policy() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}],
        }
    )


@pytest.mark.parametrize("fault", ["bucket_missing", "access_denied", "endpoint_unreachable"])
def test_capture_fault_still_answers_retries_once_and_counts(s3, load_inference, sample_bundle, lambda_context, capsys, fault) -> None:
    if fault != "bucket_missing":
        make_bucket(s3)
    if fault == "access_denied":
        # moto 5.2 enforces an explicit Deny of a bucket policy on object writes (a bare 403)
        s3.put_bucket_policy(Bucket=BUCKET, Policy=_deny_put_policy())
    mod = load_inference(capture_bucket=BUCKET)
    client = mod.service.capturer.sink.client
    boom = EndpointConnectionError(endpoint_url=f"https://{BUCKET}.s3.us-east-1.amazonaws.com") if fault == "endpoint_unreachable" else None
    attempts = count_attempts(client, "PutObject", fail=boom)

    resp = post(mod, lambda_context, {"instances": rows(sample_bundle, 3)}, request_id="faulty")

    assert resp["statusCode"] == 200
    answer = response_json(resp)
    assert len(answer["predictions"]) == 3 and answer["request_id"] == "faulty"
    assert len(attempts) == 2  # the first try and one retry
    if fault != "bucket_missing":
        s3.delete_bucket_policy(Bucket=BUCKET)
        assert objects(s3) == {}
    out = capsys.readouterr().out
    points = metric_points(out, mn.CAPTURE_ERRORS)
    assert [p[0] for p in points] == [1.0]
    value, dims, unit = points[0]
    m = sample_bundle.manifest
    assert dims[mn.DIM_MODEL_NAME] == m.model_name and dims[mn.DIM_MODEL_VERSION] == m.version
    assert unit == "Count"
    assert metric_points(out, mn.CAPTURED_ROWS) == []
    assert [p[0] for p in metric_points(out, mn.ROWS_SCORED)] == [3.0]


def test_access_denied_error_from_moto(s3) -> None:
    """What the access_denied case above relies on: moto refuses the PutObject with 403."""
    make_bucket(s3)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=_deny_put_policy())
    with pytest.raises(Exception) as info:
        s3.put_object(Bucket=BUCKET, Key="captures/x", Body=b"x")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_transient_fault_recovered_by_the_retry(s3, load_inference, sample_bundle, lambda_context, capsys) -> None:
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET)
    client = mod.service.capturer.sink.client
    calls: list[int] = []

    def flaky(**kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com")

    client.meta.events.register_first("before-send.s3.PutObject", flaky)
    assert post(mod, lambda_context, {"instances": rows(sample_bundle, 2)})["statusCode"] == 200
    assert len(calls) == 2
    (data,) = objects(s3).values()
    assert len(read_jsonl_gz(data)) == 2
    out = capsys.readouterr().out
    assert metric_points(out, mn.CAPTURE_ERRORS) == []
    assert [p[0] for p in metric_points(out, mn.CAPTURED_ROWS)] == [2.0]


def test_failure_while_building_records_writes_nothing(s3, load_inference, sample_bundle, lambda_context, capsys, monkeypatch) -> None:
    """A record that cannot be serialised (here: NaN) fails the whole object before any PutObject."""
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET)
    capturer = mod.service.capturer
    build = capturer.records

    def records_with_a_bad_last_row(*args: Any, **kwargs: Any) -> list[Any]:
        out = build(*args, **kwargs)
        last = out[-1]
        out[-1] = type(last)(**{**last.__dict__, "probabilities": {c: float("nan") for c in last.probabilities}})
        return out

    monkeypatch.setattr(capturer, "records", records_with_a_bad_last_row)
    puts = count_attempts(capturer.sink.client, "PutObject")
    resp = post(mod, lambda_context, {"instances": rows(sample_bundle, 50)})
    assert resp["statusCode"] == 200 and len(response_json(resp)["predictions"]) == 50
    assert puts == [] and objects(s3) == {}
    assert [p[0] for p in metric_points(capsys.readouterr().out, mn.CAPTURE_ERRORS)] == [1.0]


# --- metrics of the inference function -----------------------------------------------------------


def test_inference_metrics_in_emf(s3, load_inference, sample_bundle, lambda_context, capsys) -> None:
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET)
    m = sample_bundle.manifest
    assert post(mod, lambda_context, {"instances": rows(sample_bundle, 4)})["statusCode"] == 200
    out = capsys.readouterr().out
    (rows_scored,) = metric_points(out, mn.ROWS_SCORED)
    (latency,) = metric_points(out, mn.PREDICTION_LATENCY_MS)
    (captured,) = metric_points(out, mn.CAPTURED_ROWS)
    assert rows_scored[0] == 4.0 and captured[0] == 4.0
    assert 0.0 < latency[0] < 5_000 and latency[2] == "Milliseconds"
    for _, dims, _ in (rows_scored, latency, captured):
        assert dims[mn.DIM_MODEL_NAME] == m.model_name and dims[mn.DIM_MODEL_VERSION] == m.version


@pytest.mark.parametrize(
    "body, raw, status, reason",
    [
        ({"instances": [{"bill_length_mm": 40.0}]}, None, 422, "missing_feature"),
        ({"instances": []}, None, 422, "empty_batch"),
        (None, b'{"instances": [', 400, "malformed_json"),
        (None, b'{"instances": [' + b" " * 2048 + b"]}", 413, "body_too_large"),  # over max_body_bytes=1024
    ],
)
def test_rejected_request_counts_validation_reject_by_reason(
    s3, load_inference, sample_bundle, lambda_context, capsys, body, raw, status, reason
) -> None:
    """Each refusal is counted once, whichever layer refused it (the API reads the body, the service validates it)."""
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET, max_body_bytes="1024")
    resp = mod.handler(event("rest_v1", "POST", "/predict", body, raw=raw), lambda_context)
    assert resp["statusCode"] == status and response_json(resp)["error"] == reason
    out = capsys.readouterr().out
    points = metric_points(out, mn.VALIDATION_REJECTS)
    model_dims = {mn.DIM_MODEL_NAME: sample_bundle.manifest.model_name, mn.DIM_MODEL_VERSION: sample_bundle.manifest.version}
    # the total under the model's dimensions (dashboards, alarms) and the breakdown by reason
    assert sorted((v, tuple(sorted(d.items()))) for v, d, _ in points) == sorted(
        [(1.0, tuple(sorted(model_dims.items()))), (1.0, tuple(sorted({**model_dims, mn.DIM_REASON: reason}.items())))]
    )
    assert metric_points(out, mn.ROWS_SCORED) == [] and objects(s3, "captures/") == {}
    # and captured as a rejected request, under its own prefix, with the same reason
    (reject,) = [decode_jsonl(body)[0] for body in objects(s3, "rejects/").values()]
    assert reject["reason"] == reason and reject["status"] == status
