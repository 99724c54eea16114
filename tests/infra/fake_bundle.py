"""A tiny model bundle folder for synth tests: a real manifest, dummy model bytes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from modelserve.schema import (
    MANIFEST_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    BundleManifest,
    FeatureKind,
    FeatureSpec,
    OutputSpec,
    Task,
)

FAKE_MODEL_NAME = "penguins"
FAKE_VERSION = "v20260101-abc123"
# the first reference row: the pre-traffic hook's smoke request
FAKE_REFERENCE_INPUTS = {"bill_length_mm": 39.1, "flipper_length_mm": 181.0, "island": "Torgersen", "is_adult": True}


def fake_manifest() -> BundleManifest:
    return BundleManifest(
        model_name=FAKE_MODEL_NAME,
        version=FAKE_VERSION,
        features=(
            FeatureSpec("bill_length_mm", FeatureKind.NUMERIC, nullable=True, min=30.0, max=60.0),
            FeatureSpec("flipper_length_mm", FeatureKind.NUMERIC, min=170.0, max=235.0),
            FeatureSpec("island", FeatureKind.CATEGORICAL, categories=("Biscoe", "Dream", "Torgersen")),
            FeatureSpec("is_adult", FeatureKind.BOOLEAN),
        ),
        outputs=OutputSpec(task=Task.CLASSIFICATION, classes=("Adelie", "Chinstrap", "Gentoo")),
    )


def write_fake_bundle(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).write_text(fake_manifest().to_json())
    (folder / MODEL_FILE).write_bytes(b"\x08\x09fake-onnx-bytes")
    rows = [{"inputs": FAKE_REFERENCE_INPUTS, "prediction": "Adelie"}, {"inputs": {**FAKE_REFERENCE_INPUTS, "island": "Dream"}}]
    (folder / REFERENCE_FILE).write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode(), mtime=0))
    return folder
