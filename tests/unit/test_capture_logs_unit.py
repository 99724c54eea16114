"""The logs sink's lines and the drift check's decoding of every form they reach S3 in, without AWS;
Parquet as Firehose converts it, read locally (the drift-check asset has no Parquet reader)."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from devtools.parquet_captures import parquet_rows
from driftcheck.capture_formats import decode_capture_object
from modelserve.records import RECORD_TYPE_FIELD, CaptureRecord, RowExplanation, encode_jsonl_gz
from serving import capture_logs
from serving.capture_logs import LogsCaptureSink, capture_line, redirect_lines


def _record(i: int, inputs: dict[str, Any] | None = None, probabilities: dict[str, float] | None = None) -> CaptureRecord:
    return CaptureRecord(
        request_id="req-1",
        row=i,
        event_time="2026-11-25T17:04:05.123456Z",
        model_name="m",
        model_version="v1",
        stage="prod",
        inputs=inputs if inputs is not None else {"x": float(i), "c": "a"},
        prediction="yes",
        probabilities=probabilities if probabilities is not None else {"no": 0.25, "yes": 0.75},
    )


@pytest.fixture
def lines() -> Any:
    written: list[str] = []
    redirect_lines(written.append)
    yield written
    redirect_lines(None)


def envelope(messages: list[str], message_type: str = "DATA_MESSAGE") -> bytes:
    doc = {
        "messageType": message_type,
        "owner": "123456789012",
        "logGroup": "/aws/lambda/f",
        "logStream": "s",
        "subscriptionFilters": ["captures"],
        "logEvents": [{"id": str(i), "timestamp": 0, "message": m} for i, m in enumerate(messages)],
    }
    return gzip.compress(json.dumps(doc).encode())


def test_each_record_is_one_marked_line_that_reads_back_as_the_same_record(lines) -> None:
    records = [_record(i) for i in range(5)]
    LogsCaptureSink().write("unused-key", records)
    text = "".join(lines)
    assert len(lines) == 1  # one write per request: another writer's lines never interleave
    parsed = [json.loads(line) for line in text.splitlines()]
    assert [p[RECORD_TYPE_FIELD] for p in parsed] == ["captures"] * 5
    assert [CaptureRecord.from_dict(p) for p in parsed] == records


def test_a_large_batch_is_one_line_per_row_each_under_the_line_limit(lines) -> None:
    records = [_record(i, {"x": float(i), "c": "v" * 500}) for i in range(1000)]
    LogsCaptureSink().write("k", records)
    out = "".join(lines).splitlines()
    assert len(out) == 1000
    assert max(len(line.encode()) + 1 for line in out) <= capture_logs.MAX_LINE_BYTES
    assert sorted(json.loads(line)["row"] for line in out) == list(range(1000))


def test_a_row_over_the_line_limit_is_left_out_and_counted_as_lost(lines) -> None:
    lost: list[int] = []
    sink = LogsCaptureSink(on_lost=lost.append, max_line_bytes=2000)
    records = [_record(0), _record(1, {"x": 1.0, "c": "v" * 5000}), _record(2)]
    sink.write("k", records)
    rows = [json.loads(line)["row"] for line in "".join(lines).splitlines()]
    assert rows == [0, 2]
    assert lost == [1] and sink.lost == 1


def test_log_envelopes_back_to_back_yield_only_the_capture_lines() -> None:
    records = [_record(i) for i in range(3)]
    first = envelope([capture_line(records[0]), "START RequestId: abc", '{"level":"INFO","message":"not a capture"}'])
    second = envelope([capture_line(records[1]), capture_line(records[2])])
    control = envelope(["CWL CONTROL MESSAGE: Checking health of destination Firehose."], "CONTROL_MESSAGE")
    rows = decode_capture_object(first + control + second)  # Firehose concatenates gzip members
    assert [CaptureRecord.from_dict(r) for r in rows] == records


def test_json_lines_objects_read_as_before() -> None:
    records = [_record(i) for i in range(4)]
    assert [CaptureRecord.from_dict(r) for r in decode_capture_object(encode_jsonl_gz(records))] == records


def _parquet(rows: list[dict[str, Any]], extra: tuple[tuple[str, Any], ...] = ()) -> bytes:
    schema = pa.schema(
        [
            ("record_type", pa.string()),
            ("request_id", pa.string()),
            ("row", pa.int32()),
            ("event_time", pa.string()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("stage", pa.string()),
            ("inputs", pa.struct([("x", pa.float64()), ("c", pa.string())])),
            ("prediction", pa.string()),
            ("probabilities", pa.map_(pa.string(), pa.float64())),
            *extra,
        ]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def test_parquet_as_firehose_converts_it_reads_back_as_the_records() -> None:
    records = [_record(i) for i in range(3)]
    dicts = [json.loads(capture_line(r)) for r in records]
    for d in dicts:
        d["probabilities"] = list(d["probabilities"].items())  # how a map is handed to pyarrow
    data = _parquet(dicts)
    assert [CaptureRecord.from_dict(r) for r in parquet_rows(data)] == records
    with pytest.raises(ValueError, match="no Parquet reader"):  # the Lambda drift check counts it unreadable
        decode_capture_object(data)


def test_parquet_explanations_read_back_as_the_records_explanations() -> None:
    explained = dataclasses.replace(_record(0), explanation=RowExplanation(0.9, 0.4, {"x": 0.3, "c": 0.2}, "a", sampled=True))
    records = [explained, _record(1)]
    dicts = [json.loads(capture_line(r)) for r in records]
    for d in dicts:
        d["probabilities"] = list(d["probabilities"].items())
        if "explanation" in d:
            d["explanation"]["values"] = list(d["explanation"]["values"].items())
    explanation = pa.struct(
        [
            ("output", pa.float64()),
            ("base_value", pa.float64()),
            ("values", pa.map_(pa.string(), pa.float64())),
            ("class", pa.string()),
            ("method", pa.string()),
            ("sampled", pa.bool_()),
        ]
    )  # the Glue table's explanation column (cdk/capture.py), as Firehose's conversion writes it
    data = _parquet(dicts, (("explanation", explanation),))
    assert [CaptureRecord.from_dict(r) for r in parquet_rows(data)] == records


def test_parquet_regression_predictions_come_back_as_numbers() -> None:
    d = json.loads(capture_line(_record(0)))
    d["prediction"], d["probabilities"] = "3.25", None
    (row,) = parquet_rows(_parquet([d]))
    assert row["prediction"] == 3.25


@pytest.mark.parametrize(
    "data",
    [b"PAR1 not really parquet", gzip.compress(b'{"messageType":"DATA_MESSAGE","logEvents":[', mtime=0)],
    ids=["parquet", "envelope"],
)
def test_a_corrupt_object_raises_so_the_reader_skips_and_counts_it(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_capture_object(data)
