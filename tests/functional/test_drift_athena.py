"""The drift check through Athena (drift_athena=on), end to end on moto: captures from the real inference
handler, the same rows as the hour-partitioned Parquet files Firehose writes, the drift check's own SQL
(driftcheck/athena_sql.py) run on DuckDB over them and queued as moto's Athena results; the real drift-check
handler then starts the queries in its workgroup, polls, reads the results and checks the window.

What it proves: the handler sends exactly the queries athena_sql builds, in the stack's workgroup; it
consumes their real output (typed, header row dropped, JSON columns parsed) and reaches the same verdict
as the Lambda path on the same rows; past the sample cap its counts stay exact (a value in 25 of 3,000
rows is named with 25, where the sample sees a few); and a query that outlives the budget is stopped,
counted (AthenaQueryErrors), named in the report, and the window read from S3 instead."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.moto_api import state_manager

from devtools.local import load_handler_module
from driftcheck import athena_sql as q
from driftcheck.capture_formats import decode_capture_object
from driftcheck.drift_service import DriftService, resolve_window
from modelserve import metric_catalogue as mn
from tests.athena_support import (
    athena_result,
    duckdb_captures,
    queries_sent,
    queue_athena_results,
    speak_json_to_moto,
    write_feedback_objects,
    write_parquet_captures,
)
from tests.functional.test_drift_check_handler import NAMESPACE, scheduled_event
from tests.support import event

# slow; and the s3 sink's captures are the rows the Athena path's Parquet files are made of
pytestmark = [pytest.mark.slow, pytest.mark.capture_sink("s3")]  # hundreds of real requests, two drift checks each

BUCKET = "athena-drift-captures"
WORKGROUP = "modelserve-penguins-drift"
TABLE = "modelserve_penguins.captures"
RARE = "Atlantis"


@pytest.fixture
def aws(aws_credentials, monkeypatch, tmp_path_factory):
    # every client made from here on (the handler's too) speaks the Athena protocol moto serves
    monkeypatch.setenv("AWS_DATA_PATH", speak_json_to_moto(tmp_path_factory.mktemp("botocore-data")))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        boto3.client("athena").create_work_group(
            Name=WORKGROUP, Configuration={"ResultConfiguration": {"OutputLocation": f"s3://{BUCKET}/athena-results/"}}
        )
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        yield
        state_manager.unset_transition("athena::execution")


def load(load_inference, monkeypatch, sample_cap: int, drift_athena: str = "on") -> tuple[Any, Any]:
    # the S3 sink: the Lambda path the Athena path is compared with reads one object per request
    inference = load_inference(capture_bucket=BUCKET, metrics_namespace=NAMESPACE, unseen_category_policy="model", capture_sink="s3")
    for k, v in {
        "MS_SAMPLE_CAP": str(sample_cap),
        "MS_SHORT_WINDOW_HOURS": "0",
        "MS_DRIFT_ATHENA": drift_athena,
        "MS_ATHENA_WORKGROUP": WORKGROUP,
        "MS_CAPTURES_TABLE": TABLE,
    }.items():
        monkeypatch.setenv(k, v)
    return inference, load_handler_module("drift_check")


def send(inference, ctx, rows, n_requests: int, rng: random.Random, rare_rows: int = 0, shift: bool = False) -> None:
    """``n_requests`` of 10 rows; ``rare_rows`` of them (the first) with an island never seen in training."""
    left = rare_rows
    for i in range(n_requests):
        batch = [dict(rng.choice(rows)) for _ in range(10)]
        for r in batch:
            if shift and r["body_mass_g"] is not None:
                r["body_mass_g"] += 800.0
            if left:
                r["island"], left = RARE, left - 1
        resp = inference.handler(event("rest_v1", "POST", "/predict", {"instances": batch}, request_id=f"q{i}-{rng.random()}"), ctx)
        assert resp["statusCode"] == 200, resp["body"]


def stored_objects(prefix: str) -> list[tuple[str, bytes]]:
    s3 = boto3.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [(o["Key"], s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()) for page in pages for o in page.get("Contents", [])]


def captured_rows() -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="captures/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return [row for key in keys for row in decode_capture_object(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())]


def queue_the_windows_queries(drift, tmp_path: Path, at: datetime) -> list[str]:
    """The plan the service will run for the window ending at ``at``, run on DuckDB over the same rows as
    Parquet, queued on moto's Athena in order; returns the SQL of each query, in order."""
    write_parquet_captures(tmp_path, drift.bundle.manifest, captured_rows())
    write_feedback_objects(tmp_path, stored_objects("feedback/") + stored_objects("rejects/"))
    con = duckdb_captures(tmp_path, TABLE)
    start, end = resolve_window(scheduled_event(at), drift.drift.window_hours)
    plan = drift.service.athena_plan(start, end)
    _, count_sql = plan.row_count()
    counted = athena_result(con, count_sql)
    rows = int(counted["rows"][1]["Data"][0]["VarCharValue"])
    rest = [sql for _, sql in plan.queries(rows)]
    queue_athena_results([counted] + [athena_result(con, sql) for sql in rest])
    return [count_sql, *rest]


def report_of(summary: dict[str, Any]) -> dict[str, Any]:
    key = summary["report_json"].split("/", 3)[3]
    return json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())


def failed_expectations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r["feature"], r["check"]) for r in doc["report"]["data_quality"]["results"] if r["failed"]}


def lambda_path(drift) -> DriftService:
    """The same check without Athena: the window read from the capture objects in S3."""
    return DriftService(drift.bundle, drift.drift, drift.service.s3, drift.service.cloudwatch, BUCKET)


def test_the_athena_path_sends_athena_sql_and_reaches_the_lambda_paths_verdict(
    aws, load_inference, monkeypatch, sample_bundle, lambda_context, tmp_path
) -> None:
    inference, drift = load(load_inference, monkeypatch, sample_cap=10_000)
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    rng = random.Random(11)
    send(inference, lambda_context, rows, 60, rng)
    send(inference, lambda_context, rows, 60, rng, rare_rows=30, shift=True)
    at = datetime.now(UTC) + timedelta(seconds=1)
    sent = queue_the_windows_queries(drift, tmp_path, at)

    out = drift.handler(scheduled_event(at), lambda_context)

    assert queries_sent() == [(sql, WORKGROUP) for sql in sent]  # exactly the plan's queries, in the workgroup
    start, end = resolve_window(scheduled_event(at), 24)
    whole = q.CaptureWindow(TABLE, "penguins", sample_bundle.manifest.version, start, end)
    assert sent[0] == q.row_count(whole) and sent[-1] == q.sample(whole, 100.0, 10_000)  # built by athena_sql
    assert q.category_counts(whole, "island") in sent and q.null_counts(whole, list(sample_bundle.manifest.feature_names)) in sent
    assert any("TABLESAMPLE BERNOULLI (100.0)" in sql for sql in sent)  # 1,200 rows under the cap: every row
    assert out["read_by"] == "athena" and out["athena_error"] is None
    assert out["rows_seen"] == 1200 and out["rows_checked"] == 1200 and out["objects_read"] == 0
    doc = report_of(out)
    assert doc["athena"]["exact"]["rows"] == 1200
    assert doc["athena"]["exact"]["categories"]["island"][RARE] == 30
    assert sum(doc["athena"]["exact"]["predictions"].values()) == 1200

    s3_run = lambda_path(drift).run(scheduled_event(at))
    assert s3_run.window.rows_seen == 1200 and s3_run.window.objects_read == 120
    lam = s3_run.report
    assert out["dataset_drift"] is lam.dataset_drift is True
    assert out["drifted_features"] == lam.drifted_features and "body_mass_g" in lam.drifted_features
    assert out["new_values"] == lam.new_values == {"island": {RARE: 30}}
    assert failed_expectations(doc) == failed_expectations({"report": lam.to_dict()}) != set()
    assert out["root_cause"] == lam.summary


def test_past_the_sample_cap_the_athena_path_counts_a_rare_new_value_exactly(
    aws, load_inference, monkeypatch, sample_bundle, lambda_context, tmp_path
) -> None:
    inference, drift = load(load_inference, monkeypatch, sample_cap=100)
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    send(inference, lambda_context, rows, 300, random.Random(3), rare_rows=25)  # 25 of 3,000 rows: under 1%
    at = datetime.now(UTC) + timedelta(seconds=1)
    queue_the_windows_queries(drift, tmp_path, at)

    out = drift.handler(scheduled_event(at), lambda_context)

    assert out["read_by"] == "athena" and out["rows_seen"] == 3000
    assert out["rows_checked"] <= 100  # the distribution tests run on the TABLESAMPLE sample
    assert out["new_values"] == {"island": {RARE: 25}}  # exact: at least min_new_value_rows (20), so it fails
    unseen = next(r for r in report_of(out)["report"]["data_quality"]["results"] if r["check"] == "unseen_category")
    assert unseen["failed"] is True and unseen["n_flagged"] == 25 and unseen["n_rows"] == 3000
    # the Lambda path's sample of 100 rows holds a few of them at most: it cannot name all 25
    sampled = lambda_path(drift).run(scheduled_event(at)).report.new_values.get("island", {}).get(RARE, 0)
    assert sampled < 25


def test_a_query_past_the_read_budget_is_stopped_counted_and_the_window_read_from_s3(
    aws, load_inference, monkeypatch, sample_bundle, lambda_context
) -> None:
    inference, drift = load(load_inference, monkeypatch, sample_cap=10_000)
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    send(inference, lambda_context, rows, 5, random.Random(4))
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 1_000_000})  # never leaves QUEUED
    at = datetime.now(UTC) + timedelta(seconds=1)

    run = drift.service.run(scheduled_event(at), read_budget_s=0.2)

    assert run.window.athena_error is not None and run.window.athena_error.startswith("row_count: Timeout")
    assert run.summary(BUCKET)["read_by"] == "s3"
    assert (mn.ATHENA_QUERY_ERRORS, 1.0, None) in run.metrics
    assert report_of(run.summary(BUCKET))["athena_error"].startswith("row_count: Timeout")
    from moto.athena.models import athena_backends

    (execution,) = athena_backends["123456789012"]["us-east-1"].executions.values()
    assert execution.status == "CANCELLED"  # stopped, so it scans nothing more

    # still queued: the queries take half of the budget, the S3 read has the other half
    full = drift.service.run(scheduled_event(at), read_budget_s=8.0)
    assert full.window.athena_error is not None and full.window.rows_seen == 50 and not full.window.partial


def test_a_result_without_its_row_is_a_failed_query_not_a_crash(aws, load_inference, monkeypatch, sample_bundle, lambda_context) -> None:
    """Nothing queued: moto answers every query with no rows; the count query's missing row is named and
    the window read from S3 in full."""
    inference, drift = load(load_inference, monkeypatch, sample_cap=10_000)
    send(inference, lambda_context, [r["inputs"] for r in sample_bundle.reference_rows()], 5, random.Random(6))
    out = drift.handler(scheduled_event(datetime.now(UTC) + timedelta(seconds=1)), lambda_context)
    assert out["read_by"] == "s3" and out["athena_error"].startswith("row_count: NoRows")
    assert out["rows_seen"] == 50 and out["partial_window"] is False
