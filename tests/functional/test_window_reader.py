"""Reading a window of captures: hour samples make each capture read once, and the merged sample
is still a uniform sample of the window."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import boto3
import numpy as np
import pytest
from moto import mock_aws

from driftcheck.hour_samples import HOUR_SETTLE
from driftcheck.store import CaptureLocation
from driftcheck.window_reader import ReadOptions, WindowRead, read_window
from modelserve.records import SAMPLES_ROOT, hour_sample_key
from modelserve.schema import rows_to_table
from serving.capture import Capturer, S3CaptureSink

BUCKET = "window-reader-test"


@pytest.fixture
def s3(aws_credentials):
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _capture(s3, bundle, at: datetime, request_id: str, n_rows: int) -> None:
    m = bundle.manifest
    rows = [r["inputs"] for r in bundle.reference_rows()[:n_rows]]
    table = rows_to_table(m.features, rows)
    labels = np.array([m.outputs.classes[0]] * n_rows, dtype=object)
    Capturer(m, S3CaptureSink(s3, BUCKET), stage="test").capture(request_id, at, table, labels, None)


def _read(
    s3, bundle, window: tuple[datetime, datetime], now: datetime, sample_cap: int, *, hour_samples: bool = True, neighbours: bool = False
) -> WindowRead:
    where = CaptureLocation(BUCKET, bundle.manifest.model_name, bundle.manifest.version, neighbours=neighbours)
    return read_window(s3, where, *window, ReadOptions(sample_cap, hour_samples=hour_samples), now=now)


def _hour(dt: datetime) -> datetime:
    return dt.replace(minute=0, second=0, microsecond=0)


def test_settled_hours_are_read_once_then_taken_from_their_samples(s3, sample_bundle) -> None:
    m = sample_bundle.manifest
    now = _hour(datetime.now(UTC)) + timedelta(minutes=30)  # whatever the clock, the last hour has settled
    h3 = _hour(now) - timedelta(hours=3)  # three whole hours, all settled
    for h in range(3):
        for i in range(4):
            _capture(s3, sample_bundle, h3 + timedelta(hours=h, minutes=10 * i + 1), f"req-{h}-{i}", 5)
    start, end = h3 - timedelta(minutes=30), now  # a partial edge hour at each end
    first = _read(s3, sample_bundle, (start, end), now, 1000)
    assert first.rows_seen == 60 and len(first.rows) == 60 and first.cached_hours == 0
    assert first.objects_read == 12
    stored = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{SAMPLES_ROOT}/")["Contents"])
    assert stored == sorted(hour_sample_key(m.model_name, m.version, h3 + timedelta(hours=h), 1000) for h in range(3))

    again = _read(s3, sample_bundle, (start, end), now, 1000)
    assert again.cached_hours == 3 and again.objects_read == 0
    assert again.rows_seen == 60
    assert Counter(r.request_id for r in again.rows) == Counter(r.request_id for r in first.rows)


def test_recent_hours_are_not_stored_until_they_settle(s3, sample_bundle) -> None:
    now = _hour(datetime.now(UTC)) + timedelta(minutes=5)
    last_hour = _hour(now) - timedelta(hours=1)
    _capture(s3, sample_bundle, last_hour + timedelta(minutes=59), "late", 3)
    _read(s3, sample_bundle, (last_hour, now), now, 100)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{SAMPLES_ROOT}/")
    later = last_hour + timedelta(hours=1) + HOUR_SETTLE
    _read(s3, sample_bundle, (last_hour, later), later, 100)
    assert len(s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{SAMPLES_ROOT}/")["Contents"]) == 1


def test_a_corrupt_hour_sample_falls_back_to_the_captures(s3, sample_bundle) -> None:
    m = sample_bundle.manifest
    now = datetime.now(UTC)
    h = _hour(now) - timedelta(hours=2)
    _capture(s3, sample_bundle, h + timedelta(minutes=3), "r1", 7)
    s3.put_object(Bucket=BUCKET, Key=hour_sample_key(m.model_name, m.version, h, 100), Body=b"\x1f\x8b garbage")
    read = _read(s3, sample_bundle, (h, h + timedelta(hours=1)), now, 100)
    assert read.rows_seen == 7 and read.cached_hours == 0 and read.corrupt_objects == 0


def test_firehose_files_spanning_an_hour_are_read_for_the_right_hour(s3, sample_bundle) -> None:
    """Firehose names a file by its oldest record's arrival hour: rows of hour h can sit under h-1."""
    from modelserve.records import CaptureRecord, encode_jsonl_gz, hour_prefixes, utc_iso

    m = sample_bundle.manifest
    now = datetime.now(UTC)
    h = _hour(now) - timedelta(hours=3)
    inputs = sample_bundle.reference_rows()[0]["inputs"]
    recs = [
        CaptureRecord(f"r{i}", 0, utc_iso(t), m.model_name, m.version, "prod", inputs, m.outputs.classes[0])
        for i, t in enumerate([h - timedelta(minutes=2), h + timedelta(minutes=1), h + timedelta(minutes=5)])
    ]
    firehose_prefix = hour_prefixes(m.model_name, m.version, h - timedelta(hours=1))[1]
    s3.put_object(Bucket=BUCKET, Key=f"{firehose_prefix}stream-1-file", Body=encode_jsonl_gz(recs))
    window = (h, h + timedelta(hours=1))
    exact = _read(s3, sample_bundle, window, now, 100, hour_samples=False)
    assert exact.rows_seen == 0  # the direct S3 layout never needs the neighbours
    spanning = _read(s3, sample_bundle, window, now, 100, hour_samples=False, neighbours=True)
    assert spanning.rows_seen == 2 and {r.request_id for r in spanning.rows} == {"r1", "r2"}


def test_a_stored_sample_gone_bad_after_planning_is_read_again_from_captures(s3, sample_bundle) -> None:
    m = sample_bundle.manifest
    now = datetime.now(UTC)
    h = _hour(now) - timedelta(hours=2)
    _capture(s3, sample_bundle, h + timedelta(minutes=3), "r1", 7)
    window = (h, h + timedelta(hours=1))
    _read(s3, sample_bundle, window, now, 100)  # stores the hour
    key = hour_sample_key(m.model_name, m.version, h, 100)
    meta = s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"\x1f\x8b not gzip", Metadata=meta)  # counts fine, body corrupt
    again = _read(s3, sample_bundle, window, now, 100)
    assert again.cached_hours == 1 and again.rows_seen == 7
    assert sorted(r.row for r in again.rows) == list(range(7))


class _Denying:
    """The real (moto) S3 client, except that GETs of keys holding ``needle`` fail as S3 fails them
    after a key-policy change (a botocore ClientError with code AccessDenied)."""

    def __init__(self, client, needle: str) -> None:
        self._client, self._needle = client, needle

    def get_object(self, **kwargs):
        from botocore.exceptions import ClientError

        if self._needle in kwargs["Key"]:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
        return self._client.get_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_denied_read_is_a_read_error_not_a_corrupt_object_and_its_hour_is_read_again(s3, sample_bundle, caplog) -> None:
    now = _hour(datetime.now(UTC)) + timedelta(minutes=30)
    h2 = _hour(now) - timedelta(hours=2)  # a whole settled hour: stored as a sample after a clean read
    _capture(s3, sample_bundle, h2 + timedelta(minutes=5), "req-ok", 5)
    _capture(s3, sample_bundle, h2 + timedelta(minutes=15), "req-denied", 5)
    keys = [k["Key"] for k in s3.list_objects_v2(Bucket=BUCKET, Prefix="captures/")["Contents"]]
    assert len(keys) == 2
    needle = sorted(keys)[1]  # keys name their event time: the later capture's object
    with caplog.at_level("ERROR"):
        read = _read(_Denying(s3, needle), sample_bundle, (h2, h2 + timedelta(hours=1)), now, 1000)
    assert read.read_errors == {"AccessDenied": 1} and read.failed_reads == 1
    assert read.corrupt_objects == 0 and read.rows_seen == 5
    assert any("not read (AccessDenied)" in r.getMessage() for r in caplog.records)
    assert not s3.list_objects_v2(Bucket=BUCKET, Prefix=SAMPLES_ROOT).get("Contents")  # not stored as settled
    again = _read(s3, sample_bundle, (h2, h2 + timedelta(hours=1)), now, 1000)  # access back: the whole hour
    assert again.read_errors == {} and again.rows_seen == 10 and again.cached_hours == 0
