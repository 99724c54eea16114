"""The drift-check Lambda end to end on moto: captures from the real inference handler -> scheduled
event -> CloudWatch metrics (read back with get_metric_data) and report objects."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from devtools.local import load_handler_module
from modelserve import metric_catalogue as mn
from modelserve.records import capture_key
from monitoring import metric_names as M
from tests.support import event

# captures read back as the s3 sink files them, by event hour, at once
pytestmark = pytest.mark.capture_sink("s3")

BUCKET = "drift-test-captures"
NAMESPACE = "DriftTest"


def scheduled_event(at: datetime) -> dict:
    return {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/drift-check"],
        "detail": {},
    }


@pytest.fixture
def aws(aws_credentials, monkeypatch):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        yield


@pytest.fixture
def handlers(aws, load_inference, sample_bundle, monkeypatch):
    inference = load_inference(capture_bucket=BUCKET, metrics_namespace=NAMESPACE)
    drift = load_handler_module("drift_check")
    return inference, drift


def _send(inference, ctx, rows, n_requests, rng, shift=None):
    for _ in range(n_requests):
        batch = [dict(rng.choice(rows)) for _ in range(10)]
        if shift:
            batch = [shift(r, rng) for r in batch]
        resp = inference.handler(event("rest_v1", "POST", "/predict", {"instances": batch}, request_id=f"r{rng.random()}"), ctx)
        assert resp["statusCode"] == 200, resp["body"]


def _metric(name: str, start: datetime, end: datetime, version: str, feature: str | None = None, window: str | None = "24h") -> list[float]:
    dims = [{"Name": mn.DIM_MODEL_NAME, "Value": "penguins"}, {"Name": mn.DIM_MODEL_VERSION, "Value": version}]
    if window:  # the drift check's metrics of one window; None: the run's own (VerdictEventErrors)
        dims.append({"Name": mn.DIM_WINDOW, "Value": window})
    if feature:
        dims.append({"Name": mn.DIM_FEATURE, "Value": feature})
    resp = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dims}, "Period": 60, "Stat": "Maximum"},
            }
        ],
        StartTime=start - timedelta(minutes=2),
        EndTime=end + timedelta(minutes=2),
    )
    return resp["MetricDataResults"][0]["Values"]


def _shift(row, rng):
    row = dict(row)
    if row["body_mass_g"] is not None:
        row["body_mass_g"] += 800.0
    if rng.random() < 0.3:
        row["bill_depth_mm"] = None
    return row


def test_quiet_then_shifted_traffic_publishes_the_right_metrics_and_reports(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    version = sample_bundle.manifest.version
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    rng = random.Random(5)

    _send(inference, lambda_context, rows, 100, rng)
    t1 = datetime.now(UTC) + timedelta(seconds=1)
    quiet = drift.handler(scheduled_event(t1), lambda_context)
    assert quiet["rows_seen"] == 1000 and quiet["dataset_drift"] is False and quiet["corrupt_objects"] == 0

    _send(inference, lambda_context, rows, 100, rng, shift=_shift)
    t2 = t1 + timedelta(minutes=10)  # a later schedule tick; its 24 h window holds both periods
    shifted = drift.handler(scheduled_event(t2), lambda_context)
    assert shifted["rows_seen"] == 2000 and shifted["dataset_drift"] is True

    assert _metric(M.WINDOW_ROWS, t1, t1, version) == [1000.0]
    drift_values = _metric(M.DATASET_DRIFT, t1, t2, version)
    assert sorted(drift_values) == [0.0, 1.0]
    # the shifted feature carries a tiny corrected p-value and a large effect; an untouched one does not
    assert min(_metric(M.FEATURE_P_VALUE, t2, t2, version, "body_mass_g")) < 1e-6
    assert max(_metric(M.FEATURE_EFFECT_SIZE, t2, t2, version, "body_mass_g")) > 0.3
    assert max(_metric(M.FEATURE_P_VALUE, t2, t2, version, "island")) > 0.05
    assert max(_metric(M.MISSING_RATE, t2, t2, version)) > 0.1
    assert _metric(mn.CORRUPT_CAPTURE_OBJECTS, t2, t2, version) == [0.0]

    s3 = boto3.client("s3")
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key=shifted["report_json"].split("/", 3)[3])["Body"].read())
    assert doc["model_version"] == version and doc["report"]["dataset_drift"] is True
    drifted = {f["feature"] for f in doc["report"]["features"]["results"] if f["is_drift"]}
    assert "body_mass_g" in drifted and "island" not in drifted
    html = s3.get_object(Bucket=BUCKET, Key=shifted["report_html"].split("/", 3)[3])["Body"].read().decode()
    assert html.count("<svg") >= len(sample_bundle.manifest.features)
    assert shifted["report_html"].startswith(f"s3://{BUCKET}/reports/model=penguins/dt=")


def test_empty_window_publishes_zero_rows_and_no_verdict(handlers, sample_bundle, lambda_context) -> None:
    _, drift = handlers
    at = datetime.now(UTC)
    out = drift.handler(scheduled_event(at), lambda_context)
    assert out["rows_seen"] == 0 and out["dataset_drift"] is None
    version = sample_bundle.manifest.version
    assert _metric(M.WINDOW_ROWS, at, at, version) == [0.0]
    assert _metric(M.DATASET_DRIFT, at, at, version) == []  # no verdict: the alarm treats the gap per its setting


def test_corrupt_and_truncated_objects_are_skipped_and_counted(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    _send(inference, lambda_context, rows, 20, random.Random(1))
    now = datetime.now(UTC)
    m = sample_bundle.manifest
    s3 = boto3.client("s3")
    good = gzip.compress(b'{"not": "a capture record"}\n')
    truncated = gzip.compress(b'{"request_id": "x"}\n' * 50)[:-20]
    s3.put_object(Bucket=BUCKET, Key=capture_key(m.model_name, m.version, now, "truncated"), Body=truncated)
    s3.put_object(Bucket=BUCKET, Key=capture_key(m.model_name, m.version, now, "garbage"), Body=b"\x00\x01 not json")
    s3.put_object(Bucket=BUCKET, Key=capture_key(m.model_name, m.version, now, "wrongshape"), Body=good)
    at = now + timedelta(seconds=1)
    out = drift.handler(scheduled_event(at), lambda_context)
    assert out["corrupt_objects"] == 3
    assert out["rows_seen"] == 200  # the 20 good requests, whole
    assert _metric(mn.CORRUPT_CAPTURE_OBJECTS, at, at, m.version) == [3.0]


def test_explicit_window_reads_only_that_window(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    _send(inference, lambda_context, rows, 10, random.Random(2))
    now = datetime.now(UTC)
    past = {"window": {"start": (now - timedelta(hours=5)).isoformat(), "end": (now - timedelta(hours=4)).isoformat()}}
    assert drift.handler(past, lambda_context)["rows_seen"] == 0
    around = {"window": {"start": (now - timedelta(minutes=5)).isoformat(), "end": (now + timedelta(seconds=1)).isoformat()}}
    assert drift.handler(around, lambda_context)["rows_seen"] == 100


def test_read_past_the_time_budget_checks_a_partial_window_and_says_so(handlers, sample_bundle, lambda_context) -> None:
    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    _send(inference, lambda_context, rows, 5, random.Random(4))
    at = datetime.now(UTC) + timedelta(seconds=1)
    run = drift.service.run(scheduled_event(at), read_budget_s=0.0)
    assert run.window.partial is True
    assert run.window.objects_listed == 5 and run.window.objects_read < 5
    full = drift.service.run(scheduled_event(at), read_budget_s=60.0)
    assert full.window.partial is False and full.window.rows_seen == 50


def test_drift_function_imports_nothing_only_the_inference_asset_has(sample_bundle, aws_credentials) -> None:
    """The drift asset ships numpy + scipy, not onnxruntime, FastAPI or Mangum: importing its handler
    with those blocked must work (a shared module importing them would crash the Lambda at init)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "for m in ('onnxruntime', 'fastapi', 'mangum', 'starlette', 'orjson', 'sklearn', 'skl2onnx', 'pandas'):\n"
        "    sys.modules[m] = None  # import fails, as in the asset\n"
        "from devtools.local import load_handler_module\n"
        "mod = load_handler_module('drift_check')\n"
        "print('ok', type(mod.service).__name__)\n"
    )
    env = dict(os.environ, MS_MODEL_BUNDLE_PATH=str(sample_bundle.root), MS_CAPTURE_BUCKET="any-bucket")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok DriftService" in out.stdout


# ------------------------------------------------------------------ verdict events and the reader pool


@pytest.fixture
def drift_rule():
    """The docs' example rule on the default bus, forwarding to an SQS queue (inside the moto of ``aws``)."""
    from driftcheck.verdict_events import DETAIL_TYPE, SOURCE

    events, sqs = boto3.client("events"), boto3.client("sqs")
    queue = sqs.create_queue(QueueName="drift-verdicts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": [SOURCE], "detail-type": [DETAIL_TYPE], "detail": {"model_name": ["penguins"]}}
    events.put_rule(Name="drift-verdicts", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="drift-verdicts", Targets=[{"Id": "q", "Arn": arn}])

    def received() -> list[dict]:
        msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        return [json.loads(m["Body"]) for m in msgs]

    return received


def test_each_check_puts_its_verdict_on_the_default_bus(handlers, drift_rule, sample_bundle, lambda_context) -> None:
    from modelserve.metric_catalogue import VERDICT_EVENT_ERRORS

    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    _send(inference, lambda_context, rows, 100, random.Random(7), shift=_shift)
    at = datetime.now(UTC) + timedelta(seconds=1)
    out = drift.handler(scheduled_event(at), lambda_context)
    assert out["dataset_drift"] is True

    # one event per window checked: the main 24 h window's and the short 1 h window's
    by_window = {e["detail"]["window"]["label"]: e["detail"] for e in drift_rule()}
    assert sorted(by_window) == ["1h", "24h"]
    detail = by_window["24h"]
    assert detail["root_cause"] == out["root_cause"] and detail["root_cause"]
    assert detail["model_name"] == "penguins" and detail["model_version"] == sample_bundle.manifest.version
    assert detail["dataset_drift"] is True and detail["window"]["rows"] == out["rows_checked"]
    assert detail["report_json"] == out["report_json"] and detail["report_html"] == out["report_html"]
    assert detail["verdicts"]["dataset drift"] is True
    assert not [k for k in detail["verdicts"] if k.startswith("feature ")]  # per feature: in the findings
    # the shifted feature is flagged, first (largest effect), with its statistics; untouched ones are not
    assert detail["findings"][0].startswith("body_mass_g: ") and "p=" in detail["findings"][0]
    assert not any(f.startswith("island:") for f in detail["findings"])
    # the report the event points at says the same
    s3 = boto3.client("s3")
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key=detail["report_json"].split("/", 3)[3])["Body"].read())
    assert doc["report"]["dataset_drift"] is True
    assert _metric(VERDICT_EVENT_ERRORS, at, at, sample_bundle.manifest.version, window=None) == [0.0]


def test_an_unreachable_bus_is_counted_and_the_check_still_succeeds(
    handlers, drift_rule, sample_bundle, lambda_context, monkeypatch
) -> None:
    from botocore.config import Config

    from modelserve.metric_catalogue import VERDICT_EVENT_ERRORS

    _, drift = handlers
    dead = boto3.client("events", endpoint_url="http://127.0.0.1:9", config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    monkeypatch.setattr(drift.service, "events", dead)
    at = datetime.now(UTC)
    out = drift.handler(scheduled_event(at), lambda_context)
    assert out["rows_seen"] == 0 and out["report_json"].startswith("s3://")
    assert _metric(VERDICT_EVENT_ERRORS, at, at, sample_bundle.manifest.version, window=None) == [1.0]
    assert drift_rule() == []


def test_the_s3_connection_pool_holds_every_reader_thread(handlers) -> None:
    from driftcheck.window_reader import ReadOptions

    _, drift = handlers
    pool = drift.service.s3.meta.config.max_pool_connections
    assert pool >= ReadOptions(sample_cap=100).workers
    # what botocore would otherwise give: fewer connections than threads
    assert boto3.client("s3").meta.config.max_pool_connections < ReadOptions(sample_cap=100).workers


def test_a_wrong_typed_captured_value_reaches_the_wrong_type_expectation_instead_of_failing_the_check(
    handlers, sample_bundle, lambda_context
) -> None:
    """The drift side hands recorded values to monitoring as they are: one normalisation of a column
    (monitoring's), where a value that can't be the declared type is counted, not raised on."""
    inference, drift = handlers
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    _send(inference, lambda_context, rows, 20, random.Random(3))
    s3 = boto3.client("s3")
    m = sample_bundle.manifest
    key = s3.list_objects_v2(Bucket=BUCKET)["Contents"][0]["Key"]
    records = [json.loads(line) for line in gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).splitlines()]
    tampered = json.loads(json.dumps(records[0]))
    tampered["request_id"] = "tampered"
    tampered["inputs"]["body_mass_g"] = "heavy"  # a string in a numeric column: what a broken writer could leave
    body = gzip.compress(json.dumps(tampered).encode() + b"\n")
    now = datetime.now(UTC)
    s3.put_object(Bucket=BUCKET, Key=capture_key(m.model_name, m.version, now, "tampered"), Body=body)
    out = drift.handler(scheduled_event(now + timedelta(seconds=1)), lambda_context)
    assert out["corrupt_objects"] == 0
    doc = json.loads(s3.get_object(Bucket=BUCKET, Key=out["report_json"].split("/", 3)[3])["Body"].read())
    (wrong,) = [r for r in doc["report"]["data_quality"]["results"] if r["feature"] == "body_mass_g" and r["check"] == "wrong_type"]
    assert wrong["n_flagged"] == 1 and wrong["failed"] is True
