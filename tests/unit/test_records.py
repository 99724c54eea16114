"""The capture / feedback record format and S3 layout (modelserve/records.py)."""

from __future__ import annotations

import gzip
import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelserve.records import (
    CaptureRecord,
    FeedbackRecord,
    capture_key,
    decode_jsonl,
    encode_jsonl_gz,
    feedback_day_prefix,
    feedback_key,
    hour_prefixes,
    hour_sample_key,
    model_capture_prefix,
    model_report_prefix,
    parse_utc,
    report_key,
    utc_iso,
    window_hours,
)

T = datetime(2026, 11, 25, 17, 4, 5, 123456, tzinfo=UTC)


def _record(i: int = 0, **kw) -> CaptureRecord:
    base = dict(
        request_id="req-1",
        row=i,
        event_time=utc_iso(T),
        model_name="penguins",
        model_version="abc123",
        stage="prod",
        inputs={"x": 1.5, "c": "a", "n": None, "b": True},
        prediction="Adelie",
        probabilities={"Adelie": 0.9, "Gentoo": 0.1},
    )
    base.update(kw)
    return CaptureRecord(**base)


def test_capture_key_layout() -> None:
    assert capture_key("penguins", "abc123", T, "req-1") == (
        "captures/model=penguins/version=abc123/dt=2026-11-25/hour=17/170405123456-req-1.jsonl.gz"
    )


def test_capture_key_is_utc_whatever_the_zone() -> None:
    local = T.astimezone(timezone(timedelta(hours=-8)))
    assert capture_key("m", "v", local, "r") == capture_key("m", "v", T, "r")
    assert "/dt=2026-11-25/hour=17/" in capture_key("m", "v", local, "r")


def test_capture_key_sorts_by_time_within_an_hour() -> None:
    keys = [capture_key("m", "v", T + timedelta(seconds=s), "r") for s in (0, 1, 59, 600)]
    assert keys == sorted(keys)


def test_feedback_and_report_keys() -> None:
    assert feedback_key("penguins", T, "fb-1") == "feedback/model=penguins/dt=2026-11-25/170405123456-fb-1.jsonl.gz"
    assert report_key("penguins", T, "json") == "reports/model=penguins/dt=2026-11-25/20261125T170405Z.json"
    assert report_key("penguins", T, "html").startswith(model_report_prefix("penguins"))


def test_hour_sample_key_layout_is_utc_and_per_cap() -> None:
    assert hour_sample_key("penguins", "abc123", T, 10_000) == (
        "samples/model=penguins/version=abc123/cap=10000/dt=2026-11-25/hour=17.json.gz"
    )
    local = T.astimezone(timezone(timedelta(hours=5)))
    assert hour_sample_key("m", "v", local, 100) == hour_sample_key("m", "v", T, 100)
    assert hour_sample_key("m", "v", T, 100) != hour_sample_key("m", "v", T, 200)


def test_feedback_keys_sit_under_their_day_prefix() -> None:
    late = T.replace(hour=23).astimezone(timezone(timedelta(hours=-8)))  # still the 25th in UTC
    assert feedback_day_prefix("penguins", T.date()) == "feedback/model=penguins/dt=2026-11-25/"
    assert feedback_key("penguins", late, "b").startswith(feedback_day_prefix("penguins", T.date()))


def test_hour_prefixes_cover_our_layout_and_firehose_default() -> None:
    ours, firehose = hour_prefixes("penguins", "abc123", T)
    assert ours == "captures/model=penguins/version=abc123/dt=2026-11-25/hour=17/"
    assert firehose == "captures/model=penguins/version=abc123/2026/11/25/17/"
    assert capture_key("penguins", "abc123", T, "r").startswith(ours)
    assert ours.startswith(model_capture_prefix("penguins", "abc123"))


def test_window_hours() -> None:
    start = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)
    hours = window_hours(start, start + timedelta(hours=3))
    assert [h.strftime("%d %H") for h in hours] == ["25 22", "25 23", "26 00", "26 01"]
    assert window_hours(start, start) == []


def test_utc_iso_round_trip() -> None:
    assert utc_iso(T) == "2026-11-25T17:04:05.123456Z"
    assert parse_utc(utc_iso(T)) == T


def test_encode_decode_round_trip_and_determinism() -> None:
    records = [_record(i) for i in range(3)]
    data = encode_jsonl_gz(records)
    assert data[:2] == b"\x1f\x8b"
    assert data == encode_jsonl_gz(records)  # mtime=0: same records, same bytes
    rows = list(decode_jsonl(data))
    assert [CaptureRecord.from_dict(r) for r in rows] == records
    assert gzip.decompress(data).decode().count("\n") == 3


def test_decode_accepts_plain_jsonl_and_multi_member_gzip() -> None:
    a, b = _record(0), _record(1)
    plain = (a.to_json() + "\n\n" + b.to_json() + "\n").encode()
    assert [r["row"] for r in decode_jsonl(plain)] == [0, 1]
    members = encode_jsonl_gz([a]) + encode_jsonl_gz([b])  # Firehose / concatenated objects
    assert [r["row"] for r in decode_jsonl(members)] == [0, 1]


def test_decode_rejects_truncated_or_corrupt_objects_whole() -> None:
    data = encode_jsonl_gz([_record(i) for i in range(50)])
    with pytest.raises(ValueError, match="corrupt gzip"):
        list(decode_jsonl(data[: len(data) // 2]))
    with pytest.raises(ValueError, match="line 2"):
        list(decode_jsonl(b'{"row": 0}\n{"row": 1\n'))


def test_records_refuse_nan() -> None:
    with pytest.raises(ValueError):
        _record(prediction=math.nan).to_json()
    with pytest.raises(ValueError):
        encode_jsonl_gz([_record(0), _record(1, probabilities={"Adelie": math.inf})])


def test_feedback_record_json() -> None:
    fb = FeedbackRecord("req-1", 2, "Gentoo", utc_iso(T), "penguins")
    assert json.loads(fb.to_json()) == {
        "request_id": "req-1",
        "row": 2,
        "label": "Gentoo",
        "received_time": "2026-11-25T17:04:05.123456Z",
        "model_name": "penguins",
    }
    (row,) = decode_jsonl(encode_jsonl_gz([fb]))
    assert row["label"] == "Gentoo"


def test_decode_reads_what_the_line_by_line_parse_reads() -> None:
    """The one-array fast path and the line-by-line parse agree, blank lines and CRLF included."""
    records = [_record(i) for i in range(4)]
    text = "\r\n".join(r.to_json() for r in records) + "\n\n   \n"
    assert [CaptureRecord.from_dict(r) for r in decode_jsonl(text.encode())] == records
    # more values than lines: parsed line by line, which names the bad line
    with pytest.raises(ValueError, match="line 2"):
        decode_jsonl(b'{"row": 0}\n{"row": 1}, {"row": 2}\n')


def test_feedback_record_from_dict_and_row_keys() -> None:
    fb = FeedbackRecord("req-1", 2, "Gentoo", utc_iso(T), "penguins")
    (row,) = decode_jsonl(encode_jsonl_gz([fb]))
    assert FeedbackRecord.from_dict(row) == fb
    assert FeedbackRecord.from_dict({"request_id": 7, "row": "2", "label": 1.5}).key == ("7", 2)
    assert fb.key == _record(2).key == ("req-1", 2)  # joins a label to its capture row
    with pytest.raises(KeyError):
        FeedbackRecord.from_dict({"request_id": "r", "row": 0})


def test_from_dict_tolerates_missing_optional_fields() -> None:
    d = json.loads(_record().to_json())
    del d["stage"], d["probabilities"]
    r = CaptureRecord.from_dict(d)
    assert r.stage == "" and r.probabilities is None


_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.dictionaries(st.text(min_size=1, max_size=10), _json_scalar, max_size=6),
            st.one_of(st.text(max_size=10), st.floats(allow_nan=False, allow_infinity=False)),
            st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=8), st.floats(0, 1), max_size=4)),
        ),
        min_size=1,
        max_size=8,
    ),
    request_id=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40),
)
def test_round_trip_property(rows, request_id) -> None:
    records = [
        _record(i, request_id=request_id, inputs=inp, prediction=pred, probabilities=probs) for i, (inp, pred, probs) in enumerate(rows)
    ]
    decoded = [CaptureRecord.from_dict(d) for d in decode_jsonl(encode_jsonl_gz(records))]
    assert decoded == records
