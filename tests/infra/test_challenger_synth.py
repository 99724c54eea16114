"""The stack with a challenger (docs/versions.md): the asset carries both bundles, the functions are told
where and which, cdk-nag stays clean (synth raises otherwise), and an incompatible challenger stops synth."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from cdk.bundling import CHALLENGER_DIR_IN_ASSET, AssetSpec, assemble, source_hash
from modelserve.schema import MANIFEST_FILE, MODEL_FILE, FeatureKind, FeatureSpec
from modelserve.settings import ENV_CHALLENGER_BUNDLE_PATH, ENV_CHALLENGER_VERSION, SettingsError
from tests.infra.conftest import synth_variant
from tests.infra.fake_bundle import fake_manifest, write_fake_bundle

CHALLENGER_VERSION = "v20260201-def456"


def write_challenger(folder: Path, **changes: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = dataclasses.replace(fake_manifest(), **{"version": CHALLENGER_VERSION, **changes})
    (folder / MANIFEST_FILE).write_text(manifest.to_json())
    (folder / MODEL_FILE).write_bytes(b"\x08\x09another-fake-onnx")
    return folder


def function_env(template: dict[str, Any], description_start: str) -> dict[str, str]:
    (fn,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and str(r["Properties"].get("Description", "")).startswith(description_start)
    ]
    return fn["Properties"]["Environment"]["Variables"]


def test_shadow_stack_tells_each_function_about_the_challenger(fake_bundle_dir, tmp_path) -> None:
    challenger = write_challenger(tmp_path / "challenger")
    s = synth_variant("shadow", fake_bundle_dir, tmp_path / "out", {"challenger_mode": "shadow", "challenger_bundle_path": str(challenger)})
    inference = function_env(s.template, "modelserve inference")
    drift = function_env(s.template, "modelserve drift check")
    assert inference[ENV_CHALLENGER_BUNDLE_PATH] == CHALLENGER_DIR_IN_ASSET and inference["MS_CHALLENGER_MODE"] == "shadow"
    assert drift[ENV_CHALLENGER_VERSION] == CHALLENGER_VERSION and drift["MS_CHALLENGER_MODE"] == "shadow"
    assert drift[ENV_CHALLENGER_BUNDLE_PATH] == CHALLENGER_DIR_IN_ASSET  # its own drift report reads the bundle there
    assert s.template["Outputs"]["ChallengerVersion"]["Value"] == CHALLENGER_VERSION
    # its alarms read the challenger's series, and are not part of the champion's ModelHealth
    health = json.dumps(
        next(
            r
            for k, r in s.template["Resources"].items()
            if r["Type"] == "AWS::CloudWatch::CompositeAlarm" and k.startswith("MonitoringModelHealth")
        )
    )
    for alarm_id, metric_name in (("ChallengerWorse", "ChallengerWorse"), ("ChallengerDrift", "ChallengerDrift")):
        construct = s.stack.alerting.alarms[alarm_id]
        (alarm,) = [r["Properties"] for k, r in s.template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm" and alarm_id in k]
        dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])} or {
            d["Name"]: d["Value"] for q in alarm["Metrics"] if "MetricStat" in q for d in q["MetricStat"]["Metric"]["Dimensions"]
        }
        assert dims["ModelVersion"] == CHALLENGER_VERSION and dims["ModelName"] == "penguins"
        assert alarm["MetricName"] == metric_name
        assert construct not in s.stack.alerting.rollback_alarms
        assert alarm_id not in health
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(s.template_path, config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")] == []


def test_without_a_challenger_nothing_of_it_is_synthesized(default) -> None:
    for start in ("modelserve inference", "modelserve drift check"):
        env = function_env(default.template, start)
        assert ENV_CHALLENGER_BUNDLE_PATH not in env and ENV_CHALLENGER_VERSION not in env
    assert "ChallengerVersion" not in default.template["Outputs"]
    assert "ChallengerWorse" not in default.stack.alerting.alarms and "ChallengerDrift" not in default.stack.alerting.alarms


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": "v20260101-abc123"}, "is the champion's"),
        ({"model_name": "gentoo-only"}, "model name 'gentoo-only'"),
        ({"features": fake_manifest().features[:-1]}, "features ['is_adult'] of the champion are missing"),
        ({"features": (*fake_manifest().features[:-1], FeatureSpec("is_adult", FeatureKind.NUMERIC))}, "feature 'is_adult' is numeric"),
    ],
)
def test_an_incompatible_challenger_stops_synth_naming_the_problem(fake_bundle_dir, tmp_path, changes, message) -> None:
    challenger = write_challenger(tmp_path / "challenger", **changes)
    with pytest.raises(SettingsError, match="challenger_bundle_path") as err:
        synth_variant(
            "bad", fake_bundle_dir, tmp_path / "out", {"challenger_mode": "ab", "ab_share": 0.1, "challenger_bundle_path": str(challenger)}
        )
    assert message in str(err.value)


def test_the_asset_carries_the_challenger_and_its_hash_changes_with_it(tmp_path, monkeypatch) -> None:
    from cdk import bundling

    root = Path(__file__).resolve().parents[2]
    champion = write_fake_bundle(tmp_path / "champion")
    challenger = write_challenger(tmp_path / "challenger")
    spec = AssetSpec("inference", root / "lambda" / "inference", (root / "modelserve",), champion, "3.12", "arm64")
    with_challenger = dataclasses.replace(spec, challenger_dir=challenger)
    assert source_hash(spec) != source_hash(with_challenger)
    deps = tmp_path / "deps"
    deps.mkdir()
    monkeypatch.setattr(bundling, "install_dependencies", lambda *a, **k: (deps, True, {}))
    assemble(with_challenger, tmp_path / "asset", log=lambda _: None)
    assert (tmp_path / "asset" / CHALLENGER_DIR_IN_ASSET / MODEL_FILE).read_bytes() == (challenger / MODEL_FILE).read_bytes()
    assert (tmp_path / "asset" / "bundle" / MODEL_FILE).read_bytes() == (champion / MODEL_FILE).read_bytes()


def test_a_bundle_too_big_for_lambda_stops_synth_naming_both_sizes(fake_bundle_dir, tmp_path) -> None:
    import shutil

    big = tmp_path / "big"
    shutil.copytree(fake_bundle_dir, big)
    with open(big / "model.onnx", "ab") as f:  # a sparse tail: 160 MiB on paper, nothing on disk
        f.truncate(160 * 2**20)
    with pytest.raises(SettingsError, match="model_bundle_path") as err:
        synth_variant("big", big, tmp_path / "out", {})
    assert "the model bundle (160.0 MiB) and the inference runtime (100 MiB) make 260.0 MiB" in str(err.value)
    assert "250 MB" in str(err.value)
