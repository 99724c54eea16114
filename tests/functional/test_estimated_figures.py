"""The estimated performance figures, end to end on moto: predictions through the real inference handler, the
real drift-check handler, and the figures in CloudWatch next to the performance on labels, for each window:
a classifier's estimated accuracy, F1 and AUC (CBPE), a regressor's estimated MAE and RMSE (direct loss
estimation from the loss model its export fitted). They are figures: only the estimate's verdict has an alarm."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdk.alarms import alarm_specs, evaluate
from devtools.local import load_handler_module
from modelserve import metric_catalogue as mc
from modelserve.bundle import ModelBundle
from modelserve.settings import Settings
from tests.support import event

# captures read back as the s3 sink files them, by event hour, at once
pytestmark = pytest.mark.capture_sink("s3")

BUCKET = "estimated-figures-captures"
NAMESPACE = "EstimatedFigures"


def metric(name: str, at: datetime, model: str, version: str, window: str = "24h") -> list[float]:
    dims = [
        {"Name": mc.DIM_MODEL_NAME, "Value": model},
        {"Name": mc.DIM_MODEL_VERSION, "Value": version},
        {"Name": mc.DIM_WINDOW, "Value": window},
    ]
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


def score_and_label(inference: Any, ctx: Any, reference: list[dict[str, Any]], requests: int, rng: random.Random) -> None:
    """Reference rows scored through /predict, each row's true target sent back through /feedback."""
    for i in range(requests):
        batch = [rng.choice(reference) for _ in range(10)]
        rid = f"req-{i}"
        resp = inference.handler(event("rest_v1", "POST", "/predict", {"instances": [r["inputs"] for r in batch]}, request_id=rid), ctx)
        assert resp["statusCode"] == 200, resp["body"]
        items = [{"request_id": rid, "row": j, "label": r["target"]} for j, r in enumerate(batch)]
        assert inference.handler(event("rest_v1", "POST", "/feedback", items, request_id=f"fb-{i}"), ctx)["statusCode"] == 202


def run_check(drift: Any, ctx: Any) -> tuple[datetime, dict[str, Any]]:
    at = datetime.now(UTC) + timedelta(seconds=1)
    summary = drift.handler({"time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}, ctx)
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=summary["report_json"].split("/", 3)[3])["Body"].read()
    return at, json.loads(body)["report"]


@pytest.fixture
def run(aws_credentials, monkeypatch, load_inference, lambda_context):
    """(bundle) -> (time of the check, its report, published(name, window)) after 30 labelled requests."""

    def _run(bundle: ModelBundle) -> tuple[dict[str, Any], Any]:
        inference = load_inference(bundle, capture_bucket=BUCKET, metrics_namespace=NAMESPACE)
        score_and_label(inference, lambda_context, bundle.reference_rows(), 30, random.Random(7))
        at, report = run_check(load_handler_module("drift_check"), lambda_context)
        m = bundle.manifest
        return report, lambda name, window="24h": metric(name, at, m.model_name, m.version, window)

    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        yield _run


def test_a_classifier_publishes_its_estimated_accuracy_f1_and_auc_next_to_the_real_ones_in_each_window(run, sample_bundle) -> None:
    report, published = run(sample_bundle)
    est = report["estimated_performance"]
    assert est["n_rows"] == 300
    for name, key in (
        (mc.ESTIMATED_ACCURACY, "estimated_accuracy"),
        (mc.ESTIMATED_F1, "estimated_f1"),
        (mc.ESTIMATED_AUC, "estimated_auc"),
    ):
        (value,) = published(name)
        assert value == pytest.approx(est[key]), name
        assert len(published(name, "1h")) == 1, name  # the short window publishes its own
    # the real figures on the same labelled rows, the graph's other lines: the estimate reads them
    (accuracy,) = published(mc.ACCURACY)
    assert published(mc.ESTIMATED_ACCURACY)[0] == pytest.approx(accuracy, abs=0.05)
    (degraded,) = published(mc.ESTIMATED_PERFORMANCE_DEGRADED)
    spec = next(
        s for s in alarm_specs(Settings(metrics_namespace=NAMESPACE), "penguins", "v") if s.metric_name == mc.ESTIMATED_PERFORMANCE_DEGRADED
    )
    assert evaluate(spec, degraded) == "OK"


@pytest.fixture(scope="module")
def regressor_bundle(tmp_path_factory: pytest.TempPathFactory) -> ModelBundle:
    """Body mass from three measurements (island in the schema, which the loss model encodes), exported for real."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from devtools.export import export_sklearn, prepare_frame
    from devtools.sample_model import NUMERIC, load_training_frame
    from modelserve.schema import infer_feature_specs

    df = load_training_frame().dropna(subset=NUMERIC).reset_index(drop=True)
    features, target = [*NUMERIC[:3], "island"], NUMERIC[3]
    specs = infer_feature_specs({c: df[c] for c in features})
    pipe = make_pipeline(ColumnTransformer([("num", StandardScaler(), NUMERIC[:3])]), Ridge())
    pipe.fit(prepare_frame(df, specs), df[target])
    out: Path = tmp_path_factory.mktemp("regressor") / "bundle"
    return ModelBundle.load(export_sklearn(pipe, df, target, "mass", out, feature_names=features).root)


def test_a_regressor_publishes_its_estimated_mae_and_rmse_next_to_the_real_ones(run, regressor_bundle) -> None:
    report, published = run(regressor_bundle)
    estimates = {e["metric"]: e["estimate"] for e in report["estimated_performance"]["estimates"]}
    assert report["estimated_performance"]["method"] == "direct_loss_estimation"
    (mae_estimate,) = published(mc.ESTIMATED_MAE)
    (rmse_estimate,) = published(mc.ESTIMATED_RMSE)
    assert (mae_estimate, rmse_estimate) == pytest.approx((estimates["mae"], estimates["rmse"]))
    assert len(published(mc.ESTIMATED_MAE, "1h")) == 1
    # the errors on the labels of the same rows: the loss model of the held-out rows reads them
    (mae,) = published(mc.MAE)
    (rmse,) = published(mc.RMSE)
    assert mae_estimate == pytest.approx(mae, rel=0.25) and rmse_estimate == pytest.approx(rmse, rel=0.25)
    assert published(mc.ESTIMATED_PERFORMANCE_DEGRADED) == [0.0]
