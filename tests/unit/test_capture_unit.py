"""Capturer, sinks and Redactor without AWS (fake clients), plus the S3 sink against moto."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from modelserve.records import CaptureRecord, capture_key, decode_jsonl, utc_iso
from modelserve.schema import BundleManifest, FeatureKind, FeatureSpec, OutputSpec, Task
from serving.capture import (
    FIREHOSE_MAX_BATCH,
    FIREHOSE_MAX_BATCH_BYTES,
    FIREHOSE_MAX_RECORD_BYTES,
    Capturer,
    FirehoseCaptureSink,
    FirehoseDeliveryError,
    Redactor,
    S3CaptureSink,
    firehose_chunks,
)
from serving.validation import ColumnBatch, TypedColumn

T = datetime(2026, 11, 25, 17, 4, 5, 123456, tzinfo=UTC)
SALT = "0123456789abcdef-salt"

MANIFEST = BundleManifest(
    model_name="m",
    version="v1",
    features=(
        FeatureSpec("x", FeatureKind.NUMERIC, True),
        FeatureSpec("c", FeatureKind.CATEGORICAL, True, ("a", "b")),
        FeatureSpec("flag", FeatureKind.BOOLEAN),
    ),
    outputs=OutputSpec(Task.CLASSIFICATION, ("no", "yes")),
)


def _table(n: int) -> dict[str, np.ndarray]:
    return {
        "x": np.array([float(i) if i % 3 else np.nan for i in range(n)], dtype=np.float64),
        "c": np.array([("a", "b", None)[i % 3] for i in range(n)], dtype=object),
        "flag": np.array([float(i % 2) for i in range(n)], dtype=np.float64),
    }


def _scored(n: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    labels = np.array(["yes" if i % 2 else "no" for i in range(n)], dtype=object)
    probs = np.array([[0.25, 0.75] if i % 2 else [0.875, 0.125] for i in range(n)], dtype=np.float64)
    return _table(n), labels, probs


class RecordingSink:
    def __init__(self, failures: int = 0, exc: Exception | None = None) -> None:
        self.calls: list[tuple[str, list[CaptureRecord]]] = []
        self.failures = failures
        self.exc = exc or ConnectionError("down")

    def write(self, key: str, records: Any) -> None:
        self.calls.append((key, list(records)))
        if len(self.calls) <= self.failures:
            raise self.exc


def _capturer(sink: Any, **kw: Any) -> tuple[Capturer, list, list]:
    errors: list[Exception] = []
    captured: list[int] = []
    c = Capturer(MANIFEST, sink, "prod", on_error=errors.append, on_captured=captured.append, **kw)
    return c, errors, captured


# --- Capturer ------------------------------------------------------------------------------------


def test_records_carry_inputs_predictions_and_probabilities() -> None:
    c, _, _ = _capturer(RecordingSink())
    table, labels, probs = _scored(3)
    records = c.records("req", T, table, labels, probs)
    assert [r.row for r in records] == [0, 1, 2]
    assert records[0].inputs == {"x": None, "c": "a", "flag": False}  # NaN -> null, bool as bool
    assert records[1].inputs == {"x": 1.0, "c": "b", "flag": True}
    assert records[2].inputs == {"x": 2.0, "c": None, "flag": False}
    assert [r.prediction for r in records] == ["no", "yes", "no"]
    assert records[1].probabilities == {"no": 0.25, "yes": 0.75}
    assert {r.event_time for r in records} == {utc_iso(T)}
    assert {(r.model_name, r.model_version, r.stage, r.request_id) for r in records} == {("m", "v1", "prod", "req")}


def test_capture_writes_once_at_the_capture_key() -> None:
    sink = RecordingSink()
    c, errors, captured = _capturer(sink)
    assert c.capture("req", T, *_scored(4)) is True
    assert [k for k, _ in sink.calls] == [capture_key("m", "v1", T, "req")]
    assert captured == [4] and errors == []


def test_persistent_failure_retries_once_then_counts_one_error() -> None:
    sink = RecordingSink(failures=99)
    c, errors, captured = _capturer(sink)
    assert c.capture("req", T, *_scored(2)) is False
    assert len(sink.calls) == 2
    assert len(errors) == 1 and isinstance(errors[0], ConnectionError)
    assert captured == []


def test_transient_failure_is_recovered_by_the_retry() -> None:
    sink = RecordingSink(failures=1)
    c, errors, captured = _capturer(sink)
    assert c.capture("req", T, *_scored(2)) is True
    assert len(sink.calls) == 2 and sink.calls[0] == sink.calls[1]
    assert errors == [] and captured == [2]


def test_record_build_failure_counts_and_writes_nothing() -> None:
    sink = RecordingSink()
    c, errors, captured = _capturer(sink)
    table, labels, probs = _scored(3)
    del table["c"]  # a bug upstream: a column is missing
    assert c.capture("req", T, table, labels, probs) is False
    assert sink.calls == [] and len(errors) == 1 and captured == []


def test_a_failing_metric_hook_never_raises_nor_rewrites() -> None:
    sink = RecordingSink()

    def boom(*_: Any) -> None:
        raise RuntimeError("metrics backend down")

    c = Capturer(MANIFEST, sink, "prod", on_error=boom, on_captured=boom)
    assert c.capture("req", T, *_scored(2)) is True
    assert len(sink.calls) == 1  # on_captured failing is not a sink failure: no second write
    failing = Capturer(MANIFEST, RecordingSink(failures=9), "prod", on_error=boom, on_captured=boom)
    assert failing.capture("req", T, *_scored(2)) is False


def test_no_sink_or_zero_sampling_captures_nothing() -> None:
    c, errors, _ = _capturer(None)
    assert c.capture("req", T, *_scored(2)) is False and errors == []
    sink = RecordingSink()
    c, _, _ = _capturer(sink, sampling=0.0)
    assert not any(c.capture(f"r{i}", T, *_scored(1)) for i in range(200))
    assert sink.calls == []


def test_sampling_share_within_a_binomial_bound() -> None:
    sink = RecordingSink()
    c, _, _ = _capturer(sink, sampling=0.3, rng=random.Random(11))
    n = 2000
    for i in range(n):
        c.capture(f"r{i}", T, *_scored(1))
    sd = (n * 0.3 * 0.7) ** 0.5
    assert abs(len(sink.calls) - 600) <= 4 * sd


# --- Redactor ------------------------------------------------------------------------------------


def _sha(text: str, salt: str = SALT) -> str:
    return "sha256:" + hashlib.sha256((salt + text).encode()).hexdigest()


def test_redactor_removes_and_hashes() -> None:
    r = Redactor(frozenset({"secret"}), frozenset({"email", "age", "vip"}), SALT)
    out = r.apply({"secret": "s", "email": "a@example.com", "age": 42.0, "vip": True, "keep": 1.0, "none": None})
    assert "secret" not in out
    assert out["email"] == _sha("a@example.com")
    assert out["age"] == _sha("42.0")  # non-strings: their JSON text
    assert out["vip"] == _sha("true")
    assert out["keep"] == 1.0 and out["none"] is None
    assert r.apply({"email": None}) == {"email": None}


@settings(max_examples=50, deadline=None)
@given(a=st.text(max_size=30), b=st.text(max_size=30))
def test_hash_equal_iff_values_equal_and_salt_matters(a: str, b: str) -> None:
    r = Redactor(hash=frozenset({"f"}), salt=SALT)
    ha, hb = r.apply({"f": a})["f"], r.apply({"f": b})["f"]
    assert (ha == hb) == (a == b)
    assert ha != a
    assert ha != Redactor(hash=frozenset({"f"}), salt=SALT + "x").apply({"f": a})["f"]


def test_capturer_applies_redaction() -> None:
    c, _, _ = _capturer(RecordingSink(), redactor=Redactor(frozenset({"x"}), frozenset({"c"}), SALT))
    records = c.records("req", T, *_scored(3))
    assert [r.inputs for r in records] == [
        {"c": _sha("a"), "flag": False},
        {"c": _sha("b"), "flag": True},
        {"c": None, "flag": False},
    ]


# --- S3 sink (moto) ------------------------------------------------------------------------------


@pytest.fixture
def s3(aws_credentials: None) -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="unit-captures")
        yield client


def test_s3_sink_single_put_of_a_complete_object(s3) -> None:
    calls: list[dict] = []
    s3.meta.events.register("before-call.s3.PutObject", lambda params, **_: calls.append(params))
    c, errors, _ = _capturer(S3CaptureSink(s3, "unit-captures"))
    assert c.capture("req", T, *_scored(300))
    assert len(calls) == 1
    key = capture_key("m", "v1", T, "req")
    obj = s3.get_object(Bucket="unit-captures", Key=key)
    rows = list(decode_jsonl(obj["Body"].read()))
    assert [r["row"] for r in rows] == list(range(300))
    assert obj["ContentType"] == "application/x-ndjson"


def test_a_record_json_cannot_carry_is_written_with_strings_and_flagged_never_dropped(s3) -> None:
    """A non-finite model output (NaN, ±Infinity) is written as a string on a flagged record: the request is captured whole."""
    c, errors, _ = _capturer(S3CaptureSink(s3, "unit-captures"))
    table, labels, probs = _scored(20)
    probs[17, 0], probs[18, 1] = np.nan, -np.inf
    assert c.capture("req", T, table, labels, probs) is True
    assert errors == []
    (obj,) = s3.list_objects_v2(Bucket="unit-captures")["Contents"]
    lines = decode_jsonl(s3.get_object(Bucket="unit-captures", Key=obj["Key"])["Body"].read())
    assert [r["row"] for r in lines] == list(range(20))
    assert [r["row"] for r in lines if r.get("encoding_fallback")] == [17, 18]
    assert list(lines[17]["probabilities"].values())[0] == "NaN" and list(lines[18]["probabilities"].values())[1] == "-Infinity"
    assert all(isinstance(v, float) for r in lines[:17] for v in r["probabilities"].values())


def test_s3_sink_missing_bucket_raises_client_error(s3) -> None:
    with pytest.raises(ClientError):
        S3CaptureSink(s3, "no-such-bucket").write("k", [])


# --- Firehose sink (fake client) -----------------------------------------------------------------


class FakeFirehose:
    """Records every PutRecordBatch; ``fail`` decides per (call number, record index) to fail."""

    def __init__(self, fail: Any = None) -> None:
        self.batches: list[list[bytes]] = []
        self.delivered: list[bytes] = []
        self.fail = fail or (lambda call, i: False)

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict]) -> dict:
        call = len(self.batches)
        data = [r["Data"] for r in Records]
        self.batches.append(data)
        answers = []
        for i, d in enumerate(data):
            if self.fail(call, i):
                answers.append({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"})
            else:
                self.delivered.append(d)
                answers.append({"RecordId": f"{call}-{i}"})
        return {"FailedPutCount": sum("ErrorCode" in a for a in answers), "RequestResponses": answers}


def _big_records(n: int, size: int) -> list[CaptureRecord]:
    return [CaptureRecord("req", i, utc_iso(T), "m", "v1", "prod", {"blob": "x" * size}, "yes", {"no": 0.5, "yes": 0.5}) for i in range(n)]


def _lines(records: list[CaptureRecord]) -> list[bytes]:
    return [(r.to_json() + "\n").encode() for r in records]


def test_firehose_batch_over_the_record_limit_is_split_on_line_boundaries() -> None:
    records = _big_records(20, 300_000)  # ~6 MB in all: > 1,000 KiB and > 4 MiB
    client = FakeFirehose()
    FirehoseCaptureSink(client, "stream").write("key", records)
    assert len(client.batches) >= 2
    for batch in client.batches:
        assert len(batch) <= FIREHOSE_MAX_BATCH
        assert sum(map(len, batch)) <= FIREHOSE_MAX_BATCH_BYTES
        for chunk in batch:
            assert len(chunk) <= FIREHOSE_MAX_RECORD_BYTES <= 1000 * 1024
            assert chunk.endswith(b"\n")
            assert all(json.loads(line) for line in chunk.splitlines())  # whole JSON lines only
    assert b"".join(client.delivered) == b"".join(_lines(records))  # every line once, in order
    assert max(len(c) for c in client.delivered) > 600_000  # lines are packed, not one per record


def test_firehose_small_request_is_one_record() -> None:
    client = FakeFirehose()
    FirehoseCaptureSink(client, "stream").write("key", _big_records(5, 10))
    assert len(client.batches) == 1 and len(client.batches[0]) == 1


def test_firehose_partial_failure_retry_resends_only_the_failed_records() -> None:
    records = _big_records(12, 300_000)  # 4 Firehose records of 3 lines, in one or two batches
    client = FakeFirehose(fail=lambda call, i: call == 0 and i == 1)
    sink = FirehoseCaptureSink(client, "stream")
    with pytest.raises(FirehoseDeliveryError):
        sink.write("key", records)
    sink.write("key", records)  # the capturer's retry: same key
    assert sorted(client.delivered) == sorted(firehose_chunks(_lines(records)))  # nothing twice, nothing lost
    assert client.batches[-1] == [firehose_chunks(_lines(records))[1]]  # the retry sent only the failed one
    # a write for another request starts afresh
    sink.write("other", records[:3])
    assert client.batches[-1] == firehose_chunks(_lines(records[:3]))


def test_firehose_partial_failure_through_the_capturer() -> None:
    client = FakeFirehose(fail=lambda call, i: call == 0 and i == 0)
    c, errors, captured = _capturer(FirehoseCaptureSink(client, "stream"))
    assert c.capture("req", T, *_scored(5)) is True
    assert len(client.batches) == 2 and errors == [] and captured == [5]
    assert len(client.delivered) == 1
    assert [r["row"] for r in decode_jsonl(client.delivered[0])] == list(range(5))


def test_firehose_line_over_the_limit_is_an_error_not_a_send() -> None:
    client = FakeFirehose()
    c, errors, _ = _capturer(FirehoseCaptureSink(client, "stream", max_record_bytes=1000))
    table, labels, probs = _scored(1)
    table["c"] = np.array(["a" * 2000], dtype=object)
    assert c.capture("req", T, table, labels, probs) is False
    assert client.batches == [] and len(errors) == 1 and isinstance(errors[0], ValueError)


@settings(max_examples=80, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 120), min_size=0, max_size=60),
    limit=st.integers(120, 400),
)
def test_chunks_property(sizes: list[int], limit: int) -> None:
    lines = [b"x" * (s - 1) + b"\n" for s in sizes]
    chunks = firehose_chunks(lines, limit)
    assert b"".join(chunks) == b"".join(lines)
    assert all(0 < len(c) <= limit and c.endswith(b"\n") for c in chunks)
    # greedy packing: a chunk is closed only when the next line would not fit
    for a, b in zip(chunks, chunks[1:]):
        first_next = b.split(b"\n", 1)[0] + b"\n"
        assert len(a) + len(first_next) > limit


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.floats(allow_infinity=False), st.booleans(), st.integers(-(10**6), 10**6)), max_size=30),
    kind=st.sampled_from([FeatureKind.NUMERIC, FeatureKind.BOOLEAN, FeatureKind.CATEGORICAL]),
)
def test_json_column_matches_json_value(values: list[Any], kind: FeatureKind) -> None:
    """The column-wise conversion the capturer uses gives json_value's answer for every cell."""
    from modelserve.schema import json_value
    from serving.capture import json_column

    spec = FeatureSpec("f", kind, True, ("a", "b") if kind is FeatureKind.CATEGORICAL else ())
    if kind is FeatureKind.CATEGORICAL:
        col = np.array([None if v is None else str(v) for v in values], dtype=object)
    else:
        col = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    expected = [json_value(spec, v) for v in col]
    got = json_column(spec, col)
    assert json.dumps(got) == json.dumps(expected)
    assert [type(v) for v in got] == [type(v) for v in expected]


# ------------------------------------------------------------------ refused requests


def _refusal() -> list[Any]:
    from modelserve.records import RejectedField

    return [
        RejectedField("unseen_category", 0, "c", "unseen category 'Atlantis'; known: ['a', 'b']"),
        RejectedField("null_not_allowed", 1, "flag", "null is not allowed for this feature"),
        RejectedField("wrong_type", 1, "x", "expected a number, got a string"),
    ]


def test_reject_is_written_under_its_own_prefix_with_the_reason_per_field() -> None:
    sink = RecordingSink()
    c, errors, _ = _capturer(RecordingSink(), reject_sink=sink)
    assert c.capture_reject("req-1", T, "unseen_category", 422, _refusal(), rows=2) is True
    ((key, (record,)),) = sink.calls
    assert key.startswith("rejects/model=m/version=v1/dt=2026-11-25/hour=17/170405123456-req-1")
    d = record.to_dict()
    assert (d["reason"], d["status"], d["rows"], d["rows_with_errors"], d["errors_total"]) == ("unseen_category", 422, 2, 2, 3)
    assert [(e["row"], e["field"], e["reason"]) for e in d["errors"]] == [
        (0, "c", "unseen_category"),
        (1, "flag", "null_not_allowed"),
        (1, "x", "wrong_type"),
    ]
    assert errors == []


def test_reject_keeps_redaction_a_redacted_or_hashed_features_message_is_never_written() -> None:
    sink = RecordingSink()
    c, _, _ = _capturer(RecordingSink(), reject_sink=sink, redactor=Redactor(frozenset({"c"}), frozenset({"x"}), SALT))
    c.capture_reject("req-1", T, "unseen_category", 422, _refusal(), rows=2)
    line = sink.calls[0][1][0].to_json()
    assert "Atlantis" not in line and "got a string" not in line  # the values' echoes are gone
    errors = json.loads(line)["errors"]
    assert [e["field"] for e in errors] == ["c", "flag", "x"] and "message" not in errors[0] and "message" in errors[1]


def test_reject_follows_capture_sampling() -> None:
    sink = RecordingSink()
    c, _, _ = _capturer(RecordingSink(), reject_sink=sink, sampling=0.0)
    assert c.capture_reject("r", T, "wrong_type", 422, _refusal(), rows=1) is False and sink.calls == []
    sink = RecordingSink()
    c, _, _ = _capturer(RecordingSink(), reject_sink=sink, sampling=0.25, rng=random.Random(7))
    for i in range(2000):
        c.capture_reject(f"r{i}", T, "wrong_type", 422, _refusal(), rows=1)
    assert abs(len(sink.calls) - 500) < 4 * (2000 * 0.25 * 0.75) ** 0.5


def test_reject_record_is_bounded_whatever_the_request_held() -> None:
    from modelserve.records import MAX_REJECT_ERRORS, MAX_REJECT_TEXT, RejectedField

    sink = RecordingSink()
    c, _, _ = _capturer(RecordingSink(), reject_sink=sink)
    huge = [RejectedField("unknown_feature", i, "k" * 10_000 + "\ud800", "v" * 100_000) for i in range(500)]
    c.capture_reject("r" * 5000, T, "unknown_feature", 422, huge, rows=500)
    record = sink.calls[0][1][0]
    line = record.to_json()
    assert len(line) < 30_000 and len(record.errors) == MAX_REJECT_ERRORS and record.errors_total == 500
    assert all(len(e.message or "") <= MAX_REJECT_TEXT + 1 for e in record.errors)
    assert line.encode("utf-8")  # a lone surrogate in a field name does not break the encoding


def test_a_failing_reject_sink_is_retried_once_counted_and_never_raises() -> None:
    sink = RecordingSink(failures=5)
    c, errors, _ = _capturer(RecordingSink(), reject_sink=sink)
    assert c.capture_reject("r", T, "wrong_type", 422, _refusal(), rows=1) is False
    assert len(sink.calls) == 2 and len(errors) == 1


def test_reject_record_round_trips_and_its_key_time_is_read_back() -> None:
    from modelserve.records import RejectRecord, key_time, reject_key, utc_iso

    c, _, _ = _capturer(RecordingSink(), reject_sink=RecordingSink())
    record = c.reject_record("req-9", T, "wrong_type", 422, _refusal(), rows=3)
    assert RejectRecord.from_dict(json.loads(record.to_json())) == record
    assert key_time(reject_key("m", "v1", T, "req-9")) == utc_iso(T)
    assert key_time("rejects/model=m/version=v1/other.json") is None


@pytest.mark.parametrize(
    "payload, rows",
    [
        ({"instances": [{}, {}, {}]}, 3),
        ({"dataframe_split": {"columns": ["x"], "data": [[1], [2]]}}, 2),
        ({"dataframe_split": {"data": "x"}}, None),
        ("junk", None),
        (None, None),
        (ColumnBatch(["x", "y"], [TypedColumn(np.zeros(4), np.zeros(4, dtype=bool)), ["a", "b", "c", "d"]]), 4),
    ],
)
def test_rows_of_a_request_body(payload: Any, rows: int | None) -> None:
    from serving.capture import rows_of

    assert rows_of(payload) == rows


def test_reject_is_written_by_the_executor_after_the_answer() -> None:
    queued: list[Any] = []

    class Later:
        def submit(self, work: Any) -> bool:
            queued.append(work)
            return True

    sink = RecordingSink()
    c, _, _ = _capturer(RecordingSink(), reject_sink=sink, executor=Later())
    assert c.capture_reject("r", T, "wrong_type", 422, _refusal(), rows=1) is True
    assert sink.calls == []  # nothing on the answer's path
    assert [work() for work in queued] == [True] and len(sink.calls) == 1
