"""snap_start synthesizes: SnapStart on the inference function's published versions, with the live
alias, the canary deployment group and the capture mode the settings require; off by default."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import synth_variant


def _inference(template: dict[str, Any]) -> dict[str, Any]:
    (fn,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and str(r["Properties"].get("Description", "")).startswith("modelserve inference")
    ]
    return fn


@pytest.mark.slow  # a synth of its own (cdk-nag included)
def test_snap_start_is_on_published_versions_behind_the_alias_and_canary(fake_bundle_dir, tmp_path, default) -> None:
    s = synth_variant("snap_start", fake_bundle_dir, tmp_path / "out", {"snap_start": True, "capture_mode": "sync"})
    fn = _inference(s.template)
    assert fn["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert fn["Runtime"] == "python3.12"
    assert fn["Environment"]["Variables"]["MS_CAPTURE_MODE"] == "sync"
    (alias,) = s.of_type("AWS::Lambda::Alias").values()
    version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert s.resources[version_id]["Type"] == "AWS::Lambda::Version"  # the alias points at a published version
    assert "ProvisionedConcurrencyConfig" not in alias["Properties"]
    assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]  # the canary shifts the alias between versions
    assert "SnapStart" not in _inference(default.template)  # off unless asked
