from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from modelserve.bundle import ModelBundle, content_version, write_bundle
from modelserve.schema import MANIFEST_FILE, MAX_REFERENCE_ROWS, BundleManifest, FeatureKind, FeatureSpec, OutputSpec, Task


def _manifest() -> BundleManifest:
    return BundleManifest(
        model_name="m",
        version="pending",
        features=(FeatureSpec("x", FeatureKind.NUMERIC), FeatureSpec("c", FeatureKind.CATEGORICAL, True, ("a", "b"))),
        outputs=OutputSpec(Task.CLASSIFICATION, ("no", "yes")),
    )


def _rows(n: int) -> list[dict]:
    return [
        {"inputs": {"x": float(i), "c": "a" if i % 2 else None}, "prediction": "yes", "probabilities": {"no": 0.25, "yes": 0.75}}
        for i in range(n)
    ]


def test_bundle_round_trip_with_reference_sample(tmp_path) -> None:
    written = write_bundle(tmp_path / "b", b"onnx-bytes", _manifest(), _rows(5))
    loaded = ModelBundle.load(tmp_path / "b")
    assert loaded.manifest == written.manifest
    assert loaded.manifest.version == content_version(b"onnx-bytes", _manifest())
    sample = loaded.reference_sample()
    assert sample.rows == 5
    assert sample.table["x"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert sample.table["c"].tolist() == [None, "a", None, "a", None]
    assert sample.probabilities.shape == (5, 2) and sample.probabilities[0, 1] == 0.75


def test_version_follows_model_and_schema_not_metrics(tmp_path) -> None:
    m = _manifest()
    v = content_version(b"A", m)
    assert content_version(b"A", m) == v
    assert content_version(b"B", m) != v
    assert content_version(b"A", replace(m, features=m.features[:1])) != v
    assert content_version(b"A", replace(m, export_metrics={"accuracy": 1})) == v


def test_bundle_refuses_oversized_reference_and_missing_files(tmp_path) -> None:
    with pytest.raises(ValueError, match="at most"):
        write_bundle(tmp_path / "big", b"x", _manifest(), _rows(MAX_REFERENCE_ROWS + 1))
    with pytest.raises(FileNotFoundError, match="manifest"):
        ModelBundle.load(tmp_path / "nothing")
    write_bundle(tmp_path / "b", b"x", _manifest(), _rows(1))
    (tmp_path / "b" / "model.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="model.onnx"):
        ModelBundle.load(tmp_path / "b")


def test_sample_bundle_is_deterministic_and_complete(sample_bundle, tmp_path) -> None:
    import os
    import subprocess
    import sys

    # another process with another string-hash seed must build the very same bytes
    code = (
        f"from devtools.sample_model import build_sample_bundle; print(build_sample_bundle({str(tmp_path / 'again')!r}).manifest.version)"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.strip().splitlines()[-1] == sample_bundle.manifest.version
    manifest = json.loads((sample_bundle.root / MANIFEST_FILE).read_text())
    kinds = {f["kind"] for f in manifest["features"]}
    assert kinds == {"numeric", "categorical"}
    assert any(f["nullable"] for f in manifest["features"])
    assert manifest["export_metrics"]["parity_max_abs_diff"] <= 1e-4
    assert 0 < len(sample_bundle.reference_rows()) <= MAX_REFERENCE_ROWS
