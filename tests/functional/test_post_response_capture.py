"""Post-response capture under the real Lambda runtime client (awslambdaric) and a local Lambda.

``tests/lambda_emulator.py`` serves the Runtime API and the Extensions API, runs the real
inference handler in a subprocess under awslambdaric, freezes it between invocations and shuts it
down (SIGTERM, then SIGKILL) after the last one. S3 is moto server behind a proxy that adds a
fixed delay (or fails, or hangs), so the write's time is visible in what is measured: (a) when
the answer is posted and (b) when the invocation ends.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from statistics import median
from typing import Any

import boto3
import pytest

from devtools.local import FAKE_AWS_ENV
from modelserve import metric_catalogue as mn
from modelserve.records import decode_jsonl, model_capture_prefix
from serving.post_response import EXTENSION_NAME
from tests.functional.test_capture import emf_blobs, metric_points
from tests.lambda_emulator import DelayProxy, Invocation, LambdaEmulator
from tests.support import event

# the write after the answer is the s3 sink's PutObject (firehose where a test says so)
pytestmark = pytest.mark.capture_sink("s3")

# what the proxy adds in front of moto: an in-Region PutObject's order of magnitude, and enough that
# on this shared machine the answer's own path never takes that long (the benchmark uses 20 ms)
DELAY_S = 0.05


def client(moto_url: str, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def bucket(moto_url: str) -> str:
    name = f"captures-{uuid.uuid4().hex[:12]}"
    client(moto_url, "s3").create_bucket(Bucket=name)
    return name


def function_env(sample_bundle: Any, proxy: DelayProxy, bucket: str, **settings: str) -> dict[str, str]:
    env = {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": proxy.url, "MS_MODEL_BUNDLE_PATH": str(sample_bundle.root), "MS_CAPTURE_BUCKET": bucket}
    env["MS_CAPTURE_SINK"] = "s3"  # the function runs in a process of its own: the module's pin, passed on
    return env | {k if k.startswith("MS_") else "MS_" + k.upper(): v for k, v in settings.items()}


def run(
    sample_bundle: Any, env: dict[str, str], log: Path, n: int, rows: int = 1
) -> tuple[LambdaEmulator, list[Invocation], dict[str, Any]]:
    """Start the environment, send ``n`` requests, shut it down right after the last invocation."""
    ref = [r["inputs"] for r in sample_bundle.reference_rows()]
    sent = {f"req-{i}": [ref[(i + j) % len(ref)] for j in range(rows)] for i in range(n)}
    emulator = LambdaEmulator(env, log_path=log).start()
    try:
        invocations = [
            emulator.invoke(event("rest_v1", "POST", "/predict", {"instances": rows_}, request_id=rid)) for rid, rows_ in sent.items()
        ]
    finally:
        emulator.shutdown()
    return emulator, invocations, sent


def stored_records(moto_url: str, bucket: str, prefix: str = "") -> dict[str, list[dict[str, Any]]]:
    s3 = client(moto_url, "s3")
    out: dict[str, list[dict[str, Any]]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            for r in decode_jsonl(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()):
                out.setdefault(r["request_id"], []).append(r)
    return out


def answers(invocations: list[Invocation]) -> dict[str, dict[str, Any]]:
    """The answer of each invocation by request id: every one a 200 (never a 5xx, never lost)."""
    out = {}
    for inv in invocations:
        assert inv.error is None and inv.payload is not None, inv.error
        assert inv.payload["statusCode"] == 200, inv.payload
        body = json.loads(inv.payload["body"])
        out[body["request_id"]] = body
    return out


def test_extension_writes_after_the_answer_and_before_the_invocation_ends(moto_url, bucket, sample_bundle, tmp_path) -> None:
    proxy = DelayProxy(moto_url, DELAY_S)
    try:
        emulator, invocations, sent = run(sample_bundle, function_env(sample_bundle, proxy, bucket), tmp_path / "log.txt", n=12)
    finally:
        proxy.close()
    log = (tmp_path / "log.txt").read_text()
    assert emulator.registered() == [(EXTENSION_NAME, ["INVOKE"])]

    got = answers(invocations)
    assert sorted(got) == sorted(sent)
    for inv in invocations:
        rid = json.loads(inv.payload["body"])["request_id"]
        put = next(c for c in proxy.writes() if c.path.endswith(f"-{rid}.jsonl.gz"))
        # the answer left before S3 had answered the write; the invocation ended only after it had
        assert inv.responded_at < put.answered_at < inv.ended_at
        assert inv.end_s >= DELAY_S
    # (a) is free of the S3 round trip: the delay alone is longer than the typical answer
    assert median(inv.response_s for inv in invocations[1:]) < DELAY_S

    # every capture is in S3, the last invocation's included, although the environment was
    # frozen after each invocation and killed right after the last one
    stored = stored_records(moto_url, bucket, model_capture_prefix(sample_bundle.manifest.model_name, sample_bundle.manifest.version))
    assert sorted(stored) == sorted(sent)
    for rid, records in stored.items():
        assert [r["prediction"] for r in sorted(records, key=lambda r: r["row"])] == got[rid]["predictions"]
        assert [r["inputs"] for r in sorted(records, key=lambda r: r["row"])] == sent[rid]
    assert sum(v for v, _, _ in metric_points(log, mn.CAPTURED_ROWS)) == len(sent)
    assert not metric_points(log, mn.CAPTURE_ERRORS)
    # one EMF flush per invocation, after the answer: the handler's metrics and its captures' together
    blobs = emf_blobs(log)
    assert len(blobs) == len(invocations)
    assert all({mn.ROWS_SCORED, mn.CAPTURED_ROWS} <= set(b) for b in blobs)


def test_sync_mode_under_the_same_runtime_answers_after_the_write(moto_url, bucket, sample_bundle, tmp_path) -> None:
    """The contrast: capturing before the answer puts the S3 round trip into (a)."""
    proxy = DelayProxy(moto_url, DELAY_S)
    try:
        emulator, invocations, sent = run(
            sample_bundle, function_env(sample_bundle, proxy, bucket, capture_mode="sync"), tmp_path / "log.txt", n=4
        )
    finally:
        proxy.close()
    assert emulator.registered() == []
    answers(invocations)
    for inv in invocations:
        put = next(c for c in proxy.writes() if c.received_at >= inv.dispatched_at and "/captures/" in c.path)
        assert put.answered_at < inv.responded_at
        assert inv.response_s >= DELAY_S
    assert sorted(stored_records(moto_url, bucket)) == sorted(sent)


def test_s3_failing_every_answer_still_200_and_each_capture_counted(moto_url, bucket, sample_bundle, tmp_path) -> None:
    proxy = DelayProxy(moto_url, DELAY_S, mode="fail")
    try:
        _, invocations, sent = run(sample_bundle, function_env(sample_bundle, proxy, bucket), tmp_path / "log.txt", n=5)
    finally:
        proxy.close()
    assert sorted(answers(invocations)) == sorted(sent)
    # one attempt and the Capturer's one retry per capture, after the answer
    assert len([c for c in proxy.writes() if c.status == 503]) == 2 * len(sent)
    for inv in invocations:
        assert inv.response_s < inv.end_s
    log = (tmp_path / "log.txt").read_text()
    assert sum(v for v, _, _ in metric_points(log, mn.CAPTURE_ERRORS)) == len(sent)
    assert "capture failed after retry" in log
    assert stored_records(moto_url, bucket) == {}


@pytest.mark.slow
def test_hung_s3_holds_the_environment_no_longer_than_the_budget(moto_url, bucket, sample_bundle, tmp_path) -> None:
    budget = 0.6  # 2 attempts x (0.1 s connect + 0.2 s read)
    proxy = DelayProxy(moto_url, DELAY_S, mode="hang")
    try:
        _, invocations, sent = run(
            sample_bundle, function_env(sample_bundle, proxy, bucket, capture_budget_s=str(budget)), tmp_path / "log.txt", n=3
        )
    finally:
        proxy.close()
    assert sorted(answers(invocations)) == sorted(sent)
    for inv in invocations:
        # the answer never waits for the stuck write (which takes the whole budget: the proxy never answers)
        assert inv.response_s < budget / 2
        # the write gives up within its budget, not when the hang ends (never); 3 s: a loaded CI machine's slack,
        # the exact release time is the benchmarks' (bench_post_response.py)
        assert budget / 3 <= inv.end_s - inv.response_s < budget + 3.0
    log = (tmp_path / "log.txt").read_text()
    assert sum(v for v, _, _ in metric_points(log, mn.CAPTURE_ERRORS)) == len(sent)


@pytest.mark.slow
def test_firehose_sink_works_the_same_way(moto_url, bucket, sample_bundle, tmp_path) -> None:
    stream = f"captures-{uuid.uuid4().hex[:8]}"
    m = sample_bundle.manifest
    prefix = model_capture_prefix(m.model_name, m.version)
    client(moto_url, "firehose").create_delivery_stream(
        DeliveryStreamName=stream,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose-captures",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": prefix,
            "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
        },
    )
    proxy = DelayProxy(moto_url, DELAY_S)
    try:
        env = function_env(sample_bundle, proxy, bucket, capture_sink="firehose") | {"MS_FIREHOSE_STREAM": stream}
        _, invocations, sent = run(sample_bundle, env, tmp_path / "log.txt", n=4, rows=3)
    finally:
        proxy.close()
    got = answers(invocations)
    for inv in invocations:
        batch = next(c for c in proxy.writes() if c.received_at >= inv.dispatched_at)
        assert inv.responded_at < batch.answered_at < inv.ended_at
    stored = stored_records(moto_url, bucket, prefix)
    assert sorted(stored) == sorted(sent)
    for rid, records in stored.items():
        assert [r["prediction"] for r in sorted(records, key=lambda r: r["row"])] == got[rid]["predictions"]


def test_thread_mode_for_the_local_gateway_captures_every_request_in_the_background(
    s3, load_inference, sample_bundle, lambda_context, capsys
) -> None:
    """Where nothing freezes the process (the local gateway), a bounded background thread writes."""
    s3.create_bucket(Bucket="local-captures")
    mod = load_inference(capture_bucket="local-captures", capture_mode="thread")
    assert mod.capture_executor.mode == "thread"
    ref = [r["inputs"] for r in sample_bundle.reference_rows()]
    rids = [f"local-{i}" for i in range(5)]
    for i, rid in enumerate(rids):
        resp = mod.handler(event("rest_v1", "POST", "/predict", {"instances": [ref[i]]}, request_id=rid), lambda_context)
        assert resp["statusCode"] == 200
    assert mod.capture_executor.close(timeout=10)  # what the gateway does when it stops
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="local-captures").get("Contents", [])]
    assert len(keys) == len(rids) and all(any(k.endswith(f"-{rid}.jsonl.gz") for k in keys) for rid in rids)
    assert sum(v for v, _, _ in metric_points(capsys.readouterr().out, mn.CAPTURED_ROWS)) == len(rids)


# The Lambda runtime's SnapStart registry, as the handler finds it in a 3.12+ runtime. Lambda takes the
# snapshot once init is over (the capture extension registered and waiting for its next event) and resumes
# environments from it: here the snapshot is taken and resumed as soon as both hooks are registered.
SNAPSHOT_RESTORE_STUB = """
import sys, time
_before, _after = [], []

def register_before_snapshot(hook):
    _before.append(hook)

def register_after_restore(hook):
    _after.append(hook)
    time.sleep(0.2)  # the extension's worker is in its first next-event call, as when Lambda snapshots
    for h in _before:
        h()
    for h in _after:
        h()
    print("snapstart: snapshot taken and restored", file=sys.stderr, flush=True)
"""


def test_snapstart_hooks_around_the_capture_extension_keep_every_capture_after_the_answer(
    moto_url, bucket, sample_bundle, tmp_path
) -> None:
    """The capture extension with SnapStart's hooks run in the real runtime process: registered once, during
    init; the hooks drop the AWS clients and reseed the samplers while its worker waits on the Extensions API;
    every capture is still written after its answer, before its invocation ends, by clients built after the restore."""
    stub = tmp_path / "runtime"
    stub.mkdir()
    (stub / "snapshot_restore_py.py").write_text(SNAPSHOT_RESTORE_STUB)
    proxy = DelayProxy(moto_url, DELAY_S)
    try:
        env = function_env(sample_bundle, proxy, bucket) | {"PYTHONPATH": f"{stub}:{Path(__file__).resolve().parents[2]}"}
        emulator, invocations, sent = run(sample_bundle, env, tmp_path / "log.txt", n=4)
    finally:
        proxy.close()
    log = (tmp_path / "log.txt").read_text()
    assert log.count("snapstart: snapshot taken and restored") == 1
    assert emulator.registered() == [(EXTENSION_NAME, ["INVOKE"])]
    got = answers(invocations)
    for inv in invocations:
        rid = json.loads(inv.payload["body"])["request_id"]
        put = next(c for c in proxy.writes() if c.path.endswith(f"-{rid}.jsonl.gz"))
        assert inv.responded_at < put.answered_at < inv.ended_at
    stored = stored_records(moto_url, bucket, model_capture_prefix(sample_bundle.manifest.model_name, sample_bundle.manifest.version))
    assert sorted(stored) == sorted(sent) == sorted(got)
