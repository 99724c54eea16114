"""A wrong setting stops synth with a message naming the key, the value and what is allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from modelserve.metric_catalogue import ENV_DEPLOYMENT
from modelserve.settings import (
    ENV_ATHENA_WORKGROUP,
    ENV_BUNDLE_PATH,
    ENV_CAPTURE_BUCKET,
    ENV_CAPTURES_TABLE,
    ENV_CHALLENGER_BUNDLE_PATH,
    ENV_CHALLENGER_VERSION,
    ENV_FIREHOSE_STREAM,
    ENV_HASH_SALT_SECRET,
    ENV_PREFIX,
    ENV_REQUEST_ID_KEY,
    ENV_SETTINGS_DIGEST,
    DriftSettings,
    ServingSettings,
    SettingsError,
)
from tests.infra.conftest import ROOT, TEST_SUBSCRIBER, Synth, synth_variant


def _build(ctx_overrides: dict, bundle_dir: Path) -> None:
    from cdk.application import build_app, cdk_json_context

    ctx = cdk_json_context()
    ctx.update({"model_bundle_path": str(bundle_dir), **TEST_SUBSCRIBER, **ctx_overrides})
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
        ({"inference_size_budget_mib": 300}, ["inference_size_budget_mib", "300", "250"]),  # past Lambda's own limit
        ({"inference_size_budget_mib": "big"}, ["inference_size_budget_mib", "'big'", "number"]),
        ({"performance_alpha": 1.5}, ["performance_alpha", "1.5", "less than 1"]),
        ({"estimated_band_sd": 0}, ["estimated_band_sd", "0", "greater than 0"]),
        ({"explain_capture_fraction": 0.2}, ["explain_capture_fraction", "capture_explanations=true"]),
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
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(ctx),
        "MS_SKIP_BUNDLING": "1",
        "MS_NO_VENV_REEXEC": "1",
        "CDK_OUTDIR": str(fake_bundle_dir.parent / "out-bad"),
    }
    proc = subprocess.run([sys.executable, str(ROOT / "app.py")], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert "setting 'api_auth' = 'password'" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------ what reaches each function

# a value other than the default for every setting a function reads: set in the context, it must
# arrive in that function's environment (a field added to a section must be added here)
FUNCTION_SETTINGS: dict[str, Any] = {
    # both functions
    "capture_sink": "firehose",
    "redact_features": ["is_adult"],
    "hash_features": ["island"],
    "metrics_namespace": "Team/Models",
    "challenger_mode": "ab",  # with a challenger bundle (the fixture adds its path)
    # inference
    "stage_name": "v2",
    "max_batch_rows": 17,
    "max_body_bytes": 4096,
    "unseen_category_policy": "model",
    "capture_sampling": 0.25,
    "capture_mode": "thread",
    "capture_budget_s": 2.5,
    "capture_hash_salt": "a-salt-of-at-least-16-characters",
    "cors_origins": ["https://app.example.com", "http://localhost:3000"],
    "ab_share": 0.2,
    "explain_background_rows": 37,
    "explain_max_evaluations": 123_456,
    "unsigned_feedback_ids": "accept",
    "capture_explanations": True,
    "explain_capture_fraction": 0.25,
    # drift check
    "window_hours": 6,
    "sample_cap": 500,
    "alpha": 0.01,
    "p_value_correction": "fdr",
    "drift_share_threshold": 0.5,
    "numeric_effect_threshold": 0.2,
    "categorical_effect_threshold": 0.3,
    "outlier_rate_threshold": 0.1,
    "missing_rate_threshold": 0.2,
    "out_of_range_threshold": 0.05,
    "unseen_category_threshold": 0.07,
    "performance_min_labels": 50,
    "estimated_accuracy_drop_threshold": 0.08,
    "performance_alpha": 0.002,
    "performance_min_baseline_rows": 400,
    "estimated_band_sd": 2.5,
    "estimated_min_rows": 150,
    "estimated_loss_min_increase": 0.12,
    "audit_sample_rows": 30,
    "min_new_value_rows": 7,
    "reject_rate_threshold": 0.12,
    "reject_min_requests": 40,
    "short_window_hours": 2,
    "drift_athena": "on",
}
# what the stack passes besides settings: resources it created or placed
# what the stack names for a function (resources, the stack name), not settings
RESOURCE_VARIABLES = {
    ENV_BUNDLE_PATH,
    ENV_CAPTURE_BUCKET,
    ENV_FIREHOSE_STREAM,
    ENV_HASH_SALT_SECRET,
    ENV_REQUEST_ID_KEY,
    ENV_DEPLOYMENT,
    ENV_CHALLENGER_BUNDLE_PATH,
    ENV_CHALLENGER_VERSION,
    ENV_ATHENA_WORKGROUP,
    ENV_CAPTURES_TABLE,
    ENV_SETTINGS_DIGEST,  # the digest of the inference function's settings variables (modelserve/settings_env.py)
}
SECTION_OF_FUNCTION = {"inference": ServingSettings, "drift-check": DriftSettings}


@pytest.fixture(scope="module")
def every_function_setting(fake_bundle_dir, tmp_path_factory) -> Synth:
    from tests.infra.test_challenger_synth import write_challenger

    challenger = write_challenger(tmp_path_factory.mktemp("challenger") / "bundle")
    settings = {**FUNCTION_SETTINGS, "challenger_bundle_path": str(challenger)}
    return synth_variant("every_function_setting", fake_bundle_dir, tmp_path_factory.mktemp("cdkout-fn"), settings)


def function_environments(synth: Synth) -> dict[str, dict[str, Any]]:
    """Each function's environment from the template, by its Powertools service name."""
    envs = {}
    for res in synth.of_type("AWS::Lambda::Function").values():
        env = res["Properties"].get("Environment", {}).get("Variables", {})
        if env.get("POWERTOOLS_SERVICE_NAME") in SECTION_OF_FUNCTION:
            envs[env["POWERTOOLS_SERVICE_NAME"]] = env
    assert set(envs) == set(SECTION_OF_FUNCTION), envs.keys()
    return envs


def test_the_test_sets_every_function_setting_to_a_non_default_value() -> None:
    fields = {name: f for section in SECTION_OF_FUNCTION.values() for name, f in section.model_fields.items()}
    assert set(FUNCTION_SETTINGS) == set(fields)
    for name, value in FUNCTION_SETTINGS.items():
        assert value != fields[name].default and not (isinstance(value, list) and not value), name


@pytest.mark.parametrize("function", sorted(SECTION_OF_FUNCTION))
def test_each_function_reads_back_every_setting_of_its_section(every_function_setting: Synth, function: str) -> None:
    section = SECTION_OF_FUNCTION[function]
    env = function_environments(every_function_setting)[function]
    arrived = section.from_env(env)
    assert arrived == section(**{k: v for k, v in FUNCTION_SETTINGS.items() if k in section.model_fields})
    for name in section.model_fields:  # the same, field by field (a failure names the setting)
        value = FUNCTION_SETTINGS[name]
        assert getattr(arrived, name) == (tuple(value) if isinstance(value, list) else value), name


def test_the_inference_function_reads_every_non_default_setting_through_its_digest_as_pydantic_does(
    every_function_setting: Synth,
) -> None:
    from serving.function_settings import function_settings
    from serving.settings_view import ServingSettingsView

    env = function_environments(every_function_setting)["inference"]
    assert isinstance(env[ENV_SETTINGS_DIGEST], str)  # no setting of this variant is resolved at deploy
    env = {k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in env.items()}
    view = function_settings(env)
    assert type(view) is ServingSettingsView  # read without pydantic
    validated = ServingSettings.from_env(env)
    for name in ServingSettings.model_fields:
        assert getattr(view, name) == getattr(validated, name), name
        assert type(getattr(view, name)) is type(getattr(validated, name)), name


@pytest.mark.parametrize("function", sorted(SECTION_OF_FUNCTION))
def test_no_function_gets_a_setting_it_does_not_read(every_function_setting: Synth, function: str) -> None:
    env = function_environments(every_function_setting)[function]
    ours = {k for k in env if k.startswith(ENV_PREFIX)} - RESOURCE_VARIABLES
    # every setting of its section is set in this variant, and nothing else: no deploy-only setting
    assert ours == {ENV_PREFIX + name.upper() for name in SECTION_OF_FUNCTION[function].model_fields}


def test_the_size_budget_setting_stops_synth_of_a_bundle_that_fits_lambda_but_not_the_budget(fake_bundle_dir, tmp_path) -> None:
    import shutil

    from cdk.application import check_size_budget
    from modelserve.settings import Settings

    bundle = tmp_path / "bundle"
    shutil.copytree(fake_bundle_dir, bundle)
    with open(bundle / "model.onnx", "ab") as f:  # a sparse tail: 60 MiB on paper, nothing on disk
        f.truncate(60 * 2**20)
    with pytest.raises(SettingsError) as err:
        _build({"inference_size_budget_mib": 150}, bundle)
    message = str(err.value)
    assert message.startswith(f"setting model_bundle_path = {str(bundle)!r}: the model bundle (60.0 MiB)")
    assert "and the inference runtime (100 MiB) make 160.0 MiB, over the budget of 150.0 MiB" in message
    assert "the setting inference_size_budget_mib; Lambda's own limit is 250 MB" in message
    # the same bundle within the default budget (Lambda's limit): not refused
    check_size_budget(Settings.from_context({"model_bundle_path": str(bundle)}), bundle, None)
