"""Every alarm and the dashboard's SEARCH read a metric and dimension set the code emits, and every
metric the code emits is in the metric catalogue (modelserve/metric_catalogue.py) with that dimension set.

The stack is synthesized with the sample bundle; the real inference handler and drift-check handler
run (moto) with the environment the template gives their functions; what they emit is collected
from the EMF lines the inference function prints, the metrics the drift check puts (moto), and the
JSON log lines the MetricsErrors filter reads."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.local import LambdaContext, load_handler_module, log_capture_path
from modelserve import metric_catalogue as mc
from modelserve.bundle import ModelBundle
from modelserve.settings import ENV_ATHENA_WORKGROUP, ENV_CAPTURES_TABLE
from tests.infra.conftest import Synth, alarm_metric_stats, dashboard_body, synth_variant
from tests.support import event

BUCKET = "emitters-test-captures"
Emitted = set[tuple[str, str, frozenset[tuple[str, str]]]]  # (namespace, metric name, dimensions)
PUBLISHED_VERSION = "7"  # the Lambda version the run's 500 comes from (the template names it by a token)


@pytest.fixture(scope="module")
def stack(sample_bundle: ModelBundle, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synth_variant("default", Path(sample_bundle.root), tmp_path_factory.mktemp("cdkout-emitters"))


def function_env(stack: Synth, fragment: str) -> dict[str, str]:
    """A function's environment from the template; values the deploy resolves (bucket name) left out."""
    (props,) = [r["Properties"] for k, r in stack.of_type("AWS::Lambda::Function").items() if k.startswith(fragment)]
    return {k: v for k, v in props["Environment"]["Variables"].items() if isinstance(v, str)}


def drift_check_env(stack: Synth) -> dict[str, str]:
    """The drift check's environment, with the Athena workgroup and table the deploy names (drift_athena=auto by
    default): the check then publishes AthenaQueryErrors on every run, as it does in AWS."""
    env = function_env(stack, "MonitoringDriftCheck")
    (props,) = [r["Properties"] for k, r in stack.of_type("AWS::Lambda::Function").items() if k.startswith("MonitoringDriftCheck")]
    if ENV_ATHENA_WORKGROUP in props["Environment"]["Variables"]:
        env |= {ENV_ATHENA_WORKGROUP: "emitters-test-drift", ENV_CAPTURES_TABLE: "emitters_test.captures"}
    return env


@contextlib.contextmanager
def lambda_env(env: dict[str, str], bundle: ModelBundle) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for k in [k for k in os.environ if k.startswith(("MS_", "POWERTOOLS_"))]:
            mp.delenv(k)
        for k, v in {**env, "MS_MODEL_BUNDLE_PATH": str(bundle.root), "MS_CAPTURE_BUCKET": BUCKET}.items():
            mp.setenv(k, v)
        mp.setenv("POWERTOOLS_METRICS_DISABLED", "false")
        yield


def emf_metrics(stdout: str) -> Emitted:
    out: Emitted = set()
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for dim_set in directive["Dimensions"]:
                    dims = frozenset((d, str(blob[d])) for d in dim_set)
                    out |= {(directive["Namespace"], m["Name"], dims) for m in directive["Metrics"]}
    return out


def json_log_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@dataclass
class Emissions:
    metrics: Emitted
    log_lines: list[dict[str, Any]]
    by_publisher: dict[str, Emitted]  # "inference" (EMF lines), "drift_check" (PutMetricData)


def run_inference(inference: Any, rows: list[dict[str, Any]], log_out: io.StringIO) -> None:
    """Requests that make the function emit every metric it has: scored rows, captures, a rejection,
    a capture error, and a metrics error (its log line written to ``log_out``)."""
    ctx = LambdaContext.fresh("inference")

    def predict(instances: list[dict[str, Any]]) -> int:
        return inference.handler(event("rest_v1", "POST", "/predict", {"instances": instances}), ctx)["statusCode"]

    assert all(predict(rows[:10]) == 200 for _ in range(20))
    assert predict([{**rows[0], "island": "Atlantis"}]) == 422  # a category the model never saw: rejected with a reason
    with pytest.MonkeyPatch.context() as mp:
        sink = inference.service.capturer.sink
        if hasattr(sink, "max_line_bytes"):  # the logs sink (the default): a line too long to write is lost and counted
            mp.setattr(sink, "max_line_bytes", 10)
        else:  # the s3 sink: a PutObject fails, counted, still answered
            mp.setattr(sink, "bucket", "no-such-bucket")
        assert predict(rows[:1]) == 200

    def model_fails(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the model raised")

    # the model raises: the app answers 500, which Lambda counts as a success; ServerErrors counts it, also by the
    # version that answered (the canary alarm reads the new version's)
    published = dataclasses.replace(ctx, function_version=PUBLISHED_VERSION)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inference.service.runner, "predict", model_fails)
        assert inference.handler(event("rest_v1", "POST", "/predict", {"instances": rows[:1]}), published)["statusCode"] == 500

    # the after-response queue is full: the capture is dropped and counted (CaptureDropped), as the
    # handler wires its executor's hook; the writer is held on an earlier capture, the queue holds one more
    from serving.post_response import ThreadCapture

    held = threading.Event()
    full = ThreadCapture(max_pending=1, on_dropped=lambda n: inference.metrics(mc.CAPTURE_DROPPED, n, {}), writers=1)
    full.submit(lambda: held.wait(5) or True)
    while not full._queue.empty():
        time.sleep(0.01)
    full.submit(lambda: True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inference.service.capturer, "executor", full)
        assert predict(rows[:1]) == 200
    held.set()
    assert full.dropped == 1

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("EMF is broken")

    # EMF itself fails: the line the MetricsErrors filter counts, as the function's log formatter writes it;
    # read through our own handler (the stdlib logger's handlers depend on what imported it first)
    metrics_log = logging.getLogger("modelserve.metrics")
    spy = logging.StreamHandler(log_out)
    spy.setFormatter(inference.logger.registered_formatter)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inference.metrics, "_add", broken)  # collecting a value fails
        metrics_log.addHandler(spy)
        try:
            assert predict(rows[:1]) == 200
        finally:
            metrics_log.removeHandler(spy)


def send_labels(inference: Any, reference: list[dict[str, Any]], requests: int = 25) -> None:
    """Scored rows with their true class back through /feedback: enough labels for the performance verdicts."""
    ctx = LambdaContext.fresh("inference")
    for i in range(requests):
        batch = reference[(i * 10) % len(reference) :][:10]
        rid = f"labelled-{i}"
        resp = inference.handler(event("rest_v1", "POST", "/predict", {"instances": [r["inputs"] for r in batch]}, request_id=rid), ctx)
        assert resp["statusCode"] == 200
        items = [{"request_id": rid, "row": j, "label": r["target"]} for j, r in enumerate(batch)]
        assert inference.handler(event("rest_v1", "POST", "/feedback", items, request_id=f"fb-{i}"), ctx)["statusCode"] == 202


def put_metrics() -> Emitted:
    """What was put with PutMetricData (moto)."""
    out: Emitted = set()
    for page in boto3.client("cloudwatch").get_paginator("list_metrics").paginate():
        for m in page["Metrics"]:
            out.add((m["Namespace"], m["MetricName"], frozenset((d["Name"], d["Value"]) for d in m["Dimensions"])))
    return out


@pytest.fixture(scope="module")
def emitted(stack: Synth, sample_bundle: ModelBundle) -> Emissions:
    rows = [r["inputs"] for r in sample_bundle.reference_rows()]
    out, log_out = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, mock_aws(), contextlib.redirect_stdout(out):
        for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(k, v)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        # the stack's sink (logs by default): its capture lines go through moto's CloudWatch Logs and Firehose,
        # as Lambda's stdout does, so the drift check below reads them back
        with lambda_env(function_env(stack, "ServingFunction"), sample_bundle), log_capture_path(sample_bundle.root, BUCKET):
            inference = load_handler_module("inference")
            run_inference(inference, rows, log_out)
            send_labels(inference, sample_bundle.reference_rows())
        with lambda_env(drift_check_env(stack), sample_bundle):
            scheduled = {"time": (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
            load_handler_module("drift_check").handler(scheduled, LambdaContext.fresh("drift_check"))
        put = put_metrics()
    emf = emf_metrics(out.getvalue())
    return Emissions(emf | put, json_log_lines(log_out.getvalue()), {"inference": emf, "drift_check": put})


def test_the_run_emitted_what_the_alarms_need(emitted: Emissions) -> None:
    names = {name for _, name, _ in emitted.metrics}
    assert {"RowsScored", "CapturedRows", "CaptureErrors", "ValidationRejects", "WindowRows", "DatasetDrift"} <= names


def test_every_model_alarm_reads_an_emitted_metric_and_dimension_set(stack: Synth, emitted: Emissions) -> None:
    ns = stack.settings.metrics_namespace
    filters = {
        (t["MetricNamespace"], t["MetricName"]): {d["Key"]: d["Value"] for d in t["Dimensions"]}
        for f in stack.of_type("AWS::Logs::MetricFilter").values()
        for t in f["Properties"]["MetricTransformations"]
    }
    checked = 0
    for alarm in stack.of_type("AWS::CloudWatch::Alarm").values():
        for stat in alarm_metric_stats(alarm["Properties"]).values():
            if stat["namespace"] != ns:
                continue  # AWS/Lambda and AWS/ApiGateway: AWS publishes those, keyed by resource names
            # the version the stack publishes is a token (Fn::GetAtt of the Version): the run's stands for it
            dims = {k: v if isinstance(v, str) else PUBLISHED_VERSION for k, v in stat["dims"].items()}
            key = (stat["namespace"], stat["name"], frozenset(dims.items()))
            if (stat["namespace"], stat["name"]) in filters:  # from a metric filter: the log lines carry its fields
                line = next(x for x in emitted.log_lines if str(x.get("message", "")).startswith("metrics_error"))
                resolved = {k: str(line[v.removeprefix("$.")]) for k, v in filters[(stat["namespace"], stat["name"])].items()}
                assert resolved == dims, alarm["Properties"]["AlarmName"]
            else:
                assert key in emitted.metrics, (alarm["Properties"]["AlarmName"], key)
            checked += 1
    assert checked >= 12


def _search_expressions(stack: Synth) -> list[str]:
    body = dashboard_body(stack)
    found = []
    for w in body["widgets"]:
        for m in w.get("properties", {}).get("metrics", []):
            for item in m:
                if isinstance(item, dict) and "SEARCH(" in item.get("expression", ""):
                    found.append(item["expression"])
    return found


def search_matches(expression: str, emitted: Emitted) -> Emitted:
    """What a SEARCH('{Namespace,Dim1,...} Key="value" ...', ...) finds: metrics with exactly the
    schema's dimension names whose values and name match every Key="value" term."""
    query = re.fullmatch(r"SEARCH\('(.*)', '\w+', \d+\)", expression).group(1)  # type: ignore[union-attr]
    schema, _, terms = query.partition("}")
    namespace, *dim_names = schema.lstrip("{").split(",")
    wanted = dict(re.findall(r'(\w+)="([^"]*)"', terms))
    found = set()
    for ns, name, dims in emitted:
        d = dict(dims)
        if ns != namespace or set(d) != set(dim_names):
            continue
        if all((name if k == "MetricName" else d.get(k)) == v for k, v in wanted.items()):
            found.add((ns, name, dims))
    return found


def test_the_dashboard_rejects_breakdown_finds_the_emitted_metric(stack: Synth, emitted: Emissions) -> None:
    (expression,) = _search_expressions(stack)
    found = search_matches(expression, emitted.metrics)
    assert found, expression
    assert all(dict(d).get("Reason") for _, _, d in found)
    # the evaluator can fail: the breakdown as Powertools' single_metric wrote it (a "service" dimension)
    with_service = {(ns, n, frozenset({*d, ("service", "inference")})) for ns, n, d in found}
    assert not search_matches(expression, with_service)


def test_every_dashboard_model_metric_is_emitted(stack: Synth, emitted: Emissions) -> None:
    """Graph metrics: ['Namespace', 'Name', 'Dim', 'value', ...] rows of the model namespace."""
    body = dashboard_body(stack)
    ns = stack.settings.metrics_namespace
    missing, checked = [], 0
    emitted_names = {(n, d) for space, n, d in emitted.metrics if space == ns}
    for w in body["widgets"]:
        for row in w.get("properties", {}).get("metrics", []):
            if row and row[0] == ns:
                checked += 1
                plain = [x for x in row if not isinstance(x, dict)]
                name, dims = plain[1], frozenset(zip(plain[2::2], plain[3::2]))
                if (name, dims) not in emitted_names:
                    missing.append((name, dict(dims)))
    # performance metrics need labels, PCA/MMD need their detectors, latency-free runs have no percentiles:
    # these may be absent from one run, but never because of a dimension mismatch
    emitted_by_name = {n: {frozenset(k for k, _ in d) for nn, d in emitted_names if nn == n} for n, _ in emitted_names}
    for name, dims in missing:
        if name in emitted_by_name:
            assert frozenset(dims) in emitted_by_name[name], (name, dims)
    assert checked >= 10 and len(missing) < checked / 2, (checked, missing)


def test_every_emitted_metric_is_catalogued_with_its_publisher_and_dimension_set(stack: Synth, emitted: Emissions) -> None:
    ns = stack.settings.metrics_namespace
    checked = set()
    for publisher, metrics in emitted.by_publisher.items():
        for space, name, dims in metrics:
            if space != ns:
                continue  # moto's own AWS/S3 storage metrics
            assert name in mc.CATALOGUE, (publisher, name)
            entry = mc.CATALOGUE[name]
            assert entry.publisher == publisher, (name, entry.publisher, publisher)
            assert {k for k, _ in dims} in [set(d) for d in entry.dimension_sets], (name, sorted(k for k, _ in dims))
            checked.add(name)
    # inference, drift verdicts, data quality, performance on the labels sent: most of the catalogue in one run
    assert len(checked) >= 30, sorted(checked)


def test_the_estimated_performance_figures_the_dashboard_draws_are_put_by_the_drift_check_in_each_window(
    stack: Synth, emitted: Emissions
) -> None:
    """The sample classifier's estimates before labels, beside its performance on the labels sent: each graphed series
    (name and dimensions) is one the real drift-check handler put, for the 24 h and the 1 h window."""
    ns = stack.settings.metrics_namespace
    put = {(name, dims) for space, name, dims in emitted.by_publisher["drift_check"] if space == ns}
    estimates = {mc.ESTIMATED_ACCURACY, mc.ESTIMATED_F1, mc.ESTIMATED_AUC}
    graphed = set()
    for w in dashboard_body(stack)["widgets"]:
        for row in w.get("properties", {}).get("metrics", []):
            plain = [x for x in row if not isinstance(x, dict)]
            if plain and plain[0] == ns and plain[1] in estimates | {mc.ACCURACY, mc.F1, mc.AUC}:
                graphed.add((plain[1], frozenset(zip(plain[2::2], plain[3::2]))))
    assert {(name, dict(dims)[mc.DIM_WINDOW]) for name, dims in graphed if name in estimates} == {
        (n, w) for n in estimates for w in ("24h", "1h")
    }
    assert graphed <= put, graphed - put
