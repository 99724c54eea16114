"""Building model bundles: from a fitted scikit-learn pipeline (skl2onnx) or from a ready ONNX file.

Heavy imports (pandas, scikit-learn, skl2onnx) stay inside functions: this module never runs in Lambda.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from modelserve.bundle import ModelBundle, write_bundle
from modelserve.schema import (
    CATEGORICAL_NULL_TOKEN,
    MAX_REFERENCE_ROWS,
    BundleManifest,
    FeatureKind,
    FeatureSpec,
    InputDtype,
    InputLayout,
    OutputSpec,
    Task,
    class_key,
    infer_feature_specs,
    json_value,
)
from serving.model import ModelRunner, input_dtypes, labels_agree_with_probabilities, make_session

PARITY_TOLERANCE = 1e-4
# fewer reference rows make every drift test on them meaningless (too little to compare a window with)
MIN_REFERENCE_ROWS = 200
TARGET_OPSET = 17


class ParityError(ValueError):
    """The ONNX graph does not reproduce the source model within tolerance."""


class QuantizationRejected(ValueError):
    """int8 quantization cost more accuracy than allowed."""


class ServingCheckError(ValueError):
    """Served one row at a time, the model answers differently than in a batch, or its label
    contradicts its probabilities."""


# one row served alone vs in a batch: onnxruntime may pick other kernels, so allow float32 rounding
ROW_BY_ROW_TOLERANCE = 1e-5
ODD_BATCH_SIZE = 37  # a batch size unlike the others, so that batch-size-dependent answers show


def class_name(value: Any) -> str:
    """A class's name in the manifest: integral floats read as integers (1.0 -> "1")."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    return str(value)


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


def check_row_by_row(runner: ModelRunner, table: dict[str, np.ndarray], strict: bool = True) -> dict[str, Any]:
    """Serve every row alone, in odd-sized batches and all at once: the answers must be the same, and
    each label must be the most probable class. Raises ServingCheckError naming the first rows.

    ``strict=False`` measures instead of refusing (dynamically quantized graphs scale activations per
    batch, so their answers move a little with the other rows): the figures go into the manifest.
    """
    n = len(next(iter(table.values())))
    outputs = runner.manifest.outputs
    whole = runner.predict(table)
    problems: list[str] = []
    largest, labels_changed = 0.0, 0
    for size in (1, ODD_BATCH_SIZE):
        for start in range(0, n, size):
            part = runner.predict({k: v[start : start + size] for k, v in table.items()})
            stop = start + len(part.labels)
            if outputs.task is Task.CLASSIFICATION:
                for i in np.flatnonzero(part.labels != whole.labels[start:stop]):
                    labels_changed += 1
                    problems.append(f"row {start + i}: label {part.labels[i]!r} in a batch of {size}, {whole.labels[start + i]!r} in a batch of {n}")
                if part.probabilities is not None and whole.probabilities is not None:
                    diff = np.abs(part.probabilities - whole.probabilities[start:stop]).max(axis=1)
                else:
                    diff = np.zeros(len(part.labels))
            else:
                expected = whole.labels[start:stop]
                diff = np.abs(part.labels - expected) / np.maximum(1.0, np.abs(expected))
            largest = max(largest, float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf"))
            for i in np.flatnonzero(~(diff <= ROW_BY_ROW_TOLERANCE)):
                problems.append(f"row {start + i}: outputs differ by {diff[i]:.3g} in a batch of {size} vs {n}")
        if strict and problems:
            raise ServingCheckError(
                f"the model's answer depends on the other rows of the request ({len(problems)} differences); first: "
                + "; ".join(problems[:5])
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


def canonical_bytes(onnx_model: Any) -> bytes:
    """Serialize with a fixed opset order: skl2onnx builds it from a set, whose order follows the
    process's string-hash seed, and the bundle version is a hash of these bytes."""
    opsets = sorted((o.domain, o.version) for o in onnx_model.opset_import)
    del onnx_model.opset_import[:]
    for domain, version in opsets:
        onnx_model.opset_import.add(domain=domain, version=version)
    return onnx_model.SerializeToString()


def prepare_frame(df: Any, features: Sequence[FeatureSpec]) -> Any:
    """The frame a pipeline is trained and checked on: the same representation the ONNX graph gets.

    numeric/boolean -> float32 (NaN for null), categorical -> str with nulls as CATEGORICAL_NULL_TOKEN.
    Train your pipeline on ``prepare_frame(df, infer_feature_specs(df[features]))``.
    """
    import pandas as pd

    out = pd.DataFrame(index=df.index)
    for f in features:
        col = df[f.name]
        if f.kind is FeatureKind.CATEGORICAL:
            out[f.name] = col.astype(object).where(col.notna(), CATEGORICAL_NULL_TOKEN).astype(str)
        else:
            out[f.name] = pd.to_numeric(col.astype(object).where(col.notna(), np.nan), errors="raise").astype(np.float32)
    return out


def reference_rows_from_frame(
    df: Any, features: Sequence[FeatureSpec], runner: ModelRunner, target: Any | None = None
) -> list[dict[str, Any]]:
    """Capture-shaped reference rows: inputs, the served model's prediction and probabilities (and target)."""
    table = table_from_frame(df, features)
    pred = runner.predict(table)
    classes = runner.manifest.outputs.classes
    rows = []
    labels = pred.labels.tolist()
    probs = pred.probabilities.tolist() if pred.probabilities is not None else None
    targets = None if target is None else list(target)
    for i in range(len(df)):
        r: dict[str, Any] = {
            "inputs": {f.name: json_value(f, table[f.name][i]) for f in features},
            "prediction": labels[i],
            "probabilities": dict(zip(classes, probs[i])) if probs is not None else None,
        }
        if targets is not None:
            t = targets[i]
            outputs = runner.manifest.outputs
            r["target"] = (outputs.class_for(t) or class_name(t)) if outputs.task is Task.CLASSIFICATION else float(t)
        rows.append(r)
    return rows


def table_from_frame(df: Any, features: Sequence[FeatureSpec]) -> dict[str, np.ndarray]:
    table = {}
    for f in features:
        col = df[f.name]
        if f.kind is FeatureKind.CATEGORICAL:
            table[f.name] = np.array([None if (v is None or v != v) else str(v) for v in col.to_numpy(dtype=object)], dtype=object)
        else:
            table[f.name] = col.to_numpy(dtype=np.float64, na_value=np.nan)
    return table


def sample_reference(df: Any, max_rows: int = MAX_REFERENCE_ROWS, seed: int = 0) -> Any:
    if len(df) <= max_rows:
        return df
    return df.sample(n=max_rows, random_state=seed).sort_index()


def check_parity(
    expected: np.ndarray, actual: np.ndarray, tolerance: float = PARITY_TOLERANCE, relative: bool = False
) -> float:
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


def export_sklearn(
    pipeline: Any,
    data: Any,
    target: str,
    model_name: str,
    out_dir: str | Path,
    feature_names: Sequence[str] | None = None,
    quantize: bool = False,
    accuracy_tolerance: float = 0.01,
    seed: int = 0,
    allow_small_reference: bool = False,
) -> ModelBundle:
    """Convert a fitted pipeline trained on ``prepare_frame`` data; check parity; write the bundle."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    names = list(feature_names) if feature_names else [c for c in data.columns if c != target]
    specs = infer_feature_specs({n: data[n] for n in names})
    is_classifier = hasattr(pipeline, "predict_proba") and hasattr(pipeline, "classes_")
    outputs = (
        OutputSpec(Task.CLASSIFICATION, tuple(class_name(c) for c in pipeline.classes_))
        if is_classifier
        else OutputSpec(Task.REGRESSION, (), label_output="variable", probability_output=None)
    )
    specs = tuple(replace(f, dtype=InputDtype.STRING if f.kind is FeatureKind.CATEGORICAL else InputDtype.FLOAT32) for f in specs)
    initial_types = [
        (f.name, StringTensorType([None, 1]) if f.kind is FeatureKind.CATEGORICAL else FloatTensorType([None, 1])) for f in specs
    ]
    options = {id(pipeline): {"zipmap": False}} if is_classifier else None
    # a fixed graph name: skl2onnx would pick a random one, and the version is a content hash
    onnx_model = convert_sklearn(
        pipeline, initial_types=initial_types, options=options, target_opset=TARGET_OPSET, name=model_name
    )
    model_bytes = canonical_bytes(onnx_model)

    manifest = BundleManifest(model_name=model_name, version="pending", features=specs, outputs=outputs)
    small_reference_warning = check_reference_size(len(data), allow_small_reference)
    reference = sample_reference(data, seed=seed)
    prepared = prepare_frame(reference, specs)
    runner = _runner_for(manifest, model_bytes)
    pred = runner.predict(table_from_frame(reference, specs))
    try:
        if is_classifier:
            source_probabilities = pipeline.predict_proba(prepared)
            parity = check_parity(source_probabilities, pred.probabilities)
            _check_labels_match_source(outputs, pipeline.predict(prepared), pred.labels, source_probabilities)
        else:
            parity = check_parity(np.asarray(pipeline.predict(prepared)).reshape(-1), pred.labels, relative=True)
    except ParityError as exc:
        raise ParityError(
            f"{exc}. The graph sees float32 numbers and '' for null categories: train the pipeline on "
            "devtools.export.prepare_frame(data, specs); trees after a scaler can also flip at float32 thresholds."
        ) from None
    serving_check = check_row_by_row(runner, table_from_frame(reference, specs))
    metrics: dict[str, Any] = {
        "source": "scikit-learn",
        ("parity_max_abs_diff" if is_classifier else "parity_max_rel_diff"): parity,
        "reference_rows": int(len(reference)),
        "onnx_bytes": len(model_bytes),
        **serving_check,
        **_quality(outputs, pred, reference[target]),
    }
    if small_reference_warning:
        metrics["warnings"] = [small_reference_warning]
    if quantize:
        model_bytes, qmetrics = quantize_checked(manifest, model_bytes, reference, specs, reference[target], accuracy_tolerance)
        metrics["quantization"] = qmetrics
        runner = _runner_for(manifest, model_bytes)
        metrics["quantization"].update(check_row_by_row(runner, table_from_frame(reference, specs), strict=False))
    manifest = replace(manifest, export_metrics=metrics)
    rows = reference_rows_from_frame(reference, specs, runner, reference[target])
    return write_bundle(out_dir, model_bytes, manifest, rows)


def export_onnx(
    model_path: str | Path,
    schema: Mapping[str, Any],
    reference: Any,
    out_dir: str | Path,
    target: str | None = None,
    allow_small_reference: bool = False,
) -> ModelBundle:
    """Bundle a ready ONNX model from any framework.

    ``schema``: {"model_name", "features": [FeatureSpec dicts], "outputs": OutputSpec dict,
    optional "input_layout"/"single_input_name"}; categories and ranges missing from the features
    are filled from the reference frame.
    """
    import onnx

    model_bytes = Path(model_path).read_bytes()
    declared = {f["name"]: FeatureSpec.from_dict(f) for f in schema["features"]}
    inferred = {f.name: f for f in infer_feature_specs({n: reference[n] for n in declared})}
    specs = []
    for name, f in declared.items():
        seen = inferred[name]
        specs.append(
            replace(
                f,
                categories=f.categories or seen.categories,
                min=f.min if f.min is not None else seen.min,
                max=f.max if f.max is not None else seen.max,
                nullable=f.nullable or seen.nullable,
            )
        )
    specs = with_model_dtypes(specs, model_bytes, InputLayout(schema.get("input_layout", InputLayout.PER_COLUMN.value)), schema.get("single_input_name"), reference)
    outputs = dict(schema["outputs"])
    if outputs.get("task") == Task.CLASSIFICATION.value:
        outputs["classes"] = _classes_for(outputs.get("classes"), graph_class_labels(onnx.load_model_from_string(model_bytes)))
    manifest = BundleManifest.from_dict(
        {**schema, "outputs": outputs, "version": "pending", "features": [s.to_dict() for s in specs], "export_metrics": {}}
    )
    small_reference_warning = check_reference_size(len(reference), allow_small_reference)
    ref = sample_reference(reference)
    runner = _runner_for(manifest, model_bytes)
    table = table_from_frame(ref, specs)
    pred = runner.predict(table)  # proves the model runs on the declared schema
    metrics = {"source": "onnx", "reference_rows": int(len(ref)), "onnx_bytes": len(model_bytes), **check_row_by_row(runner, table)}
    if target is not None:
        metrics.update(_quality(manifest.outputs, pred, ref[target]))
    if small_reference_warning:
        metrics["warnings"] = [small_reference_warning]
    manifest = replace(manifest, export_metrics=metrics)
    return write_bundle(out_dir, model_bytes, manifest, reference_rows_from_frame(ref, specs, runner, None if target is None else ref[target]))


def with_model_dtypes(
    specs: Sequence[FeatureSpec], model_bytes: bytes, layout: InputLayout, single_input_name: str | None, reference: Any
) -> list[FeatureSpec]:
    """Each feature's input type as the graph declares it; the reference's values must fit it."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    dtypes = input_dtypes(session)
    if layout is InputLayout.SINGLE_TENSOR:
        name = single_input_name or next(iter(dtypes))
        dtypes = {f.name: dtypes[name] for f in specs} if name in dtypes else {}
    out = []
    for f in specs:
        dtype = dtypes.get(f.name)
        if dtype is None:
            out.append(f)
            continue
        if dtype is InputDtype.INT64 and f.kind is not FeatureKind.CATEGORICAL:
            values = reference[f.name].to_numpy(dtype=np.float64, na_value=np.nan)
            bad = np.flatnonzero(~(np.isfinite(values) & (values == np.trunc(values))))
            if len(bad):
                raise ValueError(
                    f"feature {f.name!r}: the model takes int64, but reference row {int(bad[0])} has {float(values[bad[0]])!r} "
                    f"({len(bad)} rows are missing or not whole numbers)"
                )
        if not dtype.has_null and f.nullable:
            raise ValueError(f"feature {f.name!r}: the model takes {dtype.value}, which has no missing value, but the reference has nulls")
        out.append(replace(f, dtype=dtype))
    return out


def check_reference_size(rows: int, allow_small: bool, minimum: int = MIN_REFERENCE_ROWS) -> str | None:
    """Refuse an empty reference, and one below ``minimum`` rows unless allowed (then a warning to keep)."""
    if rows == 0:
        raise ValueError("the reference data has no rows: the drift check needs the training data (or a sample of it)")
    if rows >= minimum:
        return None
    message = f"the reference has {rows} rows (< {minimum}): drift checks against it have little power"
    if not allow_small:
        raise ValueError(f"{message}; give more rows, or --allow-small-reference to export anyway")
    return message


def _classes_for(declared: Sequence[Any] | None, in_graph: list[Any] | None) -> list[str]:
    """The manifest's classes: as declared (checked against the graph's own list and order) or the graph's."""
    if declared:
        if in_graph is not None and [class_key(c) for c in declared] != [class_key(c) for c in in_graph]:
            raise ValueError(
                f"outputs.classes {list(declared)} differ from the class labels in the model graph {in_graph} "
                "(names and order must match: the order is the probability columns'); leave classes out to use the graph's"
            )
        return [class_name(c) for c in declared]
    if in_graph is None:
        raise ValueError("the model graph does not name its classes: declare outputs.classes in probability column order")
    return [class_name(c) for c in in_graph]


def _check_labels_match_source(outputs: OutputSpec, source_labels: Any, served: np.ndarray, source_probabilities: np.ndarray) -> None:
    """Served labels are the source model's labels, row by row (rows where the source's two top
    probabilities tie within float32 rounding may go either way)."""
    expected = np.array([outputs.class_for(v) for v in np.asarray(source_labels).tolist()], dtype=object)
    top2 = np.sort(source_probabilities, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * PARITY_TOLERANCE
    wrong = np.flatnonzero((expected != served) & clear)
    if len(wrong):
        i = int(wrong[0])
        raise ParityError(f"served labels differ from the source model's on {len(wrong)} rows; first: row {i}: {served[i]!r} vs {expected[i]!r}")


def quantize_checked(
    manifest: BundleManifest,
    model_bytes: bytes,
    reference: Any,
    specs: Sequence[FeatureSpec],
    target: Any,
    accuracy_tolerance: float,
) -> tuple[bytes, dict[str, Any]]:
    """Dynamic int8 quantization with its size, latency and accuracy change; refuse past the tolerance."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "f32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(model_bytes)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        q_bytes = dst.read_bytes()
    table = table_from_frame(reference, specs)
    before, after = _runner_for(manifest, model_bytes), _runner_for(manifest, q_bytes)
    p_before, p_after = before.predict(table), after.predict(table)
    q_before = _quality(manifest.outputs, p_before, target)
    q_after = _quality(manifest.outputs, p_after, target)
    key = "accuracy" if manifest.outputs.task is Task.CLASSIFICATION else "neg_mae"
    drop = (q_before[key] - q_after[key]) if key == "accuracy" else (q_after["mae"] - q_before["mae"])
    report = {
        "bytes_before": len(model_bytes),
        "bytes_after": len(q_bytes),
        "latency_ms_before": _median_latency_ms(before, table),
        "latency_ms_after": _median_latency_ms(after, table),
        "quality_before": q_before,
        "quality_after": q_after,
        "quality_drop": drop,
        "labels_changed": int(np.sum(p_before.labels != p_after.labels)),
        "graph_changed": q_bytes != model_bytes,
    }
    if drop > accuracy_tolerance:
        raise QuantizationRejected(
            f"int8 quantization drops quality by {drop:.4f} (> tolerance {accuracy_tolerance}); bundle not written. {report}"
        )
    return q_bytes, report


def _runner_for(manifest: BundleManifest, model_bytes: bytes) -> ModelRunner:
    with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
        f.write(model_bytes)
        f.flush()
        return ModelRunner(manifest, make_session(f.name))


def _median_latency_ms(runner: ModelRunner, table: dict[str, np.ndarray], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        runner.predict(table)
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def _quality(outputs: OutputSpec, pred: Any, target: Any) -> dict[str, Any]:
    y = np.asarray(list(target))
    if outputs.task is Task.CLASSIFICATION:
        if not len(y):
            raise ValueError("no target values to score the model on")
        named = [outputs.class_for(v) for v in y.tolist()]
        unknown = sorted({str(v) for v, c in zip(y.tolist(), named) if c is None})
        if unknown:
            raise ValueError(f"target values {unknown[:10]} are not among the model's classes {list(outputs.classes)}")
        acc = float(np.mean(pred.labels == np.array(named, dtype=object)))
        return {"accuracy": acc}
    err = pred.labels - y.astype(np.float64)
    mae = float(np.mean(np.abs(err)))
    return {"mae": mae, "neg_mae": -mae, "rmse": float(np.sqrt(np.mean(err**2)))}


def load_frame(path: str | Path) -> Any:
    import pandas as pd

    path = Path(path)
    if path.suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"training data must be .csv or .parquet, got {path.name}")


def load_schema(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
