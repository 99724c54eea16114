"""Synth the stack once per settings variant (bundling skipped; a fake model bundle in a tmp dir)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "1")

try:
    import aws_cdk  # noqa: F401
except ImportError:  # the pure-Python alarm tests still run; the synth tests need requirements.txt
    collect_ignore = ["test_stack.py", "test_settings_synth.py", "test_bundling.py", "test_real_bundling.py"]

from tests.infra.fake_bundle import write_fake_bundle  # noqa: E402

# cdk.json ships no subscriber (synth stops until one is named): every test synth pages this address
TEST_SUBSCRIBER = {"alarm_subscriptions": "oncall@example.com"}

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},  # capture_sink=logs
    # the s3 sink: an object per request from the function, no Firehose stream, no subscription
    "s3": {"capture_sink": "s3"},
    # every optional path at once: Firehose sink, KMS bucket, IAM auth, e-mail, provisioned concurrency
    "firehose_kms_iam": {
        "capture_sink": "firehose",
        "bucket_encryption": "kms",
        "api_auth": "iam",
        "alarm_email": "oncall@example.com",
        "provisioned_concurrency": 2,
        "lambda_architecture": "x86_64",
        "canary_config": "Linear10PercentEvery1Minute",
        "hash_features": ["island"],  # no salt given: the stack generates one
        "redact_features": ["is_adult"],
    },
    "public": {"api_auth": "none", "capture_transition_days": 0},
    # drift checks two days apart: alarms over several one-day periods
    "two_days": {"drift_schedule": "rate(2 days)"},
    "daily_cron": {"drift_schedule": "cron(0 6 * * ? *)"},
    # the optional service coverage: request-count alarm, reserved inference concurrency
    "coverage": {"alarm_min_requests": 50, "alarm_min_requests_minutes": 30, "inference_reserved_concurrency": 10},
    # browsers on two origins call the API (API key), behind a WAF web ACL
    "cors_waf": {"cors_origins": ["https://app.example.com", "http://localhost:5173"], "waf": True, "waf_rate_limit": 500},
    # one browser origin with SigV4 (IAM) auth: the preflight alone is unauthorized
    "iam_cors": {"api_auth": "iam", "cors_origins": "https://console.example.org"},
    # captures as log lines: subscription filter -> Firehose (hour partitions) as JSON Lines; or as Parquet into a
    # KMS bucket, with the drift check's Athena workgroup
    # the logs sink without the drift check's Athena path (the default has it: drift_athena=auto)
    "logs": {"capture_sink": "logs", "drift_athena": "off"},
    "logs_parquet_kms": {"capture_sink": "logs", "capture_format": "parquet", "bucket_encryption": "kms", "drift_athena": "on"},
}


@dataclass
class Synth:
    name: str
    context: dict[str, Any]
    outdir: Path
    stack_name: str
    template: dict[str, Any]
    stack: Any
    settings: Any
    manifest: Any

    @property
    def template_path(self) -> Path:
        return self.outdir / f"{self.stack_name}.template.json"

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == cfn_type}

    def assertions(self) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_json(self.template)


@pytest.fixture(scope="session")
def fake_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_bundle(tmp_path_factory.mktemp("bundle") / "bundle")


def synth_variant(name: str, bundle_dir: Path, outdir: Path, overrides: dict[str, Any] | None = None) -> Synth:
    """Synth with cdk.json's context, the fake bundle and the variant's settings (or ``overrides``)."""
    from cdk.application import build_app, cdk_json_context

    ctx = cdk_json_context()
    ctx.update({"model_bundle_path": str(bundle_dir), **TEST_SUBSCRIBER, **(VARIANTS[name] if overrides is None else overrides)})
    with mock.patch.dict(os.environ, {"MS_SKIP_BUNDLING": "1"}):
        app, stack = build_app(ctx, outdir=str(outdir))
        app.synth()  # runs cdk-nag: an unacknowledged finding raises here
    template = json.loads((outdir / f"{stack.stack_name}.template.json").read_text())
    return Synth(name, ctx, outdir, stack.stack_name, template, stack, stack.capture.settings, stack.capture.manifest)


_cache: dict[str, Synth] = {}


@pytest.fixture(scope="session")
def synth_of(fake_bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    def get(name: str) -> Synth:
        if name not in _cache:
            _cache[name] = synth_variant(name, fake_bundle_dir, tmp_path_factory.mktemp(f"cdkout-{name}"))
        return _cache[name]

    return get


@pytest.fixture(scope="session")
def default(synth_of) -> Synth:
    return synth_of("default")


@pytest.fixture(scope="session")
def s3_sink(synth_of) -> Synth:
    return synth_of("s3")


@pytest.fixture(scope="session")
def full(synth_of) -> Synth:
    return synth_of("firehose_kms_iam")


@pytest.fixture(scope="session")
def public(synth_of) -> Synth:
    return synth_of("public")


# ------------------------------------------------------------------ reading the template


def alarm_metric_stats(alarm: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Query id ("m" for a plain alarm) -> {namespace, name, dims, stat, period} of each metric the alarm reads."""
    if "Metrics" not in alarm:
        return {
            "m": {
                "namespace": alarm["Namespace"],
                "name": alarm["MetricName"],
                "dims": {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])},
                "stat": alarm.get("Statistic", alarm.get("ExtendedStatistic")),
                "period": alarm["Period"],
            }
        }
    out = {}
    for q in alarm["Metrics"]:
        if "MetricStat" in q:
            st = q["MetricStat"]
            out[q["Id"]] = {
                "namespace": st["Metric"]["Namespace"],
                "name": st["Metric"]["MetricName"],
                "dims": {d["Name"]: d["Value"] for d in st["Metric"].get("Dimensions", [])},
                "stat": st["Stat"],
                "period": st["Period"],
            }
    return out


def alarm_expression(alarm: dict[str, Any]) -> str | None:
    return next((q["Expression"] for q in alarm.get("Metrics", []) if "Expression" in q), None)


def dashboard_body(s: Synth) -> dict[str, Any]:
    """The dashboard's JSON body (deploy-time values such as the bucket name as "<token>")."""
    (dashboard,) = s.of_type("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "<token>" for p in parts))
