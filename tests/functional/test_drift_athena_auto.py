"""drift_athena=auto, end to end on moto: the real drift-check handler's service chooses the path by the read
budget. Captures from the real inference handler; the Athena results are the drift check's own SQL run on
DuckDB over the same rows as hour-partitioned Parquet (tests/athena_support.py), queued on moto's Athena.

What it proves: a window whose S3 read fits the budget stays on the Lambda path and starts no query; one whose
listing says it would not fit is read through Athena (exact counts) without fetching a capture object; and an
S3 read that the estimate let through but the budget cut short (S3 slowed by a hook on the real client) is
followed by Athena in the same run, the report saying which path read the window and why."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from driftcheck.read_path import GET_SECONDS
from modelserve import metric_catalogue as mn
from tests.athena_support import queries_sent
from tests.functional.test_drift_athena import (
    BUCKET,
    load,
    queue_the_windows_queries,
    report_of,
    send,
)
from tests.functional.test_drift_athena import aws as aws_fixture  # noqa: F401 - used by pytestmark
from tests.functional.test_drift_check_handler import scheduled_event

# slow: hundreds of real requests; aws_fixture: moto with Athena speaking its JSON protocol (test_drift_athena.aws)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_fixture")]


def test_a_window_that_fits_the_read_budget_stays_on_the_lambda_path(load_inference, monkeypatch, sample_bundle, lambda_context) -> None:
    inference, drift = load(load_inference, monkeypatch, sample_cap=10_000, drift_athena="auto")
    send(inference, lambda_context, [r["inputs"] for r in sample_bundle.reference_rows()], 40, random.Random(7))
    at = datetime.now(UTC) + timedelta(seconds=1)

    run = drift.service.run(scheduled_event(at), read_budget_s=60.0)

    assert queries_sent() == []  # not one Athena query
    out = run.summary(BUCKET)
    assert out["read_by"] == "s3" and out["rows_seen"] == 400 and out["objects_read"] == 40 and not out["partial_window"]
    assert out["read_reason"].startswith("drift_athena=auto: the S3 read fits its budget")
    assert "40 objects" in out["read_reason"]
    assert report_of(out)["read_reason"] == out["read_reason"]


def test_a_window_whose_listing_exceeds_the_budget_is_read_through_athena_without_a_get(
    load_inference, monkeypatch, sample_bundle, lambda_context, tmp_path
) -> None:
    inference, drift = load(load_inference, monkeypatch, sample_cap=100, drift_athena="auto")
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    send(inference, lambda_context, rows, 200, random.Random(8), rare_rows=22)  # 2,000 rows in 200 objects
    at = datetime.now(UTC) + timedelta(seconds=1)
    sent = queue_the_windows_queries(drift, tmp_path, at)
    gets: list[str] = []
    drift.service.s3.meta.events.register("before-call.s3.GetObject", lambda params, **_: gets.append(params["Key"]))
    # 200 objects at GET_SECONDS over 16 parallel GETs is 0.25 s: more than three quarters of this budget
    budget = 0.5 * 200 * GET_SECONDS / 16

    run = drift.service.run(scheduled_event(at), read_budget_s=budget)

    out = run.summary(BUCKET)
    assert out["read_by"] == "athena" and out["athena_error"] is None
    assert out["read_reason"].startswith("drift_athena=auto: the S3 read would take over")
    assert [sql for sql, _ in queries_sent()] == sent
    assert not [k for k in gets if k.startswith("captures/")]  # the estimate lists; it fetches no capture
    assert out["rows_seen"] == 2000 and out["rows_checked"] <= 100 and out["partial_window"] is False
    assert out["new_values"] == {"island": {"Atlantis": 22}}  # exact over every row, past the sample cap


def test_an_s3_read_cut_short_by_the_budget_is_followed_by_athena(
    load_inference, monkeypatch, sample_bundle, lambda_context, tmp_path
) -> None:
    inference, drift = load(load_inference, monkeypatch, sample_cap=10_000, drift_athena="auto")
    send(inference, lambda_context, [r["inputs"] for r in sample_bundle.reference_rows()], 50, random.Random(9))
    at = datetime.now(UTC) + timedelta(seconds=1)
    queue_the_windows_queries(drift, tmp_path, at)
    # S3 far slower than the estimate assumes: 0.3 s a GET, 16 at a time, so 50 objects take 1.2 s, past
    # the S3 read's 0.75 s of a 1 s budget, where the listing's estimate was 50 x 20 ms / 16 = 0.06 s
    drift.service.s3.meta.events.register("before-call.s3.GetObject", lambda **_: time.sleep(0.3))

    run = drift.service.run(scheduled_event(at), read_budget_s=1.0)

    out = run.summary(BUCKET)
    assert out["read_by"] == "athena" and out["athena_error"] is None
    assert out["read_reason"].startswith("drift_athena=auto: the S3 read was cut short by its budget")
    assert len(queries_sent()) > 0 and out["rows_seen"] == 500 and out["partial_window"] is False
    assert (mn.PARTIAL_WINDOW, 0.0, None) in run.metrics  # the window the check ran on is whole
