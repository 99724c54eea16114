"""What drift_athena=auto weighs before reading a window (driftcheck/window_reader.py: estimate_read): the
objects the S3 read would fetch and their bytes, from the same plan and listing as the read, on moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from driftcheck.read_path import choose_by_estimate, read_seconds
from driftcheck.store import CaptureLocation
from driftcheck.window_reader import ReadOptions, estimate_read, read_window
from tests.functional.test_window_reader import BUCKET, _capture, _hour


@pytest.fixture
def s3(aws_credentials):
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _sizes(s3) -> dict[str, int]:
    return {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="captures/")["Contents"]}


def test_the_estimate_counts_what_the_read_fetches_and_leaves_out_hours_with_a_stored_sample(s3, sample_bundle) -> None:
    m = sample_bundle.manifest
    where = CaptureLocation(BUCKET, m.model_name, m.version)
    now = _hour(datetime.now(UTC)) + timedelta(minutes=30)
    h3 = _hour(now) - timedelta(hours=3)
    for h in range(3):
        for i in range(4):
            _capture(s3, sample_bundle, h3 + timedelta(hours=h, minutes=10 * i + 1), f"req-{h}-{i}", 5)
    _capture(s3, sample_bundle, h3 - timedelta(hours=2), "outside", 5)  # before the window: neither listed nor read
    start, end, options = h3, now, ReadOptions(1000)
    in_window = {k: n for k, n in _sizes(s3).items() if "outside" not in k}

    first = estimate_read(s3, where, start, end, options, enough=lambda n, size: False, now=now)
    assert (first.objects, first.bytes, first.complete) == (12, sum(in_window.values()), True)
    assert first.objects == read_window(s3, where, start, end, options, now=now).objects_read  # what the read fetched

    # the read stored the three settled hours' samples: the next read fetches nothing, and the estimate says so
    again = estimate_read(s3, where, start, end, options, enough=lambda n, size: False, now=now)
    assert (again.objects, again.bytes, again.stored_slices) == (0, 0, 3)
    assert read_window(s3, where, start, end, options, now=now).objects_read == 0


def test_the_listing_stops_once_the_estimate_is_past_the_budget(s3, sample_bundle) -> None:
    m = sample_bundle.manifest
    where = CaptureLocation(BUCKET, m.model_name, m.version)
    now = datetime.now(UTC)
    for i in range(30):
        _capture(s3, sample_bundle, now - timedelta(minutes=50) + timedelta(seconds=60 * i), f"r{i}", 3)
    listed: list[int] = []

    def enough(n: int, size: int) -> bool:  # past 10 objects, whatever their bytes
        listed.append(n)
        return n > 10

    estimate = estimate_read(s3, where, now - timedelta(hours=1), now, ReadOptions(100), enough, now=now)

    assert not estimate.complete and estimate.objects == 11 and listed == list(range(1, 12))  # not one object more
    choice = choose_by_estimate(estimate, read_seconds(30, 30 * 300, 16), 16)  # even within the budget: the listing was cut
    assert choice.athena and "11 objects" in choice.reason and "listed before stopping" in choice.reason
