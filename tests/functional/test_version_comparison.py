"""The drift check's version comparison end to end on moto: the real inference handler with a
challenger (shadow, then A/B) writes captures, the API takes feedback, the real drift-check handler
reads both versions' windows and writes the comparison report next to the drift report."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.local import load_handler_module
from modelserve import metric_catalogue as mn
from modelserve.records import report_key, version_report_key
from modelserve.settings import ENV_CHALLENGER_VERSION
from monitoring.comparison import CHALLENGER_DRIFT, SHADOW_AGREEMENT, VARIANT_ACCURACY
from monitoring.metric_names import DATASET_DRIFT, WINDOW_ROWS
from serving.model import ModelRunner
from serving.validation import Validator
from tests.functional.test_drift_check_handler import scheduled_event
from tests.support import event, response_json

# both variants' captures read back as the s3 sink files them, at once
pytestmark = pytest.mark.capture_sink("s3")

BUCKET = "comparison-test-captures"
NAMESPACE = "ComparisonTest"


@pytest.fixture
def aws(aws_credentials, monkeypatch):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        yield


def deploy(load_inference, monkeypatch, challenger_bundle, mode: str, **settings: str) -> tuple[Any, Any]:
    """Both functions as the stack would configure them for ``mode``."""
    inference = load_inference(
        capture_bucket=BUCKET,
        metrics_namespace=NAMESPACE,
        challenger_mode=mode,
        MS_CHALLENGER_BUNDLE_PATH=str(challenger_bundle.root),
        **settings,
    )
    monkeypatch.setenv(ENV_CHALLENGER_VERSION, challenger_bundle.manifest.version)
    return inference, load_handler_module("drift_check")


def post(inference: Any, ctx: Any, path: str, body: Any, request_id: str, client_id: str | None = None) -> dict[str, Any]:
    headers = {"x-client-id": client_id} if client_id else None
    resp = inference.handler(event("rest_v1", "POST", path, body, request_id=request_id, headers=headers), ctx)
    assert resp["statusCode"] in (200, 202), resp["body"]
    return response_json(resp)


def metric(name: str, at: datetime, version: str, window: str | None = None) -> list[float]:
    """``window``: a drift-check metric of that window ("24h"); None: a comparison metric (no Window)."""
    dims = [{"Name": mn.DIM_MODEL_NAME, "Value": "penguins"}, {"Name": mn.DIM_MODEL_VERSION, "Value": version}]
    if window:
        dims.append({"Name": mn.DIM_WINDOW, "Value": window})
    resp = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dims}, "Period": 60, "Stat": "Maximum"},
            }
        ],
        StartTime=at - timedelta(minutes=2),
        EndTime=at + timedelta(minutes=2),
    )
    return resp["MetricDataResults"][0]["Values"]


def report(uri: str) -> bytes:
    return boto3.client("s3").get_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["Body"].read()


def test_shadow_comparison_pairs_every_row_and_its_statistics_are_the_models(
    aws, load_inference, monkeypatch, sample_bundle, challenger_bundle, lambda_context
) -> None:
    inference, drift = deploy(load_inference, monkeypatch, challenger_bundle, "shadow")
    ref = sample_bundle.reference_rows()
    rng = random.Random(7)
    sent: list[dict[str, Any]] = []  # one entry per row: its reference row, and whether a label was sent
    for i in range(50):
        rows = [rng.choice(ref) for _ in range(3)]
        body = post(inference, lambda_context, "/predict", {"instances": [r["inputs"] for r in rows]}, f"req-{i}")
        labelled = [j for j in range(3) if rng.random() < 0.7]
        if labelled:
            feedback = [{"request_id": f"req-{i}", "row": j, "label": rows[j]["target"]} for j in labelled]
            post(inference, lambda_context, "/feedback", feedback, f"fb-{i}")
        sent += [{"ref": r, "champion": body["predictions"][j], "labelled": j in labelled} for j, r in enumerate(rows)]

    at = datetime.now(UTC) + timedelta(seconds=1)
    summary = drift.handler(scheduled_event(at), lambda_context)
    comp = summary["comparison"]
    assert comp["mode"] == "shadow" and comp["paired_rows"] == len(sent) == 150
    assert comp["labeled_rows"] == sum(s["labelled"] for s in sent)

    # what the two models say, computed here without the service
    chal = challenger_bundle.manifest
    predicted = (
        ModelRunner.from_path(chal, challenger_bundle.model_path)
        .predict(Validator(chal, 1000).validate({"instances": [s["ref"]["inputs"] for s in sent]}))
        .labels.tolist()
    )
    agreeing = sum(s["champion"] == p for s, p in zip(sent, predicted))
    labelled = [(s, p) for s, p in zip(sent, predicted) if s["labelled"]]
    b = sum(s["champion"] == s["ref"]["target"] != p for s, p in labelled)
    c = sum(s["champion"] != s["ref"]["target"] == p for s, p in labelled)

    doc = json.loads(report(comp["report_json"]))["comparison"]
    assert doc["agreement"]["rows"] == 150 and doc["agreement"]["agreeing"] == agreeing
    assert doc["performance"]["champion"]["accuracy"] == pytest.approx(
        sum(s["champion"] == s["ref"]["target"] for s, _ in labelled) / len(labelled)
    )
    assert doc["performance"]["challenger"]["accuracy"] == pytest.approx(sum(p == s["ref"]["target"] for s, p in labelled) / len(labelled))
    assert doc["difference"]["detail"] == {"b": b, "c": c}
    assert doc["versions"] == {"champion": sample_bundle.manifest.version, "challenger": chal.version}
    # next to the drift report of the same run
    assert comp["report_json"].removesuffix("-comparison.json") == summary["report_json"].removesuffix(".json")
    assert b"Agreement" in report(comp["report_html"])
    assert metric(SHADOW_AGREEMENT, at, chal.version) == [pytest.approx(agreeing / 150)]


def test_ab_comparison_joins_feedback_to_the_version_that_answered(
    aws, load_inference, monkeypatch, sample_bundle, challenger_bundle, lambda_context
) -> None:
    inference, drift = deploy(load_inference, monkeypatch, challenger_bundle, "ab", ab_share="0.5")
    ref = sample_bundle.reference_rows()
    rng = random.Random(11)
    correct: dict[str, list[bool]] = {"champion": [], "challenger": []}
    for i in range(120):
        row = rng.choice(ref)
        body = post(inference, lambda_context, "/predict", {"instances": [row["inputs"]]}, f"req-{i}", client_id=f"client-{i % 40}")
        post(inference, lambda_context, "/feedback", {"request_id": f"req-{i}", "label": row["target"]}, f"fb-{i}")
        correct[body["variant"]].append(body["predictions"][0] == row["target"])
    assert all(correct.values())  # both variants answered some clients

    at = datetime.now(UTC) + timedelta(seconds=1)
    comp = drift.handler(scheduled_event(at), lambda_context)["comparison"]
    assert comp["mode"] == "ab" and comp["rows"] == {v: len(c) for v, c in correct.items()}
    assert comp["labeled_rows"] == 120
    doc = json.loads(report(comp["report_json"]))["comparison"]
    for variant, c in correct.items():
        assert doc["performance"][variant]["accuracy"] == pytest.approx(sum(c) / len(c))
        version = doc["versions"][variant]
        assert metric(VARIANT_ACCURACY, at, version) == [pytest.approx(sum(c) / len(c))]
    assert doc["difference"]["test"] == "two_proportion_z"
    assert doc["difference"]["detail"] == {"champion_correct": sum(correct["champion"]), "challenger_correct": sum(correct["challenger"])}


def test_no_challenger_no_comparison(aws, load_inference, lambda_context) -> None:
    load_inference(capture_bucket=BUCKET, metrics_namespace=NAMESPACE)
    drift = load_handler_module("drift_check")
    assert "comparison" not in drift.handler(scheduled_event(datetime.now(UTC)), lambda_context)


def metric_series(name: str, at: datetime, dims: dict[str, str]) -> list[float]:
    resp = boto3.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": NAMESPACE,
                        "MetricName": name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
                    },
                    "Period": 60,
                    "Stat": "SampleCount",
                },
            }
        ],
        StartTime=at - timedelta(minutes=2),
        EndTime=at + timedelta(minutes=2),
    )
    return resp["MetricDataResults"][0]["Values"]


@pytest.mark.parametrize("mode", ["shadow", "ab"])
def test_the_drift_check_runs_a_full_report_for_each_live_version(
    aws, load_inference, monkeypatch, sample_bundle, challenger_bundle, lambda_context, tmp_path, mode
) -> None:
    inference, _ = deploy(load_inference, monkeypatch, challenger_bundle, mode, ab_share="0.5")
    # the drift check gets the challenger as its asset carries it: manifest and reference, no ONNX graph
    slim = tmp_path / "bundle_challenger"
    slim.mkdir()
    for name in ("manifest.json", "reference.jsonl.gz"):
        (slim / name).write_bytes((challenger_bundle.root / name).read_bytes())
    monkeypatch.setenv("MS_CHALLENGER_BUNDLE_PATH", str(slim))
    drift = load_handler_module("drift_check")

    ref = sample_bundle.reference_rows()
    rng = random.Random(5)
    answered: dict[str, list[bool]] = {"champion": [], "challenger": []}  # per variant: answer == label
    for i in range(80):
        row = rng.choice(ref)
        body = post(inference, lambda_context, "/predict", {"instances": [row["inputs"]]}, f"req-{i}", client_id=f"client-{i % 30}")
        post(inference, lambda_context, "/feedback", {"request_id": f"req-{i}", "label": row["target"]}, f"fb-{i}")
        answered[body.get("variant", "champion")].append(body["predictions"][0] == row["target"])

    at = datetime.now(UTC) + timedelta(seconds=1)
    summary = drift.handler(scheduled_event(at), lambda_context)
    champion_v, challenger_v = sample_bundle.manifest.version, challenger_bundle.manifest.version
    theirs = summary["challenger"]
    assert theirs["model_version"] == challenger_v
    # the challenger's captures: its own predictions on every request (shadow), the traffic it answered (A/B)
    expected = {"shadow": (80, 80), "ab": (len(answered["champion"]), len(answered["challenger"]))}[mode]
    assert (summary["rows_seen"], theirs["rows_seen"]) == expected and min(expected) > 0
    # two reports of the same run: the champion's where it always was, the challenger's under a key naming its version
    assert summary["report_json"].endswith(report_key("penguins", at, "json"))
    assert theirs["report_json"].endswith(version_report_key("penguins", challenger_v, at, "json"))
    assert theirs["report_html"].endswith(version_report_key("penguins", challenger_v, at, "html"))
    docs = {v: json.loads(report(s["report_json"])) for v, s in (("champion", summary), ("challenger", theirs))}
    assert docs["champion"]["model_version"] == champion_v and docs["challenger"]["model_version"] == challenger_v
    assert f"Drift report: penguins {challenger_v}".encode() in report(theirs["report_html"])
    # checked against its own reference, its own answers scored against the labels
    assert docs["challenger"]["report"]["reference_rows"] == len(challenger_bundle.reference_rows())
    perf = {v: d["report"]["performance"] for v, d in docs.items()}
    if mode == "ab":
        for variant, correct in answered.items():
            assert perf[variant]["accuracy"] == pytest.approx(sum(correct) / len(correct))
    else:
        comparison = json.loads(report(summary["comparison"]["report_json"]))["comparison"]["performance"]
        assert perf["challenger"]["accuracy"] == pytest.approx(comparison["challenger"]["accuracy"])
        assert perf["champion"]["accuracy"] == pytest.approx(comparison["champion"]["accuracy"])
    # metrics under each version; the deployment-wide WindowRows (NoTraffic's) is the champion's alone
    for version, rows in ((champion_v, expected[0]), (challenger_v, expected[1])):
        assert metric(WINDOW_ROWS, at, version, "24h") == [rows]
    assert metric_series(WINDOW_ROWS, at, {mn.DIM_MODEL_NAME: "penguins", mn.DIM_WINDOW: "24h"}) == [1]
    assert metric(DATASET_DRIFT, at, challenger_v, "24h") == [0.0]
    # the same quiet traffic for both: no drift only the challenger sees
    assert metric(CHALLENGER_DRIFT, at, challenger_v) == [0.0] and theirs["challenger_only_drift"] is False
    assert metric(CHALLENGER_DRIFT, at, champion_v) == []
