"""Running the bundle's ONNX graph on validated columns. Loaded once per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from modelserve.schema import (
    ALLOWED_DTYPES,
    CATEGORICAL_NULL_TOKEN,
    BundleManifest,
    FeatureKind,
    InputDtype,
    InputLayout,
    Table,
    Task,
    class_key,
)


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
    # errors only: converted graphs often declare a label shape of [1], and onnxruntime would log a
    # warning on every batch of more than one row
    opts.log_severity_level = 3
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


# ONNX tensor element types a feature can be fed as
ONNX_INPUT_DTYPES: dict[str, InputDtype] = {
    "tensor(float)": InputDtype.FLOAT32,
    "tensor(double)": InputDtype.FLOAT64,
    "tensor(int64)": InputDtype.INT64,
    "tensor(bool)": InputDtype.BOOL,
    "tensor(string)": InputDtype.STRING,
}
_NUMPY_DTYPES = {
    InputDtype.FLOAT32: np.float32,
    InputDtype.FLOAT64: np.float64,
    InputDtype.INT64: np.int64,
    InputDtype.BOOL: np.bool_,
}


def input_dtypes(session: ort.InferenceSession) -> dict[str, InputDtype]:
    """Each graph input's element type; ValueError naming the input for a type features cannot be fed as."""
    out = {}
    for i in session.get_inputs():
        if i.type not in ONNX_INPUT_DTYPES:
            supported = ", ".join(d.value for d in ONNX_INPUT_DTYPES.values())
            raise ValueError(f"model input {i.name!r} is {i.type}; supported input types: {supported}")
        out[i.name] = ONNX_INPUT_DTYPES[i.type]
    return out


class ModelOutputError(RuntimeError):
    """The model's outputs do not fit its manifest (an unknown class, a wrong shape)."""


class ModelRunner:
    def __init__(self, manifest: BundleManifest, session: ort.InferenceSession) -> None:
        self.manifest = manifest
        self.session = session
        outputs = manifest.outputs
        out_types = {o.name: o.type for o in session.get_outputs()}
        wanted = [outputs.label_output] if outputs.label_output else []
        if outputs.task is Task.CLASSIFICATION and outputs.probability_output:
            wanted.append(outputs.probability_output)
        for name in wanted:
            if name not in out_types:
                raise ValueError(f"model has no output {name!r}; outputs: {list(out_types)}")
        self._label_output = outputs.label_output if outputs.label_output in wanted else None
        self._probability_output = (
            outputs.probability_output if outputs.task is Task.CLASSIFICATION and outputs.probability_output else None
        )
        self._output_names = list(dict.fromkeys(wanted))
        in_names = {i.name for i in session.get_inputs()}
        dtypes = input_dtypes(session)
        ranks = {i.name: len(i.shape) if isinstance(i.shape, list) else 2 for i in session.get_inputs()}
        if manifest.input_layout is InputLayout.PER_COLUMN:
            missing = [f.name for f in manifest.features if f.name not in in_names]
            if missing:
                raise ValueError(f"model has no inputs for features {missing}; inputs: {sorted(in_names)}")
            self._dtypes = {f.name: dtypes[f.name] for f in manifest.features}
            self._column_shape = {f.name: (-1,) if ranks[f.name] == 1 else (-1, 1) for f in manifest.features}
        else:
            name = manifest.single_input_name or next(iter(in_names))
            if name not in in_names:
                raise ValueError(f"model has no input {name!r}")
            self._single_input = name
            self._dtypes = {f.name: dtypes[name] for f in manifest.features}
        for f in manifest.features:
            if f.dtype is not None and f.dtype is not self._dtypes[f.name]:
                raise ValueError(f"feature {f.name!r}: the manifest says {f.dtype.value}, the model takes {self._dtypes[f.name].value}")
            if self._dtypes[f.name] not in ALLOWED_DTYPES[f.kind]:
                raise ValueError(f"feature {f.name!r}: a {f.kind.value} feature cannot be fed to a {self._dtypes[f.name].value} input")
        self._classes = np.array(outputs.classes, dtype=object)
        self._class_index = {class_key(c): i for i, c in enumerate(outputs.classes)}

    @classmethod
    def from_path(cls, manifest: BundleManifest, model_path: str | Path, threads: int = 1) -> ModelRunner:
        return cls(manifest, make_session(model_path, threads))

    def feed(self, table: Table) -> dict[str, np.ndarray]:
        """Validated columns cast to the types the graph declares (values were range-checked by the validator)."""
        m = self.manifest
        if m.input_layout is InputLayout.SINGLE_TENSOR:
            tensor_type = _NUMPY_DTYPES[self._dtypes[m.features[0].name]]
            return {self._single_input: np.stack([table[f.name] for f in m.features], axis=1).astype(tensor_type)}
        feed = {}
        for f in m.features:
            col = table[f.name]
            dtype = self._dtypes[f.name]
            if f.kind is FeatureKind.CATEGORICAL:
                if dtype is InputDtype.INT64:  # integer-coded categories: "16" -> 16
                    arr = np.array([int(v) for v in col.tolist()], dtype=np.int64)
                else:
                    arr = col.copy()
                    arr[arr == None] = CATEGORICAL_NULL_TOKEN  # noqa: E711 - elementwise on object arrays
            else:
                arr = col.astype(_NUMPY_DTYPES[dtype])
            feed[f.name] = arr.reshape(self._column_shape[f.name])
        return feed

    def predict(self, table: Table) -> Prediction:
        n = len(next(iter(table.values())))
        results = dict(zip(self._output_names, self.session.run(self._output_names, self.feed(table))))
        outputs = self.manifest.outputs
        if outputs.task is Task.REGRESSION:
            values = np.asarray(results[self._label_output or ""], dtype=np.float64).reshape(-1)
            if len(values) != n:
                raise ModelOutputError(f"output {outputs.label_output!r} gave {len(values)} values for {n} rows")
            return Prediction(labels=values, probabilities=None)
        probabilities = None
        if self._probability_output:
            probabilities = self._probability_matrix(results[self._probability_output], n)
        if outputs.labels_from_probabilities:
            assert probabilities is not None  # OutputSpec guarantees a probability output here
            labels = self._classes[self._label_positions_from(probabilities)]
        else:
            labels = self._class_labels(results[self._label_output or ""], n)
        return Prediction(labels=labels, probabilities=probabilities)

    def explained_outputs(self, table: Table) -> np.ndarray:
        """The outputs an explanation is of, in one run and without labels: ``[n, K]`` probabilities
        (classifier, manifest class order) or ``[n, 1]`` predictions (regressor)."""
        n = len(next(iter(table.values())))
        outputs = self.manifest.outputs
        if outputs.task is Task.REGRESSION:
            (raw,) = self.session.run([self._label_output or ""], self.feed(table))
            values = np.asarray(raw, dtype=np.float64).reshape(-1)
            if len(values) != n:
                raise ModelOutputError(f"output {outputs.label_output!r} gave {len(values)} values for {n} rows")
            return values[:, None]
        if not self._probability_output:
            raise ModelOutputError("the model answers no probabilities: there is no output to explain")
        (raw,) = self.session.run([self._probability_output], self.feed(table))
        return self._probability_matrix(raw, n)

    @property
    def has_probabilities(self) -> bool:
        return self._probability_output is not None

    def _label_positions_from(self, probabilities: np.ndarray) -> np.ndarray:
        threshold = self.manifest.outputs.threshold
        if threshold is not None:
            return (probabilities[:, 1] >= threshold).astype(np.intp)
        return np.argmax(probabilities, axis=1)

    def _class_labels(self, raw: object, n: int) -> np.ndarray:
        """Label output values -> class names, by value (never by position)."""
        values = np.asarray(raw).reshape(-1)
        if len(values) != n:
            raise ModelOutputError(
                f"label output {self.manifest.outputs.label_output!r} gave {len(values)} values for {n} rows; "
                "if it holds probabilities, name it as probability_output and set label_output to null"
            )
        keys = {v: class_key(v) for v in set(values.tolist())}
        unknown = sorted(str(v) for v, k in keys.items() if k not in self._class_index)
        if unknown:
            raise ModelOutputError(f"the model answered labels {unknown[:10]} that are not among its classes {list(self._classes)}")
        positions = {v: self._class_index[k] for v, k in keys.items()}
        return self._classes[np.fromiter((positions[v] for v in values.tolist()), dtype=np.intp, count=n)]

    def _probability_matrix(self, raw: object, n: int) -> np.ndarray:
        classes = self.manifest.outputs.classes
        if isinstance(raw, list):  # ZipMap output: a list of {class: prob}, keyed by the model's own labels
            if not raw:
                return np.zeros((0, len(classes)))
            columns: list[int] = []
            for key in raw[0]:
                pos = self._class_index.get(class_key(key))
                if pos is None:
                    raise ModelOutputError(f"the model's probabilities name class {key!r}, not among its classes {list(classes)}")
                columns.append(pos)
            if len(set(columns)) != len(classes):
                raise ModelOutputError(f"the model's probabilities name classes {list(raw[0])}; the manifest says {list(classes)}")
            matrix = np.zeros((len(raw), len(classes)), dtype=np.float64)
            matrix[:, columns] = np.array([list(d.values()) for d in raw], dtype=np.float64)
            return matrix
        matrix = np.asarray(raw, dtype=np.float64)
        if len(classes) == 2 and (matrix.ndim == 1 or (matrix.ndim == 2 and matrix.shape[1] == 1)):
            positive = matrix.reshape(-1)  # one column: the probability of the second class (a sigmoid)
            matrix = np.stack([1.0 - positive, positive], axis=1)
        if matrix.shape != (n, len(classes)):
            raise ModelOutputError(
                f"probability output {self.manifest.outputs.probability_output!r} has shape {matrix.shape}; "
                f"expected ({n}, {len(classes)}): one column per class {list(classes)}"
            )
        return matrix


def labels_agree_with_probabilities(
    classes: tuple[str, ...], labels: np.ndarray, probabilities: np.ndarray, tolerance: float = 1e-6
) -> np.ndarray:
    """Per row: whether the label's probability is the largest (ties within ``tolerance`` count)."""
    position = {c: i for i, c in enumerate(classes)}
    idx = np.fromiter((position.get(label, -1) for label in labels.tolist()), dtype=np.intp, count=len(labels))
    known = idx >= 0
    label_p = np.where(known, probabilities[np.arange(len(idx)), np.maximum(idx, 0)], -np.inf)
    return known & (label_p >= probabilities.max(axis=1) - tolerance)
