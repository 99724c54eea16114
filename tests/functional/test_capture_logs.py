"""``capture_sink=logs`` through the real inference handler: one log line per captured row, nothing
written to S3 for the captures; and end to end locally: log lines -> local CloudWatch Logs ->
subscription filter -> Firehose -> S3 -> the real drift check (devtools/local_capture_logs.py)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from devtools.local import local_stack, post_json, sleep_to_next_second
from modelserve import metric_catalogue as mn
from modelserve.records import CaptureRecord, model_capture_prefix
from tests.functional.test_capture import BUCKET, make_bucket, metric_points, objects, post, rows
from tests.functional.test_drift_check_handler import scheduled_event


def capture_lines(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        if line.startswith('{"record_type":"captures"'):
            out.append(json.loads(line))
    return out


def test_every_answered_request_leaves_one_line_per_row_and_no_capture_object(
    s3, load_inference, sample_bundle, lambda_context, capsys
) -> None:
    make_bucket(s3)
    mod = load_inference(capture_bucket=BUCKET, capture_sink="logs")
    assert type(mod.service.capturer.sink).__name__ == "LogsCaptureSink"
    capsys.readouterr()
    sent = {}
    for rid, n in (("lg-1", 1), ("lg-2", 7), ("lg-3", 250)):
        sent[rid] = rows(sample_bundle, n)
        resp = post(mod, lambda_context, {"instances": sent[rid]}, kind="http_v2", request_id=rid)
        assert resp["statusCode"] == 200
    refused = post(mod, lambda_context, {"instances": [{"no_such_feature": 1}]}, kind="http_v2", request_id="lg-bad")
    assert refused["statusCode"] == 422
    out = capsys.readouterr().out
    lines = capture_lines(out)
    assert sorted((r["request_id"], r["row"]) for r in lines) == sorted((rid, i) for rid, batch in sent.items() for i in range(len(batch)))
    for r in lines:
        assert CaptureRecord.from_dict(r).inputs == sent[r["request_id"]][r["row"]]
    assert not objects(s3, "captures/")  # no PUT per request
    assert objects(s3, "rejects/")  # refused requests still go to S3 (rare; their own schema)
    assert sum(v for v, _, _ in metric_points(out, mn.CAPTURED_ROWS)) == 258


@pytest.mark.slow
def test_log_lines_reach_s3_through_logs_and_firehose_and_the_drift_check_reads_them(sample_bundle) -> None:
    reference = [r["inputs"] for r in sample_bundle.reference_rows()]
    m = sample_bundle.manifest
    bucket = "capture-logs-e2e"
    env = {"MS_CAPTURE_SINK": "logs", "POWERTOOLS_METRICS_DISABLED": "true"}
    with local_stack(sample_bundle.root, env, bucket=bucket) as stack:
        sent = 0
        for i in range(20):
            batch = reference[i * 10 : i * 10 + 10]
            status, _ = post_json(f"{stack.gateway.url}/predict", {"instances": batch})
            assert status == 200
            sent += len(batch)
        s3 = boto3.client("s3")
        stop = time.monotonic() + 10
        while not (keys := [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="captures/").get("Contents", [])]):
            assert time.monotonic() < stop, "no capture reached the bucket through Firehose"
            time.sleep(0.1)
        assert all(k.startswith(model_capture_prefix(m.model_name, m.version)) for k in keys)
        sleep_to_next_second()
        assert stack.drift_check is not None
        out = stack.drift_check.handler(scheduled_event(datetime.now(UTC) + timedelta(seconds=1)), _context())
    assert out["rows_seen"] == sent and out["corrupt_objects"] == 0


def _context() -> Any:
    from devtools.local import LambdaContext

    return LambdaContext.fresh("drift_check")
