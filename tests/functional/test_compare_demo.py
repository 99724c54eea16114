"""``python -m devtools compare`` and ``promote``: the local comparison end to end, and the cdk.json swap."""

from __future__ import annotations

import json

import pytest

from devtools.cli import main
from devtools.compare import compare


def test_shadow_comparison_demo_writes_both_reports(sample_bundle, challenger_bundle, tmp_path) -> None:
    lines: list[str] = []
    summary = compare(
        "shadow",
        requests=30,
        rows=4,
        out=tmp_path,
        bundle=str(sample_bundle.root),
        challenger=str(challenger_bundle.root),
        echo=lines.append,
    )
    assert summary["paired_rows"] == 120
    doc = json.loads((tmp_path / "comparison.json").read_text())["comparison"]
    assert doc["versions"] == {"champion": sample_bundle.manifest.version, "challenger": challenger_bundle.manifest.version}
    assert 0 < doc["agreement"]["rate"] <= 1
    assert doc["performance"]["champion"]["n_labels"] == doc["performance"]["challenger"]["n_labels"] > 0
    assert "Agreement" in (tmp_path / "comparison.html").read_text()
    assert any(line.startswith("agreement ") for line in lines)


def test_ab_comparison_demo_splits_the_traffic(sample_bundle, challenger_bundle, tmp_path) -> None:
    summary = compare(
        "ab",
        requests=60,
        rows=1,
        ab_share=0.5,
        out=tmp_path,
        bundle=str(sample_bundle.root),
        challenger=str(challenger_bundle.root),
        echo=lambda _: None,
    )
    assert summary["rows"]["champion"] > 0 and summary["rows"]["challenger"] > 0
    assert summary["rows"]["champion"] + summary["rows"]["challenger"] == 60


def test_promote_swaps_the_bundles_in_cdk_json(tmp_path, capsys) -> None:
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(
        json.dumps(
            {
                "app": "python3 app.py",
                "context": {
                    "model_bundle_path": "models/sample",
                    "challenger_bundle_path": "models/challenger",
                    "challenger_mode": "ab",
                    "ab_share": 0.2,
                    "@aws-cdk/core:flag": True,
                },
            }
        )
    )
    assert main(["promote", "--cdk-json", str(cdk_json), "--keep-shadow"]) == 0
    ctx = json.loads(cdk_json.read_text())["context"]
    assert ctx == {
        "model_bundle_path": "models/challenger",
        "challenger_bundle_path": "models/sample",
        "challenger_mode": "shadow",
        "@aws-cdk/core:flag": True,
    }
    assert main(["promote", "--cdk-json", str(cdk_json)]) == 0
    ctx = json.loads(cdk_json.read_text())["context"]
    assert ctx["model_bundle_path"] == "models/sample" and ctx["challenger_mode"] == "off" and "challenger_bundle_path" not in ctx
    # nothing left to promote: an error, cdk.json untouched
    before = cdk_json.read_text()
    assert main(["promote", "--cdk-json", str(cdk_json)]) == 2
    assert cdk_json.read_text() == before
    assert "no challenger to promote" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["shadow"])
def test_the_settings_promote_writes_are_valid(tmp_path, mode) -> None:
    from modelserve.settings import Settings

    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(json.dumps({"context": {"challenger_bundle_path": "models/challenger", "challenger_mode": mode}}))
    from devtools.compare import promote

    for keep in (True, False):
        ctx = promote(cdk_json, keep_shadow=keep)
        Settings.from_context(ctx)  # raises SettingsError on anything invalid
