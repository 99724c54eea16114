"""A wrong setting stops synth with a message naming the key, the value and what is allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from modelserve.settings import SettingsError
from tests.infra.conftest import ROOT


def _build(ctx_overrides: dict, bundle_dir: Path) -> None:
    from cdk.application import build_app, cdk_json_context

    ctx = cdk_json_context()
    ctx.update({"model_bundle_path": str(bundle_dir), **ctx_overrides})
    with mock.patch.dict(os.environ, {"MS_SKIP_BUNDLING": "1"}):
        build_app(ctx, outdir=None)


@pytest.mark.parametrize(
    "overrides, must_name",
    [
        ({"lambda_architecture": "sparc"}, ["lambda_architecture", "sparc", "arm64", "x86_64"]),
        ({"inference_memory_mb": "64"}, ["inference_memory_mb", "64", "128"]),
        ({"canary_config": "Canary50Percent"}, ["canary_config", "Canary50Percent", "Canary10Percent5Minutes"]),
        ({"drift_schedule": "every hour"}, ["drift_schedule", "every hour", "rate("]),
        ({"capture_sink": "kafka"}, ["capture_sink", "kafka", "firehose"]),
        ({"inference_memroy_mb": 512}, ["inference_memroy_mb", "inference_memory_mb"]),  # typo: unknown key
        ({"capture_transition_days": 10}, ["capture_transition_days", "10", "30"]),  # S3's IA minimum
    ],
)
def test_bad_setting_stops_synth_with_a_clear_message(overrides, must_name, fake_bundle_dir) -> None:
    with pytest.raises(SettingsError) as err:
        _build(overrides, fake_bundle_dir)
    msg = str(err.value)
    for needle in must_name:
        assert needle in msg, (needle, msg)


def test_missing_bundle_names_the_setting_and_the_fix(tmp_path) -> None:
    with pytest.raises(SettingsError) as err:
        _build({}, tmp_path / "nowhere")
    assert "model_bundle_path" in str(err.value) and "build-sample" in str(err.value)


def test_app_py_exits_with_the_message_not_a_traceback(fake_bundle_dir) -> None:
    """The path the CDK CLI takes: context arrives in CDK_CONTEXT_JSON, app.py prints and exits 1."""
    ctx = {"model_bundle_path": str(fake_bundle_dir), "api_auth": "password"}
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(ctx), "MS_SKIP_BUNDLING": "1", "MS_NO_VENV_REEXEC": "1",
           "CDK_OUTDIR": str(fake_bundle_dir.parent / "out-bad")}
    proc = subprocess.run([sys.executable, str(ROOT / "app.py")], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert "setting 'api_auth' = 'password'" in proc.stderr
    assert "Traceback" not in proc.stderr
