"""Running the bundle's ONNX graph on validated columns. Loaded once per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from modelserve.schema import CATEGORICAL_NULL_TOKEN, BundleManifest, FeatureKind, InputLayout, Table, Task


@dataclass(frozen=True)
class Prediction:
    labels: np.ndarray  # classifier: object array of class names; regression: float64 values
    probabilities: np.ndarray | None  # [N, K] float64, manifest class order (classifiers)


def make_session(model_path: str | Path, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    # explicit thread counts: onnxruntime's default probes CPU affinity, which fails on Lambda
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


class ModelRunner:
    def __init__(self, manifest: BundleManifest, session: ort.InferenceSession) -> None:
        self.manifest = manifest
        self.session = session
        out_names = [o.name for o in session.get_outputs()]
        outputs = manifest.outputs
        if outputs.label_output not in out_names:
            raise ValueError(f"model has no output {outputs.label_output!r}; outputs: {out_names}")
        self._output_names = [outputs.label_output]
        if outputs.task is Task.CLASSIFICATION and outputs.probability_output:
            if outputs.probability_output not in out_names:
                raise ValueError(f"model has no output {outputs.probability_output!r}; outputs: {out_names}")
            self._output_names.append(outputs.probability_output)
        in_names = {i.name for i in session.get_inputs()}
        if manifest.input_layout is InputLayout.PER_COLUMN:
            missing = [f.name for f in manifest.features if f.name not in in_names]
            if missing:
                raise ValueError(f"model has no inputs for features {missing}; inputs: {sorted(in_names)}")
        else:
            name = manifest.single_input_name or next(iter(in_names))
            if name not in in_names:
                raise ValueError(f"model has no input {name!r}")
            self._single_input = name
        self._classes = np.array(outputs.classes, dtype=object) if outputs.classes else None

    @classmethod
    def from_path(cls, manifest: BundleManifest, model_path: str | Path, threads: int = 1) -> ModelRunner:
        return cls(manifest, make_session(model_path, threads))

    def feed(self, table: Table) -> dict[str, np.ndarray]:
        m = self.manifest
        if m.input_layout is InputLayout.SINGLE_TENSOR:
            cols = [table[f.name].astype(np.float32) for f in m.features]
            return {self._single_input: np.stack(cols, axis=1)}
        feed = {}
        for f in m.features:
            col = table[f.name]
            if f.kind is FeatureKind.CATEGORICAL:
                arr = col.copy()
                arr[arr == None] = CATEGORICAL_NULL_TOKEN  # noqa: E711 - elementwise on object arrays
                feed[f.name] = arr.reshape(-1, 1)
            else:
                feed[f.name] = col.astype(np.float32).reshape(-1, 1)
        return feed

    def predict(self, table: Table) -> Prediction:
        results = self.session.run(self._output_names, self.feed(table))
        raw_labels = np.asarray(results[0]).reshape(-1)
        probabilities = None
        if self.manifest.outputs.task is Task.CLASSIFICATION:
            if len(results) > 1:
                probabilities = _probability_matrix(results[1], self.manifest.outputs.classes)
            labels = _class_labels(raw_labels, self._classes)
        else:
            labels = raw_labels.astype(np.float64)
        return Prediction(labels=labels, probabilities=probabilities)


def _class_labels(raw: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    if raw.dtype.kind in "iu" and classes is not None and raw.size and raw.max() < len(classes) and raw.min() >= 0:
        return classes[raw]
    return raw.astype(str).astype(object)


def _probability_matrix(raw: object, classes: tuple[str, ...]) -> np.ndarray:
    if isinstance(raw, list):  # ZipMap output: a list of {class: prob}
        return np.array([[float(d.get(c, d.get(_maybe_int(c), 0.0))) for c in classes] for d in raw], dtype=np.float64)
    return np.asarray(raw, dtype=np.float64)


def _maybe_int(c: str) -> object:
    try:
        return int(c)
    except ValueError:
        return c
