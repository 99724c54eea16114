"""Two windows per check: the last 24 h and the last hour, each with its own report,
metrics (dimension Window) and verdict; a shift that starts an hour before the check is flagged by
the short window while it is still diluted in the 24 h one; the alarms read the larger of both."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdk.alarms import alarm_specs, evaluate_windows
from driftcheck.drift_service import DriftService
from modelserve import metric_catalogue as mn
from modelserve.bundle import ModelBundle
from modelserve.records import CaptureRecord, capture_key, encode_jsonl_gz, utc_iso, window_report_key
from modelserve.settings import DriftSettings, Settings
from monitoring import metric_names as M

BUCKET = "windows-test"
NAMESPACE = "WindowsTest"
# the check's time: whole hours before it have settled (their hour samples are stored)
END = datetime.now(UTC).replace(minute=30, second=0, microsecond=0) - timedelta(hours=1)


@pytest.fixture
def aws(aws_credentials):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield


def service(bundle: ModelBundle, **settings: Any) -> DriftService:
    s = DriftSettings(metrics_namespace=NAMESPACE, audit_sample_rows=0, **settings)
    return DriftService(bundle, s, boto3.client("s3"), boto3.client("cloudwatch"), BUCKET, deployment="Stack")


def write_traffic(
    bundle: ModelBundle,
    start: datetime,
    end: datetime,
    rows_per_hour: int,
    rng: random.Random,
    shift_from: datetime | None = None,
    rows_per_object: int = 10,
) -> int:
    """Reference rows resampled over [start, end), ``rows_per_object`` per capture object; rows at or
    after ``shift_from`` have body_mass_g one reference sd (~800 g) heavier."""
    s3, m = boto3.client("s3"), bundle.manifest
    reference = bundle.reference_rows()
    n_objects = int(rows_per_hour * (end - start).total_seconds() / 3600) // rows_per_object
    step = (end - start) / n_objects
    for i in range(n_objects):
        at = start + step * i + timedelta(microseconds=rng.randrange(1000))
        records = []
        for row in range(rows_per_object):
            ref = rng.choice(reference)
            inputs = dict(ref["inputs"])
            if shift_from is not None and at >= shift_from and inputs["body_mass_g"] is not None:
                inputs["body_mass_g"] += 800.0
            records.append(
                CaptureRecord(f"r{i}", row, utc_iso(at), m.model_name, m.version, "test", inputs, ref["prediction"], ref["probabilities"])
            )
        s3.put_object(Bucket=BUCKET, Key=capture_key(m.model_name, m.version, at, f"r{i}"), Body=encode_jsonl_gz(records))
    return n_objects * rows_per_object


def metric(name: str, window: str, bundle: ModelBundle) -> list[float]:
    dims = [
        {"Name": mn.DIM_MODEL_NAME, "Value": bundle.manifest.model_name},
        {"Name": mn.DIM_MODEL_VERSION, "Value": bundle.manifest.version},
        {"Name": mn.DIM_DEPLOYMENT, "Value": "Stack"},
        {"Name": mn.DIM_WINDOW, "Value": window},
    ]
    resp = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dims}, "Period": 60, "Stat": "Maximum"},
            }
        ],
        StartTime=END - timedelta(minutes=5),
        EndTime=END + timedelta(minutes=5),
    )
    return resp["MetricDataResults"][0]["Values"]


def test_a_shift_in_the_last_hour_is_flagged_by_the_short_window_not_the_diluted_24h_one(aws, sample_bundle) -> None:
    rng = random.Random(12)
    write_traffic(sample_bundle, END - timedelta(hours=24), END, 300, rng, shift_from=END - timedelta(hours=1))
    run = service(sample_bundle).run({"time": utc_iso(END)})

    (short,) = run.others
    assert (run.window_label, short.window_label) == ("24h", "1h")
    assert (short.start, short.end) == (END - timedelta(hours=1), END) and run.start == END - timedelta(hours=24)
    assert 290 <= short.window.rows_seen <= 310 and 7000 <= run.window.rows_seen <= 7300
    # diluted: a 4% share of shifted rows stays under the effect gate over 24 h; the last hour is all shifted
    assert run.report.dataset_drift is False and "body_mass_g" not in run.report.drifted_features
    assert short.report.dataset_drift is True and short.report.drifted_features == ["body_mass_g"]
    assert short.report.root_cause and short.report.root_cause.startswith("body_mass_g")

    # each window's metrics under its Window dimension, each window's report under its own key
    assert metric(M.DATASET_DRIFT, "24h", sample_bundle) == [0.0]
    assert metric(M.DATASET_DRIFT, "1h", sample_bundle) == [1.0]
    assert short.json_key == window_report_key(sample_bundle.manifest.model_name, END, "1h", "json")
    doc = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key=short.json_key)["Body"].read())
    assert doc["window"] == {"start": utc_iso(END - timedelta(hours=1)), "end": utc_iso(END), "label": "1h"}
    assert doc["report"]["dataset_drift"] is True
    summary = run.summary(BUCKET)
    assert summary["windows"]["1h"]["root_cause"] == short.report.summary and summary["dataset_drift"] is False

    # the DatasetDrift alarm reads the larger of both windows: it pages, once
    spec = {s.id: s for s in alarm_specs(Settings(), "penguins", "v")}["DatasetDrift"]
    assert spec.windows == ("24h", "1h")
    assert evaluate_windows(spec, {"24h": 0.0, "1h": 1.0}) == "ALARM"
    assert evaluate_windows(spec, {"24h": 0.0, "1h": None}) == "OK"


def test_the_short_window_is_off_at_zero(aws, sample_bundle) -> None:
    write_traffic(sample_bundle, END - timedelta(hours=2), END, 100, random.Random(1))
    run = service(sample_bundle, short_window_hours=0).run({"time": utc_iso(END)})
    assert run.others == [] and "windows" not in run.summary(BUCKET)
    assert metric(M.WINDOW_ROWS, "24h", sample_bundle) == [200.0] and metric(M.WINDOW_ROWS, "1h", sample_bundle) == []
    spec = {s.id: s for s in alarm_specs(Settings(short_window_hours=0), "penguins", "v")}["DatasetDrift"]
    assert spec.windows == ("24h",)


def test_the_short_window_is_cut_from_stored_hour_samples(aws, sample_bundle) -> None:
    """The second check of a (re)run reads the short window's settled part from the hour's stored sample:
    its result is the same sample, and it fetches no capture object of that part again."""
    write_traffic(sample_bundle, END - timedelta(hours=3), END, 200, random.Random(2))
    first = service(sample_bundle, window_hours=3).run({"time": utc_iso(END)})
    again = service(sample_bundle, window_hours=3).run({"time": utc_iso(END)})
    short, short_again = first.others[0].window, again.others[0].window
    assert short.rows_seen == short_again.rows_seen == 200
    assert sorted(r.key for r in short.rows) == sorted(r.key for r in short_again.rows)
    # END is on the half hour: the 1 h window is the second half of one whole hour (its sample stored by
    # the 3 h window's first read) and the first half of the next, which no window has read whole yet.
    # 20 objects an hour: the first run read both halves (20 objects), the second only the newest half
    assert (short.objects_read, short.cached_hours) == (20, 0)
    assert (short_again.objects_read, short_again.cached_hours) == (10, 1)


def test_alarm_over_both_windows_gates_each_by_its_own_rows() -> None:
    spec = {s.id: s for s in alarm_specs(Settings(alarm_min_window_rows=100), "penguins", "v")}["MissingRate"]
    # a high rate on a handful of rows in the last hour is noise; on enough rows it pages
    assert evaluate_windows(spec, {"24h": 0.01, "1h": 0.5}, {"24h": 5000, "1h": 20}) == "OK"
    assert evaluate_windows(spec, {"24h": 0.01, "1h": 0.5}, {"24h": 5000, "1h": 200}) == "ALARM"
    assert evaluate_windows(spec, {"24h": 0.5, "1h": 0.0}, {"24h": 5000, "1h": 200}) == "ALARM"
    assert evaluate_windows(spec, {}, {}) == "INSUFFICIENT_DATA"
