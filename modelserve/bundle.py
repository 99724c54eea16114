"""Reading and writing the model bundle folder (manifest.json, model.onnx, reference.jsonl.gz)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .records import RowExplanation, ScoredRow, decode_jsonl
from .schema import (
    MANIFEST_FILE,
    MAX_REFERENCE_ROWS,
    MODEL_FILE,
    REFERENCE_FILE,
    BundleManifest,
    FeatureKind,
    Table,
)
from .settings_env import ENV_BUNDLE_PATH

# modelserve/ sits at the root of each function's asset, next to handler.py
ASSET_ROOT = Path(__file__).resolve().parent.parent


def function_bundle_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The bundle folder a function loads, as the stack (or a local run) set it in ``MS_MODEL_BUNDLE_PATH``:
    relative to the asset root (Lambda's ``LAMBDA_TASK_ROOT``, not the working directory) unless absolute."""
    environ = os.environ if environ is None else environ
    folder = environ.get(ENV_BUNDLE_PATH)
    if not folder:
        raise KeyError(f"{ENV_BUNDLE_PATH} is not set: the stack sets it to the bundle folder inside the asset")
    root = environ.get("LAMBDA_TASK_ROOT") or str(ASSET_ROOT)
    return Path(root, folder)  # an absolute folder replaces the root


@dataclass(frozen=True)
class ReferenceSample:
    """Training rows with the model's outputs on them: the drift check's reference window."""

    table: Table
    labels: np.ndarray | None  # predicted labels (classifier) as object str
    probabilities: np.ndarray | None  # [N, K] in manifest class order
    values: np.ndarray | None  # regression predictions
    targets: list[Any] | None  # ground truth, when the exporter had it
    # each feature's Shapley contribution in the rows that hold an explanation (NaN where one lacks the
    # feature); None when no row holds one. The drift report's attribution (docs/monitoring.md)
    contributions: Table | None = None

    @property
    def rows(self) -> int:
        return len(next(iter(self.table.values())))


@dataclass(frozen=True)
class ModelBundle:
    root: Path
    manifest: BundleManifest

    @property
    def model_path(self) -> Path:
        return self.root / MODEL_FILE

    @classmethod
    def load(cls, root: str | Path) -> ModelBundle:
        root = Path(root)
        manifest_path = root / MANIFEST_FILE
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no {MANIFEST_FILE} in bundle folder {root}")
        manifest = BundleManifest.from_dict(json.loads(manifest_path.read_text()))
        if not (root / MODEL_FILE).is_file():
            raise FileNotFoundError(f"no {MODEL_FILE} in bundle folder {root}")
        return cls(root=root, manifest=manifest)

    def reference_rows(self) -> list[dict[str, Any]]:
        path = self.root / REFERENCE_FILE
        if not path.is_file():
            return []
        return list(decode_jsonl(path.read_bytes()))

    def reference_sample(self) -> ReferenceSample:
        return reference_sample_from_rows(self.manifest, self.reference_rows())


@dataclass(frozen=True)
class ReferenceRow:
    """A row of the bundle's reference sample: a training row's inputs and the model's answer on it."""

    inputs: Mapping[str, Any]
    prediction: Any = None
    probabilities: Mapping[str, float] | None = None
    # the row's explanation against the bundle's own background, written at export for some rows
    # (devtools/export/explanations.py), in the capture record's form
    explanation: RowExplanation | None = None


def reference_sample_from_rows(manifest: BundleManifest, rows: Sequence[Mapping[str, Any]]) -> ReferenceSample:
    """Columns of the bundle's reference rows ({"inputs", "prediction", "probabilities", "target"?, "explanation"?})."""
    sample = scored_sample(
        manifest,
        [
            ReferenceRow(
                r["inputs"],
                r.get("prediction"),
                r.get("probabilities"),
                None if r.get("explanation") is None else RowExplanation.from_dict(r["explanation"]),
            )
            for r in rows
        ],
    )
    targets = [r.get("target") for r in rows] if rows and all("target" in r for r in rows) else None
    return replace(sample, targets=targets)


def _object_column(values: list[Any]) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    column[:] = values  # element by element: a list value stays one element, never a new axis
    return column


def scored_sample(manifest: BundleManifest, rows: Sequence[ScoredRow]) -> ReferenceSample:
    """Columns of scored rows: the bundle's reference rows, or the drift check's window of capture records."""
    # the values as recorded, in object columns: monitoring normalises each column once (coerce_column), and a
    # wrong-typed recorded value reaches its wrong-type expectation instead of failing the check here
    table = {f.name: _object_column([r.inputs.get(f.name) for r in rows]) for f in manifest.features}
    classes = manifest.outputs.classes
    probabilities: np.ndarray | None = None
    if manifest.outputs.task.value == "classification":
        labels = np.array([None if r.prediction is None else str(r.prediction) for r in rows], dtype=object)
        given = [r.probabilities for r in rows if r.probabilities]
        if classes and len(given) == len(rows):
            probabilities = np.array([[float(p[c]) for c in classes] for p in given], dtype=np.float64)
        values = None
    else:
        labels = None
        values = np.array([np.nan if r.prediction is None else float(r.prediction) for r in rows])
    if probabilities is not None and len(rows) == 0:
        probabilities = np.zeros((0, len(classes)))
    return ReferenceSample(
        table=table, labels=labels, probabilities=probabilities, values=values, targets=None, contributions=contributions_of(manifest, rows)
    )


def contributions_of(manifest: BundleManifest, rows: Sequence[ScoredRow]) -> Table | None:
    """Each feature's contributions in the rows that hold an explanation (NaN where one lacks the feature:
    a redacted or hashed feature's is not captured); None when no row holds one."""
    explained = [r.explanation for r in rows if r.explanation is not None]
    if not explained:
        return None
    return {f.name: np.array([e.values.get(f.name, np.nan) for e in explained], dtype=np.float64) for f in manifest.features}


def content_version(model_bytes: bytes, manifest: BundleManifest) -> str:
    """Version = hash of the model graph and the schema it is served with (not of metrics or the sample)."""
    h = hashlib.sha256(model_bytes)
    schema = {"features": [f.to_dict() for f in manifest.features], "outputs": manifest.outputs.to_dict()}
    h.update(json.dumps(schema, sort_keys=True).encode())
    return h.hexdigest()[:12]


def write_bundle(
    root: str | Path,
    model_bytes: bytes,
    manifest: BundleManifest,
    reference_rows: Iterable[Mapping[str, Any]],
) -> ModelBundle:
    """Write a bundle; the manifest's version is (re)derived from the content."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = list(reference_rows)
    if len(rows) > MAX_REFERENCE_ROWS:
        raise ValueError(f"reference sample has {len(rows)} rows; at most {MAX_REFERENCE_ROWS}")
    for f in manifest.features:
        if f.kind is FeatureKind.CATEGORICAL and not f.categories:
            raise ValueError(f"categorical feature {f.name!r} has no categories")
    manifest = replace(manifest, version=content_version(model_bytes, manifest))
    (root / MODEL_FILE).write_bytes(model_bytes)
    body = "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n" for r in rows).encode()
    (root / REFERENCE_FILE).write_bytes(gzip.compress(body, mtime=0))
    (root / MANIFEST_FILE).write_text(manifest.to_json() + "\n")
    return ModelBundle(root=root, manifest=manifest)
