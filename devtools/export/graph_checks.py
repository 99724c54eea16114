"""What a converted graph must show before it is bundled: parity with the source model, the same
answer for a row alone as in any batch, labels that agree with the probabilities; its class labels;
and its bytes in a canonical order (the bundle version is their hash)."""

from __future__ import annotations

import tempfile
from typing import Any

import numpy as np

from modelserve.schema import BundleManifest, OutputSpec, Task
from serving.model import ModelRunner, labels_agree_with_probabilities, make_session

PARITY_TOLERANCE = 1e-4


# one row served alone vs in a batch: onnxruntime may pick other kernels, so allow float32 rounding
ROW_BY_ROW_TOLERANCE = 1e-5


ODD_BATCH_SIZE = 37  # a batch size unlike the others, so that batch-size-dependent answers show


class ParityError(ValueError):
    """The ONNX graph does not reproduce the source model within tolerance."""


class ServingCheckError(ValueError):
    """Served one row at a time, the model answers differently than in a batch, or its label
    contradicts its probabilities. ``rows``: the reference rows whose answer depends on the batch."""

    def __init__(self, message: str, rows: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.rows = rows


def graph_class_labels(onnx_model: Any) -> list[Any] | None:
    """The class labels a converted classifier carries in its graph (ZipMap or the classifier node),
    in probability column order; None when the graph does not say (e.g. a plain Softmax)."""
    by_op: dict[str, list[Any]] = {}
    for node in onnx_model.graph.node:
        for attr in node.attribute:
            if attr.name == "classlabels_strings" and attr.strings:
                by_op.setdefault(node.op_type, [s.decode() for s in attr.strings])
            elif attr.name in ("classlabels_int64s", "classlabels_ints") and attr.ints:
                by_op.setdefault(node.op_type, list(attr.ints))
    for op in ("ZipMap", "TreeEnsembleClassifier", "TreeEnsemble", "LinearClassifier", "SVMClassifier"):
        if op in by_op:
            return by_op[op]
    return next(iter(by_op.values()), None)


def canonical_bytes(onnx_model: Any) -> bytes:
    """Serialize with a fixed opset order: skl2onnx builds it from a set, whose order follows the
    process's string-hash seed, and the bundle version is a hash of these bytes."""
    opsets = sorted((o.domain, o.version) for o in onnx_model.opset_import)
    del onnx_model.opset_import[:]
    for domain, version in opsets:
        onnx_model.opset_import.add(domain=domain, version=version)
    return onnx_model.SerializeToString()


def check_parity(expected: np.ndarray, actual: np.ndarray, tolerance: float = PARITY_TOLERANCE, relative: bool = False) -> float:
    """Largest difference of outputs; ParityError naming the figure and the row when above tolerance.

    ``relative``: the difference is divided by max(1, |expected|) — for regression outputs, whose
    scale is the target's (the ONNX graph computes in float32: about 7 significant digits).
    Probabilities compare absolutely.
    """
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if expected.shape != actual.shape:
        raise ParityError(f"output shapes differ: source {expected.shape}, ONNX {actual.shape}")
    if not expected.size:
        return 0.0
    diff = np.abs(expected - actual)
    if relative:
        diff = diff / np.maximum(1.0, np.abs(expected))
    worst = int(np.nanargmax(diff.reshape(len(diff), -1).max(axis=1))) if np.isfinite(diff).any() else 0
    largest = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf")
    if not np.isfinite(diff).all() or largest > tolerance:
        kind = "relative" if relative else "absolute"
        raise ParityError(
            f"ONNX output differs from the source model by {largest:.3g} ({kind}, max allowed {tolerance:g}) "
            f"at reference row {worst}; {int((diff.reshape(len(diff), -1).max(axis=1) > tolerance).sum())} of "
            f"{len(diff)} rows differ"
        )
    return largest


def check_row_by_row(runner: ModelRunner, table: dict[str, np.ndarray], strict: bool = True) -> dict[str, Any]:
    """Serve every row alone, in odd-sized batches and all at once: the answers must be the same, and
    each label must be the most probable class. Raises ServingCheckError naming the first rows.

    ``strict=False`` measures instead of refusing (dynamically quantized graphs scale activations per
    batch, so their answers move a little with the other rows): the figures go into the manifest.
    """
    n = len(next(iter(table.values())))
    outputs = runner.manifest.outputs
    whole = runner.predict(table)
    check_finite_answers(whole, table, outputs)
    problems: list[str] = []
    rows: dict[int, None] = {}  # the rows that differ, in the order found
    largest, labels_changed = 0.0, 0
    for size in (1, ODD_BATCH_SIZE):
        for start in range(0, n, size):
            part = runner.predict({k: v[start : start + size] for k, v in table.items()})
            stop = start + len(part.labels)
            if outputs.task is Task.CLASSIFICATION:
                for i in np.flatnonzero(part.labels != whole.labels[start:stop]):
                    labels_changed += 1
                    rows[int(start + i)] = None
                    problems.append(
                        f"row {start + i}: label {part.labels[i]!r} in a batch of {size}, {whole.labels[start + i]!r} in a batch of {n}"
                    )
                if part.probabilities is not None and whole.probabilities is not None:
                    diff = np.abs(part.probabilities - whole.probabilities[start:stop]).max(axis=1)
                else:
                    diff = np.zeros(len(part.labels))
            else:
                expected = whole.labels[start:stop]
                diff = np.abs(part.labels - expected) / np.maximum(1.0, np.abs(expected))
            largest = max(largest, float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf"))
            for i in np.flatnonzero(~(diff <= ROW_BY_ROW_TOLERANCE)):
                rows[int(start + i)] = None
                problems.append(f"row {start + i}: outputs differ by {diff[i]:.3g} in a batch of {size} vs {n}")
        if strict and problems:
            raise ServingCheckError(
                f"the model's answer depends on the other rows of the request ({len(problems)} differences); first: "
                + "; ".join(problems[:5]),
                tuple(rows),
            )
    if outputs.task is Task.CLASSIFICATION and whole.probabilities is not None and not outputs.labels_from_probabilities:
        agree = labels_agree_with_probabilities(outputs.classes, whole.labels, whole.probabilities)
        if not agree.all():
            bad = np.flatnonzero(~agree)
            examples = "; ".join(
                f"row {i}: label {whole.labels[i]!r}, most probable {outputs.classes[int(np.argmax(whole.probabilities[i]))]!r} "
                f"(p={whole.probabilities[i].max():.3f})"
                for i in bad[:3]
            )
            raise ServingCheckError(
                f"the label output {outputs.label_output!r} contradicts the probabilities on {len(bad)} of {n} rows ({examples}); "
                "check that outputs.classes are in the model's probability column order, or set label_output to null "
                "to serve the most probable class"
            )
    return {"rows_checked_one_by_one": n, "batch_dependence_max_diff": largest, "batch_dependence_labels_changed": labels_changed}


def check_finite_answers(pred: Any, table: dict[str, np.ndarray], outputs: OutputSpec) -> None:
    """ServingCheckError when the model answers NaN (or infinity) on reference rows, naming the first
    row and its missing fields: usually a model that was never taught what to do with a missing value."""
    values = pred.probabilities if outputs.task is Task.CLASSIFICATION else pred.labels
    if values is None:
        return
    values = np.asarray(values, dtype=np.float64).reshape(len(pred.labels), -1)
    bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if not len(bad):
        return
    i = int(bad[0])
    missing = [name for name, col in table.items() if col[i] is None or (isinstance(col[i], float) and np.isnan(col[i]))]
    where = f"its missing fields: {missing}" if missing else "it has no missing field"
    hint = (
        "the model does not handle missing values: impute them inside the model (e.g. a SimpleImputer step) "
        "or drop such rows from the reference"
        if missing
        else "check the model on this row"
    )
    raise ServingCheckError(f"the model answers NaN on {len(bad)} of {len(values)} reference rows (first: row {i}, {where}); {hint}")


def check_labels_match_source(outputs: OutputSpec, source_labels: Any, served: np.ndarray, source_probabilities: np.ndarray) -> None:
    """Served labels are the source model's labels, row by row (rows where the source's two top
    probabilities tie within float32 rounding may go either way)."""
    expected = np.array([outputs.class_for(v) for v in np.asarray(source_labels).tolist()], dtype=object)
    top2 = np.sort(source_probabilities, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * PARITY_TOLERANCE
    wrong = np.flatnonzero((expected != served) & clear)
    if len(wrong):
        i = int(wrong[0])
        raise ParityError(
            f"served labels differ from the source model's on {len(wrong)} rows; first: row {i}: {served[i]!r} vs {expected[i]!r}"
        )


def largest_diff(expected: Any, actual: Any, relative: bool = False) -> float:
    expected, actual = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if not expected.size:
        return 0.0
    diff = np.abs(expected - actual)
    if relative:
        diff = diff / np.maximum(1.0, np.abs(expected))
    return float(np.max(diff))


def runner_for(manifest: BundleManifest, model_bytes: bytes) -> ModelRunner:
    with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
        f.write(model_bytes)
        f.flush()
        return ModelRunner(manifest, make_session(f.name))
