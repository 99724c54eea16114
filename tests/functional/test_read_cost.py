"""A check's S3 requests are bounded by its window: captures outside the window (in the
same hours or others) and feedback received outside the label span add no GET and no LIST.

The requests are counted on the real boto3 client with botocore's event hooks (``before-call``),
against moto: nothing of ours is mocked."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from driftcheck.drift_service import DriftService
from modelserve.bundle import ModelBundle
from modelserve.records import FeedbackRecord, encode_jsonl_gz, feedback_key, utc_iso
from modelserve.settings import DriftSettings
from tests.functional.test_drift_windows import BUCKET, write_traffic

# an explicit window in the past: every hour of it and of its label span has settled
START = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
END = START + timedelta(hours=2)


def count_requests(s3: Any) -> Counter[str]:
    """S3 operations this client sends from now on, by name (GetObject, ListObjectsV2, ...) and by
    name and the key root they address ("ListObjectsV2 captures")."""
    calls: Counter[str] = Counter()

    def before_call(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls[model.name] += 1
        calls[f"{model.name} {str(params.get('Prefix') or params.get('Key') or '').split('/')[0]}"] += 1

    s3.meta.events.register("before-parameter-build.s3", before_call)
    return calls


def write_feedback(bundle: ModelBundle, at: datetime, n: int, rng: random.Random) -> None:
    s3, name = boto3.client("s3"), bundle.manifest.model_name
    records = [FeedbackRecord(f"other-{rng.random()}", 0, "Adelie", utc_iso(at), name) for _ in range(n)]
    s3.put_object(Bucket=BUCKET, Key=feedback_key(name, at, f"fb{rng.random()}"), Body=encode_jsonl_gz(records))


def scenario(bundle: ModelBundle, unrelated: int) -> tuple[Counter[str], Counter[str], int]:
    """S3 requests of a first (cold) and a second (warm) check of the window, with ``unrelated``
    times the window's traffic outside it: captures around it in the same hours and the day before,
    feedback received the days before and after the label span."""
    rng = random.Random(unrelated)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        rows = write_traffic(bundle, START, END, 150, rng)
        for k in range(unrelated):
            # the same hours, outside the window: the 15 minutes before and the 45 after
            write_traffic(bundle, START - timedelta(minutes=15), START, 150, rng)
            write_traffic(bundle, END, END + timedelta(minutes=45), 150, rng)
            write_traffic(bundle, START - timedelta(days=1, hours=k + 1), START - timedelta(days=1, hours=k), 150, rng)
            for day in (-3, -1, 3, 5):
                write_feedback(bundle, START + timedelta(days=day, minutes=7 * k), 50, rng)
            write_feedback(bundle, START - timedelta(hours=2, minutes=k), 50, rng)  # same day, before the span
        counts = []
        for _ in range(2):
            s3 = boto3.client("s3")
            calls = count_requests(s3)
            # the s3 sink's layout (an object per request, by event hour): no neighbouring hour to list
            settings = DriftSettings(capture_sink="s3", metrics_namespace="ReadCost", audit_sample_rows=0)
            run = DriftService(bundle, settings, s3, boto3.client("cloudwatch"), BUCKET).run(
                {"window": {"start": utc_iso(START), "end": utc_iso(END)}}
            )
            assert run.window.rows_seen == rows
            counts.append(calls)
        return counts[0], counts[1], rows


@pytest.mark.parametrize("unrelated", [3])
def test_s3_requests_do_not_grow_with_unrelated_captures_or_feedback(aws_credentials, sample_bundle, unrelated: int) -> None:
    cold, warm, rows = scenario(sample_bundle, 0)
    cold_busy, warm_busy, _ = scenario(sample_bundle, unrelated)
    reads = ("GetObject", "ListObjectsV2", "HeadObject")
    assert {op: cold_busy[op] for op in reads} == {op: cold[op] for op in reads}
    assert {op: warm_busy[op] for op in reads} == {op: warm[op] for op in reads}
    # and bounded: the warm check reads the window's edge hours' captures (the whole hour between them
    # comes from its stored sample), one labels object per hour of the label span (the window and a
    # day past it: 26 hours), the stored samples, and no more
    objects_in_window = rows // 10
    assert warm["GetObject"] <= objects_in_window + 26 + 4
    # the LISTs: each edge hour read live (09:15-10:00 and 11:00-11:15; the 1 h window shares the latter
    # with the 2 h one) under both layouts' prefixes, each one page from the slice's first key
    assert warm["ListObjectsV2 captures"] <= 4


def test_labels_are_read_once_per_settled_hour_and_kept(aws_credentials, sample_bundle) -> None:
    """Labels received in the window and a day later join the same rows on the first run (from the
    feedback objects) and on the next (from the per-hour labels objects, no feedback object read)."""
    from driftcheck.feedback_reader import read_feedback
    from driftcheck.store import CaptureLocation
    from modelserve.records import SAMPLES_ROOT, hour_labels_key

    m = sample_bundle.manifest
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        where = CaptureLocation(BUCKET, m.model_name, m.version)
        labelled = {("a", 0): START + timedelta(minutes=20), ("b", 1): START + timedelta(hours=20), ("c", 2): END + timedelta(hours=23)}
        late = ("d", 3), END + timedelta(days=2)  # past the grace: not a label of this window
        for (rid, row), at in [*labelled.items(), late]:
            record = FeedbackRecord(rid, row, "Gentoo", utc_iso(at), m.model_name)
            s3.put_object(Bucket=BUCKET, Key=feedback_key(m.model_name, at, rid), Body=encode_jsonl_gz([record]))
        wanted = set(labelled) | {late[0]}
        runs = []
        for _ in range(2):
            client = boto3.client("s3")
            calls = count_requests(client)
            runs.append((read_feedback(client, where, START, END, wanted), calls))
        (first, first_calls), (again, again_calls) = runs
        assert set(first) == set(again) == set(labelled)
        # the second read: one GET per hour of the label span, every one a labels object
        assert again_calls["ListObjectsV2"] == 0 and again_calls["GetObject"] == first_calls["GetObject"] - len(labelled)
        kept = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{SAMPLES_ROOT}/model={m.model_name}/labels/")["KeyCount"]
        assert kept == again_calls["GetObject"]  # empty hours are kept too: no listing again
        assert hour_labels_key(m.model_name, START.replace(minute=0)).endswith("hour=09.json.gz")
