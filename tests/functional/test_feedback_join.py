"""The drift check joins labels as /feedback keeps them: a correction replaces the label it names, a
different label without one is reported as conflicting (the first is used), and labels received in
the window that join none of its rows are counted as unmatched (S3 in moto)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from driftcheck.feedback_reader import read_feedback
from driftcheck.store import CaptureLocation
from modelserve.records import FeedbackRecord, encode_jsonl_gz, feedback_key, utc_iso

BUCKET = "labels-join"
START = datetime(2026, 11, 25, 10, tzinfo=UTC)
END = START + timedelta(hours=2)


def _put(s3: Any, at: datetime, *records: FeedbackRecord) -> None:
    s3.put_object(Bucket=BUCKET, Key=feedback_key("penguins", at, f"b{at:%H%M%S}"), Body=encode_jsonl_gz(list(records)))


def _label(rid: str, label: str, at: datetime, **kw: Any) -> FeedbackRecord:
    return FeedbackRecord(rid, 0, label, utc_iso(at), "penguins", **kw)


def test_corrections_replace_conflicts_are_reported_and_unmatched_labels_counted(s3: Any) -> None:
    s3.create_bucket(Bucket=BUCKET)
    t = START + timedelta(minutes=10)
    _put(s3, t, _label("raced", "Adelie", t), _label("corrected", "Adelie", t), _label("nobody-captured-this", "Gentoo", t))
    later = t + timedelta(minutes=5)
    _put(s3, later, _label("raced", "Gentoo", later), replace(_label("corrected", "Chinstrap", later, reason="misread"), replaces="Adelie"))
    wanted = {("raced", 0), ("corrected", 0)}
    labels = read_feedback(s3, CaptureLocation(BUCKET, "penguins", "v1"), START, END, wanted, now=END + timedelta(days=2))
    assert labels[("raced", 0)].label == "Adelie"  # the first label held; the racing one is not used
    assert labels.conflicting == {("raced", 0)}
    assert labels[("corrected", 0)].label == "Chinstrap" and labels[("corrected", 0)].replaces == "Adelie"
    assert labels.unmatched == 1


def test_a_feedback_record_keeps_its_caller_and_correction_through_json() -> None:
    record = replace(_label("r", "Gentoo", START, caller="key-1", reason="re-measured"), replaces="Adelie")

    assert FeedbackRecord.from_dict(json.loads(record.to_json())) == record
    plain = _label("r", "Gentoo", START)
    assert set(json.loads(plain.to_json())) == {"request_id", "row", "label", "received_time", "model_name"}
