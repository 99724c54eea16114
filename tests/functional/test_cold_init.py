"""Init imports what the first answer needs and nothing else; the AWS clients are built on first use.

A fresh interpreter (what a new Lambda environment is) imports the real handler with capture on and
answers /predict and /health: boto3 (and botocore beyond its top module), pydantic.v1 and FastAPI are still
not loaded after the answer, with the S3 sink and the logs sink; of the settings only the function's own section
has had its validator built.
With the digest the stack sets (``MS_SETTINGS_DIGEST``, the deployed path), no pydantic module is loaded at all.
The capture clients then build themselves when first used, and again after a reset (a SnapStart restore).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from modelserve.settings import ENV_SETTINGS_DIGEST, ServingSettings
from modelserve.settings_env import env_name, settings_digest
from serving.aws_clients import ClientFactory

REPO = Path(__file__).resolve().parents[2]
# Powertools imports botocore's top module only
# and the OpenAPI document's builders: loaded when /openapi.json or /docs is first asked for
NOT_NEEDED_FOR_AN_ANSWER = ("boto3", "botocore.session", "botocore.client", "pydantic.v1", "fastapi", "serving.openapi")

CHILD = """
import json, sys
sys.path.insert(0, {repo!r})
from devtools.local import LambdaContext, load_handler_module, rest_v1_event
module = load_handler_module("inference")
at_init = sorted(m for m in {modules!r} if m in sys.modules)
from modelserve import settings
built = sorted(c.__name__ for c in (settings.DeploySettings, settings.ServingSettings, settings.DriftSettings, settings.Settings)
               if c.__pydantic_complete__)
body = json.dumps({{"instances": [{row!r}]}}).encode()
predict = module.handler(rest_v1_event("POST", "/predict", body, {{"content-type": "application/json"}}), LambdaContext.fresh())
health = module.handler(rest_v1_event("GET", "/health", None, {{}}), LambdaContext.fresh())
after = sorted(m for m in {modules!r} if m in sys.modules)
print(json.dumps({{"init": at_init, "answered": [predict["statusCode"], health["statusCode"]], "after": after, "built": built}}))
"""


@pytest.mark.parametrize("sink", ["s3", "logs"])
def test_a_fresh_handler_answers_without_loading_boto3_or_pydantic_v1(sample_bundle: Any, sink: str) -> None:
    row = sample_bundle.reference_rows()[0]["inputs"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MS_"))}
    env.update(
        {
            "MS_MODEL_BUNDLE_PATH": str(sample_bundle.root),
            "MS_CAPTURE_BUCKET": "captures-not-reached",
            "MS_CAPTURE_SAMPLING": "0",  # capture on (a bucket), this answer not sampled: no write before it
            "MS_CAPTURE_SINK": sink,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    )
    code = CHILD.format(repo=str(REPO), modules=NOT_NEEDED_FOR_AN_ANSWER, row=row)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["answered"] == [200, 200]
    assert result["init"] == [] and result["after"] == []
    assert result["built"] == ["ServingSettings"]  # the stack's and the drift check's sections: never built here


def test_clients_are_built_on_first_use_and_rebuilt_after_a_reset(aws_credentials: None) -> None:
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="captures")
        factory = ClientFactory()
        s3 = factory.client("s3", budget_s=6.0)
        assert not s3.built  # nothing built by asking for it
        s3.put_object(Bucket="captures", Key="k", Body=b"one")
        first = s3.get()
        assert s3.built and first.meta.config.retries["total_max_attempts"] == 1  # the capture clients' config
        factory.reset()
        assert not s3.built
        s3.put_object(Bucket="captures", Key="k2", Body=b"two")
        assert s3.get() is not first
        keys = [o["Key"] for o in boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="captures")["Contents"]]
        assert keys == ["k", "k2"]


def test_with_the_stacks_settings_digest_init_and_an_answer_load_no_pydantic_module(sample_bundle: Any) -> None:
    row = sample_bundle.reference_rows()[0]["inputs"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MS_", "PYDANTIC_"))}
    env.update(
        {
            **ServingSettings(capture_sink="s3", capture_sampling=0.0, max_batch_rows=500).to_env(),  # as the stack writes them
            "MS_MODEL_BUNDLE_PATH": str(sample_bundle.root),
            "MS_CAPTURE_BUCKET": "captures-not-reached",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
    )
    # the digest as cdk/serving.py computes it (no value here is resolved at deploy)
    env[ENV_SETTINGS_DIGEST] = settings_digest(env, [env_name(f) for f in ServingSettings.model_fields], lambda value: False)
    code = CHILD_WITHOUT_PYDANTIC.format(repo=str(REPO), row=row)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["answered"] == [200, 200]
    assert result["settings"] == ["ServingSettingsView", 500]
    assert result["pydantic"] == []


CHILD_WITHOUT_PYDANTIC = """
import json, sys
sys.path.insert(0, {repo!r})
from devtools.local import LambdaContext, load_handler_module, rest_v1_event
module = load_handler_module("inference")
body = json.dumps({{"instances": [{row!r}]}}).encode()
predict = module.handler(rest_v1_event("POST", "/predict", body, {{"content-type": "application/json"}}), LambdaContext.fresh())
health = module.handler(rest_v1_event("GET", "/health", None, {{}}), LambdaContext.fresh())
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core", "pydantic_settings"))
settings = [type(module.serving).__name__, module.serving.max_batch_rows]
print(json.dumps({{"answered": [predict["statusCode"], health["statusCode"]], "settings": settings, "pydantic": loaded}}))
"""
