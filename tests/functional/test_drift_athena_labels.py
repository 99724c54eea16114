"""Past the sample cap, the Athena path's performance check takes every labelled row of the window: the
captures joined with the feedback table by request id and row (driftcheck/athena_sql.py: labelled_rows).
On moto: predictions and labels through the real inference handler (/predict, /feedback), the Athena
results the drift check's own SQL run on DuckDB over the same rows (captures as hour-partitioned Parquet,
the feedback objects as /feedback stored them; tests/athena_support.py).

What it proves: with ``sample_cap`` 100 over a 3,000-row window holding 300 labels, the Athena path's
performance check sees exactly the labelled rows (and their labels, a correction included) the Lambda path
sees when it reads every row, and reports the same accuracy, F1 and AUC, where the Lambda path's 100-row
sample holds a few labels; a label for a prediction made before the window joins no row of it."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.local import load_handler_module
from driftcheck.athena_window import AthenaWindowRead
from driftcheck.drift_service import DriftService, resolve_window
from modelserve import metric_catalogue as mn
from monitoring.performance import PerformanceResult
from tests.athena_support import athena_result, duckdb_captures, queue_athena_results, write_feedback_objects, write_parquet_captures
from tests.functional.test_drift_athena import BUCKET, TABLE, WORKGROUP, captured_rows, stored_objects
from tests.functional.test_drift_athena import aws as aws_fixture  # noqa: F401 - used by pytestmark
from tests.functional.test_drift_check_handler import NAMESPACE
from tests.support import event, response_json

# slow: hundreds of real requests and labels, three drift checks; the s3 sink's captures make the Parquet files
pytestmark = [pytest.mark.slow, pytest.mark.capture_sink("s3"), pytest.mark.usefixtures("aws_fixture")]

SPECIES = ("Adelie", "Chinstrap", "Gentoo")


def load(load_inference, monkeypatch, sample_cap: int) -> tuple[Any, Any]:
    # request ids the API signs: their labels are filed by prediction hour, the layout the feedback table covers
    inference = load_inference(capture_bucket=BUCKET, metrics_namespace=NAMESPACE, capture_sink="s3", request_id_key="k" * 32)
    for k, v in {
        "MS_SAMPLE_CAP": str(sample_cap),
        "MS_SHORT_WINDOW_HOURS": "0",
        "MS_DRIFT_ATHENA": "on",
        "MS_ATHENA_WORKGROUP": WORKGROUP,
        "MS_CAPTURES_TABLE": TABLE,
    }.items():
        monkeypatch.setenv(k, v)
    return inference, load_handler_module("drift_check")


def predict(inference, ctx, rows, n_requests: int, rng: random.Random) -> list[tuple[str, list[str]]]:
    """``n_requests`` of 10 rows; each request's id and predicted classes."""
    out = []
    for i in range(n_requests):
        batch = [dict(rng.choice(rows)) for _ in range(10)]
        resp = inference.handler(event("rest_v1", "POST", "/predict", {"instances": batch}, request_id=f"p{i}-{rng.random()}"), ctx)
        assert resp["statusCode"] == 200, resp["body"]
        answer = response_json(resp)
        out.append((answer["request_id"], [str(p) for p in answer["predictions"]]))
    return out


def label(inference, ctx, items: list[dict[str, Any]]) -> None:
    for i in range(0, len(items), 100):
        resp = inference.handler(event("http_v2", "POST", "/feedback", items[i : i + 100]), ctx)
        assert resp["statusCode"] == 202, resp["body"]


def one_label_a_request(answers: list[tuple[str, list[str]]], rng: random.Random) -> dict[tuple[str, int], str]:
    """One row of each request labelled (a batch's rows are labelled one by one), right four times in five."""
    labels = {}
    for request_id, predicted in answers:
        row = rng.randrange(len(predicted))
        right = rng.random() < 0.8
        labels[(request_id, row)] = predicted[row] if right else rng.choice([s for s in SPECIES if s != predicted[row]])
    return labels


def queue_the_windows_queries(drift, tmp_path: Path, window_event: dict[str, Any]) -> None:
    """The plan the service runs for the window, on DuckDB over the same captures and feedback, queued on moto's Athena."""
    write_parquet_captures(tmp_path, drift.bundle.manifest, captured_rows())
    write_feedback_objects(tmp_path, stored_objects("feedback/") + stored_objects("rejects/"))
    con = duckdb_captures(tmp_path, TABLE)
    plan = drift.service.athena_plan(*resolve_window(window_event, 24))
    _, count_sql = plan.row_count()
    counted = athena_result(con, count_sql)
    rows = int(counted["rows"][1]["Data"][0]["VarCharValue"])
    queue_athena_results([counted] + [athena_result(con, sql) for _, sql in plan.queries(rows)])


def lambda_path(drift, sample_cap: int) -> DriftService:
    settings = drift.drift.model_copy(update={"sample_cap": sample_cap})
    return DriftService(drift.bundle, settings, drift.service.s3, drift.service.cloudwatch, BUCKET)


def performance(report) -> dict[str, Any]:
    return report.result(PerformanceResult).to_dict()


def test_past_the_sample_cap_the_athena_path_measures_performance_on_every_labelled_row(
    load_inference, monkeypatch, sample_bundle, lambda_context, tmp_path
) -> None:
    inference, drift = load(load_inference, monkeypatch, sample_cap=100)
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    rng = random.Random(25)
    before = predict(inference, lambda_context, rows, 20, rng)  # predicted before the window starts
    start = datetime.now(UTC)
    time.sleep(0.01)  # the event time of a capture is the request's, to the millisecond: none of these before start
    inside = predict(inference, lambda_context, rows, 300, rng)  # 3,000 rows
    end = datetime.now(UTC) + timedelta(seconds=1)
    labels_before, labels_inside = one_label_a_request(before, rng), one_label_a_request(inside, rng)
    label(inference, lambda_context, [{"request_id": k[0], "row": k[1], "label": v} for k, v in {**labels_before, **labels_inside}.items()])
    # one label corrected: the correction is the label that counts, on both paths
    corrected = next(iter(labels_inside))
    labels_inside[corrected] = next(s for s in SPECIES if s != labels_inside[corrected])
    fix = {"request_id": corrected[0], "row": corrected[1], "label": labels_inside[corrected], "replace": True, "reason": "audit"}
    label(inference, lambda_context, [fix])
    window = {"window": {"start": start.isoformat(), "end": end.isoformat()}}
    queue_the_windows_queries(drift, tmp_path, window)

    athena = drift.service.run(window)
    every_row = lambda_path(drift, 10_000).run(window)
    sampled = lambda_path(drift, 100).run(window)

    read = athena.window
    assert isinstance(read, AthenaWindowRead) and read.rows_seen == every_row.window.rows_seen == 3000 and len(read.rows) <= 100
    assert read.labelled is not None and not read.labels_truncated
    # exactly the window's labelled rows, each with the label it holds; none of the predictions before the window
    assert {k: r.label for k, r in read.labels.items()} == labels_inside
    assert {r.key for r in read.labelled} == set(labels_inside) and not set(labels_before) & {r.key for r in read.labelled}
    assert athena.labeled_rows == every_row.labeled_rows == 300
    on_athena, exact = performance(athena.report), performance(every_row.report)
    assert on_athena["task"] == exact["task"] and on_athena["n_labels"] == 300
    figures = ("n_labels", "accuracy", "f1_macro", "auc")
    assert [on_athena[f] for f in figures] == pytest.approx([exact[f] for f in figures], rel=1e-12)
    # and the verdict the performance alarm reads, from the same figures
    on_labels = {mn.LABELED_ROWS, mn.ACCURACY, mn.ACCURACY_DROP, mn.PERFORMANCE_DEGRADED}
    published = {name: value for name, value, _ in athena.metrics if name in on_labels}
    assert set(published) == on_labels and published == pytest.approx({n: v for n, v, _ in every_row.metrics if n in on_labels})
    assert on_athena["accuracy"] < 0.9 and on_athena["auc"] is not None
    assert performance(sampled.report)["n_labels"] < 100  # the Lambda path's sample: a few of the labels
    # labels joining no row of the window: none, on both paths reading every row; the sample leaves most unjoined
    assert athena.unmatched_labels == every_row.unmatched_labels == 0 and sampled.unmatched_labels > 200
