"""The challenger's drift check through Athena (drift_athena=on, challenger_mode=shadow), end to end on moto:
the real inference handler captures both versions, the real drift-check handler checks each version's window.
The Athena results are the drift check's own SQL run on DuckDB over the same rows as hour-partitioned Parquet
(tests/athena_support.py), queued on moto's Athena in the order the handler runs them: the champion's plan,
then the challenger's.

What it proves: the challenger's window is read through Athena like the champion's, by queries naming the
challenger's own version partition, with exact counts of its own rows, and no capture object fetched."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from devtools.local import load_handler_module
from driftcheck.drift_service import DriftService, resolve_window
from tests.athena_support import athena_result, duckdb_captures, queries_sent, queue_athena_results, write_parquet_captures
from tests.functional.test_drift_athena import BUCKET, TABLE, WORKGROUP, captured_rows, send
from tests.functional.test_drift_athena import aws as aws_fixture  # noqa: F401 - used by pytestmark
from tests.functional.test_drift_check_handler import NAMESPACE, scheduled_event

# slow: real requests scored by two models, two drift checks; aws_fixture: moto with Athena speaking its JSON protocol
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_fixture")]


def plan_results(service: DriftService, con, at: datetime) -> list[dict]:
    """The results of ``service``'s plan for the window ending at ``at``, run on DuckDB, in the order it runs them."""
    start, end = resolve_window(scheduled_event(at), service.settings.window_hours)
    plan = service.athena_plan(start, end)
    counted = athena_result(con, plan.row_count()[1])
    rows = int(counted["rows"][1]["Data"][0]["VarCharValue"])
    return [counted] + [athena_result(con, sql) for _, sql in plan.queries(rows)]


def test_the_challengers_window_is_read_through_athena_by_its_own_version(
    load_inference, monkeypatch, sample_bundle, challenger_bundle, lambda_context, tmp_path
) -> None:
    inference = load_inference(
        capture_bucket=BUCKET,
        metrics_namespace=NAMESPACE,
        unseen_category_policy="model",
        capture_sink="s3",
        challenger_mode="shadow",
        MS_CHALLENGER_BUNDLE_PATH=str(challenger_bundle.root),
    )
    send(inference, lambda_context, [r["inputs"] for r in sample_bundle.reference_rows()], 30, random.Random(12), rare_rows=7)
    for k, v in {
        "MS_SHORT_WINDOW_HOURS": "0",
        "MS_DRIFT_ATHENA": "on",
        "MS_ATHENA_WORKGROUP": WORKGROUP,
        "MS_CAPTURES_TABLE": TABLE,
    }.items():
        monkeypatch.setenv(k, v)
    drift = load_handler_module("drift_check")
    assert drift.challenger is not None
    write_parquet_captures(tmp_path, sample_bundle.manifest, captured_rows())  # both versions, each under its partition
    con = duckdb_captures(tmp_path, TABLE)
    at = datetime.now(UTC) + timedelta(seconds=1)
    champion, challenger = plan_results(drift.service, con, at), plan_results(drift.challenger, con, at)
    queue_athena_results(champion + challenger)
    gets: list[str] = []
    drift.service.s3.meta.events.register("before-call.s3.GetObject", lambda params, **_: gets.append(params["Key"]))

    out = drift.handler(scheduled_event(at), lambda_context)

    theirs = out["challenger"]
    assert out["read_by"] == theirs["read_by"] == "athena" and theirs["athena_error"] is None
    assert out["rows_seen"] == theirs["rows_seen"] == 300 and theirs["model_version"] == challenger_bundle.manifest.version
    sent = [sql for sql, _ in queries_sent()]
    assert len(sent) == len(champion) + len(challenger)
    mine, its = sent[: len(champion)], sent[len(champion) :]
    assert all(f"version = '{sample_bundle.manifest.version}'" in sql for sql in mine)
    assert all(f"version = '{challenger_bundle.manifest.version}'" in sql for sql in its)
    assert theirs["new_values"] == {"island": {"Atlantis": 7}}  # the shadow scored the same rows: exact in its window too
    assert not [k for k in gets if k.startswith("captures/")]  # neither check read a capture object
