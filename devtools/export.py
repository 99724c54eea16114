"""Building model bundles: from a fitted scikit-learn pipeline (skl2onnx) or from a ready ONNX file.

Heavy imports (pandas, scikit-learn, skl2onnx) stay inside functions: this module never runs in Lambda.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from devtools.schema_file import ExportProblems, SchemaFile, load_schema_file, nearest, parse_schema
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
    category_text,
    class_key,
    infer_feature_spec,
    json_value,
)
from serving.model import ModelRunner, input_dtypes, labels_agree_with_probabilities, make_session

PARITY_TOLERANCE = 1e-4
# fewer reference rows make every drift test on them meaningless (too little to compare a window with)
MIN_REFERENCE_ROWS = 200
TARGET_OPSET = 17
# share of the export data held out (stratified) to measure the reference performance
HOLDOUT_SHARE = 0.2


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
            out[f.name] = [CATEGORICAL_NULL_TOKEN if v is None or v != v else category_text(v) for v in col.to_numpy(dtype=object)]
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
    import pandas as pd

    table = {}
    for f in features:
        col = df[f.name]
        if f.kind is FeatureKind.CATEGORICAL:
            table[f.name] = np.array([None if (v is None or v != v) else category_text(v) for v in col.to_numpy(dtype=object)], dtype=object)
        else:
            table[f.name] = pd.to_numeric(col.astype(object).where(col.notna(), np.nan)).to_numpy(dtype=np.float64, na_value=np.nan)
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
    kinds: Mapping[str, FeatureKind] | None = None,
    log: Callable[[str], None] | None = None,
    holdout: Any | None = None,
    holdout_share: float = HOLDOUT_SHARE,
) -> ModelBundle:
    """Convert a fitted pipeline trained on ``prepare_frame`` data; check parity; write the bundle.

    ``kinds``: feature kinds declared by the user (the rest are inferred from the data); ``log``
    receives one line per feature: its kind and why.

    The reference performance (``export_metrics["reference_performance"]``, what the drift check
    compares the window's labels with) is measured on rows the model did not learn from: the served
    graph on ``holdout`` when given (rows kept out of training), otherwise a copy of the pipeline
    refitted on the data minus a stratified ``holdout_share``, scored on that share.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    say = log or (lambda line: None)
    columns = [str(c) for c in data.columns]
    names = list(feature_names) if feature_names else [c for c in columns if c != target]
    problems = [f"--target {target!r}: not a column of the data{nearest(target, columns)}"] if target not in columns else []
    problems += [f"--features: {n!r} is not a column of the data{nearest(n, columns)}" for n in names if n not in columns]
    problems += [f"--{k.value} {n!r}: not a feature{nearest(n, names)}" for n, k in (kinds or {}).items() if n not in names]
    if not (hasattr(pipeline, "predict") and hasattr(pipeline, "fit")):
        problems.append(f"--pipeline: a {type(pipeline).__name__}, not a fitted scikit-learn estimator or pipeline")
    if problems:
        raise ExportProblems(problems)
    specs_and_reasons, problems = [], []
    for n in names:
        try:
            specs_and_reasons.append(infer_feature_spec(n, data[n], (kinds or {}).get(n)))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ExportProblems(problems)
    for spec, reason in specs_and_reasons:
        say(f"  {spec.name}: {reason.replace('(declared', '(declared on the command line')}")
    specs = tuple(spec for spec, _ in specs_and_reasons)
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
    try:
        onnx_model = convert_sklearn(
            pipeline, initial_types=initial_types, options=options, target_opset=TARGET_OPSET, name=model_name
        )
    except Exception as exc:  # noqa: BLE001 - converter errors come in many types; the person needs the context
        kinds_used = ", ".join(f"{f.name}={f.kind.value}" for f in specs)
        raise ExportProblems(
            [
                f"skl2onnx cannot convert the pipeline: {_first_line(exc)}",
                f"the graph is fed numeric/boolean features as float32 and categorical ones as text ({kinds_used}): "
                "train the pipeline on devtools.export.prepare_frame(data, specs), and declare integer codes --categorical",
            ]
        ) from None
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
        parity_key = "parity_max_abs_diff" if is_classifier else "parity_max_rel_diff"
        float_bytes = len(model_bytes)
        model_bytes, qmetrics = quantize_checked(manifest, model_bytes, reference, specs, reference[target], accuracy_tolerance)
        runner = _runner_for(manifest, model_bytes)
        served = runner.predict(table_from_frame(reference, specs))
        # the manifest describes the graph that is served: the quantized one
        qmetrics["float_" + parity_key] = metrics[parity_key]
        qmetrics["float_onnx_bytes"] = float_bytes
        metrics[parity_key] = _largest_diff(
            source_probabilities if is_classifier else np.asarray(pipeline.predict(prepared)).reshape(-1),
            served.probabilities if is_classifier else served.labels,
            relative=not is_classifier,
        )
        metrics["onnx_bytes"] = len(model_bytes)
        metrics.update(_quality(outputs, served, reference[target]))
        metrics["quantization"] = {**qmetrics, **check_row_by_row(runner, table_from_frame(reference, specs), strict=False)}
    if holdout is not None:
        metrics["reference_performance"] = served_performance(runner, holdout, specs, holdout[target], source="holdout")
    else:
        try:
            metrics["reference_performance"] = refit_holdout_performance(pipeline, data, specs, target, outputs, holdout_share, seed)
        except Exception as exc:  # noqa: BLE001 - a pipeline that cannot be refitted still exports; the drift check then uses the reference rows
            metrics.setdefault("warnings", []).append(
                f"reference performance not measured: refitting the pipeline on {1 - holdout_share:.0%} of the data failed "
                f"({_first_line(exc)}); pass holdout= rows kept out of training"
            )
    manifest = replace(manifest, export_metrics=metrics)
    rows = reference_rows_from_frame(reference, specs, runner, reference[target])
    return write_bundle(out_dir, model_bytes, manifest, rows)


def served_performance(runner: ModelRunner, frame: Any, specs: Sequence[FeatureSpec], target: Any, source: str) -> dict[str, Any]:
    """The served graph's accuracy / macro F1 / AUC (MAE / RMSE) on ``frame`` with bootstrap intervals."""
    from monitoring.performance_drop import measure_performance

    outputs = runner.manifest.outputs
    pred = runner.predict(table_from_frame(frame, specs))
    y = list(target)
    if outputs.task is Task.CLASSIFICATION:
        named = [outputs.class_for(v) or class_name(v) for v in y]
        return measure_performance(Task.CLASSIFICATION, named, list(pred.labels), pred.probabilities, outputs.classes, source=source)
    return measure_performance(Task.REGRESSION, [float(v) for v in y], list(pred.labels), source=source)


def refit_holdout_performance(
    pipeline: Any, data: Any, specs: Sequence[FeatureSpec], target: str, outputs: OutputSpec, share: float, seed: int
) -> dict[str, Any]:
    """Performance of the pipeline's training procedure on rows it did not see: a clone refitted on
    the data minus a held-out share (stratified by class for classifiers), scored on that share. It
    estimates the served model's performance (trained on all rows) slightly pessimistically."""
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    from monitoring.performance_drop import measure_performance

    y = data[target]
    classifier = outputs.task is Task.CLASSIFICATION
    stratify = y if classifier and y.value_counts().min() >= 2 else None
    train, held = train_test_split(data, test_size=share, random_state=seed, stratify=stratify)
    model = clone(pipeline).fit(prepare_frame(train, specs), train[target])
    x_held = prepare_frame(held, specs)
    extra = {"holdout_share": share}
    if classifier:
        probs = np.asarray(model.predict_proba(x_held), dtype=np.float64)
        # the refitted clone's columns follow its own classes_; the manifest's order is the served model's
        order = [list(map(class_name, model.classes_)).index(c) if c in map(class_name, model.classes_) else None for c in outputs.classes]
        aligned = np.column_stack([probs[:, i] if i is not None else np.zeros(len(held)) for i in order])
        labels = [class_name(v) for v in model.predict(x_held)]
        named = [outputs.class_for(v) or class_name(v) for v in held[target]]
        return {**measure_performance(Task.CLASSIFICATION, named, labels, aligned, outputs.classes, source="holdout_refit", seed=seed), **extra}
    values = np.asarray(model.predict(x_held), dtype=np.float64).reshape(-1)
    return {**measure_performance(Task.REGRESSION, held[target].astype(float).tolist(), values.tolist(), source="holdout_refit", seed=seed), **extra}


def export_onnx(
    model_path: str | Path,
    schema: Mapping[str, Any] | SchemaFile,
    reference: Any,
    out_dir: str | Path,
    target: str | None = None,
    allow_small_reference: bool = False,
    kinds: Mapping[str, FeatureKind] | None = None,
    log: Callable[[str], None] | None = None,
) -> ModelBundle:
    """Bundle a ready ONNX model from any framework.

    ``schema``: the schema file's content (see :mod:`devtools.schema_file`): model name, features
    (kinds optional), outputs (output names optional: found from the graph's output types). Kinds
    left open come from ``kinds`` (the command line), the model's input types (text -> categorical),
    or the reference values; categories and ranges left open come from the reference.
    ``log`` receives one line per decision (each feature's kind and why). ExportProblems lists
    every problem found in the inputs, one line each.
    """
    import onnx

    say = log or (lambda line: None)
    decl = schema if isinstance(schema, SchemaFile) else parse_schema(schema)
    model_bytes = _read_model(model_path)
    try:
        onnx_model = onnx.load_model_from_string(model_bytes)
        session = _session(model_bytes)
    except Exception as exc:  # noqa: BLE001 - any failure to load means "not a model onnxruntime can run"
        raise ExportProblems([f"{model_path}: not an ONNX model onnxruntime can load ({_first_line(exc)})"]) from None
    problems: list[str] = []
    columns = [str(c) for c in reference.columns]
    input_names = _check_feature_names(decl, session, columns, problems)
    label_output, probability_output = _output_names(decl, session, problems)
    for name in kinds or {}:
        if name not in [f.name for f in decl.features]:
            problems.append(f"--{(kinds or {})[name].value} {name!r}: not a feature of the schema{nearest(name, [f.name for f in decl.features])}")
    if target is not None and target not in columns:
        problems.append(f"--target {target!r}: not a column of the reference{nearest(target, columns)}")
    try:
        dtypes = input_dtypes(session)
    except ValueError as exc:
        problems.append(str(exc))
        dtypes = {}
    if problems:
        raise ExportProblems(problems)
    small_reference_warning = check_reference_size(len(reference), allow_small_reference)
    feature_dtypes = {f.name: dtypes[input_names[f.name]] for f in decl.features}
    specs = _resolve_features(decl, reference, kinds or {}, feature_dtypes, say)
    classes: list[str] = []
    if decl.outputs.task is Task.CLASSIFICATION:
        classes = _classes_for(decl.outputs.classes, graph_class_labels(onnx_model))
        say(f"classes: {classes}")
    say(f"outputs: label from {label_output!r}, probabilities from {probability_output!r}" if decl.outputs.task is Task.CLASSIFICATION else f"outputs: value from {label_output!r}")
    try:
        outputs = OutputSpec(decl.outputs.task, tuple(classes), label_output, probability_output, decl.outputs.threshold)
        manifest = BundleManifest(
            model_name=decl.model_name,
            version="pending",
            features=tuple(specs),
            outputs=outputs,
            input_layout=decl.input_layout,
            single_input_name=decl.single_input_name if decl.input_layout is InputLayout.SINGLE_TENSOR else None,
        )
        manifest = BundleManifest.from_dict(manifest.to_dict())  # the manifest's own checks
    except ValueError as exc:
        raise ExportProblems([str(exc)]) from None
    ref = sample_reference(reference)
    runner = _runner_for(manifest, model_bytes)
    table = table_from_frame(ref, specs)
    pred = runner.predict(table)  # proves the model runs on the declared schema
    metrics = {"source": "onnx", "reference_rows": int(len(ref)), "onnx_bytes": len(model_bytes), **check_row_by_row(runner, table)}
    if target is not None:
        metrics.update(_quality(manifest.outputs, pred, ref[target]))
        # a ready model's training rows are unknown: the reference with targets is the best held-out set we have
        metrics["reference_performance"] = served_performance(runner, ref, specs, ref[target], source="reference")
    if small_reference_warning:
        metrics["warnings"] = [small_reference_warning]
    manifest = replace(manifest, export_metrics=metrics)
    return write_bundle(out_dir, model_bytes, manifest, reference_rows_from_frame(ref, specs, runner, None if target is None else ref[target]))


def _read_model(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ExportProblems([f"--model: no such file: {path}"]) from None
    except IsADirectoryError:
        raise ExportProblems([f"--model: {path} is a folder, not an ONNX file"]) from None


def _session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # as served: errors only
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _check_feature_names(decl: SchemaFile, session: Any, columns: list[str], problems: list[str]) -> dict[str, str]:
    """Each feature's graph input name; problems for names in neither the model nor the reference."""
    inputs = {i.name: i for i in session.get_inputs()}
    names = [f.name for f in decl.features]
    for i, name in enumerate(names):
        if decl.input_layout is InputLayout.PER_COLUMN and name not in inputs:
            problems.append(f"schema features[{i}]: {name!r} is not an input of the model{nearest(name, list(inputs))}; model inputs: {sorted(inputs)}")
        if name not in columns:
            problems.append(f"schema features[{i}]: {name!r} is not a column of the reference{nearest(name, columns)}")
    if decl.input_layout is InputLayout.PER_COLUMN:
        for name in inputs:
            if name not in names:
                problems.append(f"the model input {name!r} has no feature in the schema{nearest(name, names)}")
        return {n: n for n in names}
    single = decl.single_input_name or (next(iter(inputs)) if len(inputs) == 1 else None)
    if single is None:
        problems.append(f"schema single_input_name: required, the model has {len(inputs)} inputs: {sorted(inputs)}")
        return {}
    if single not in inputs:
        problems.append(f"schema single_input_name: {single!r} is not an input of the model{nearest(single, list(inputs))}; model inputs: {sorted(inputs)}")
        return {}
    shape = inputs[single].shape
    width = shape[-1] if isinstance(shape, list) and len(shape) == 2 else None
    if isinstance(width, int) and width != len(names):
        problems.append(f"the model input {single!r} takes {width} features per row; the schema declares {len(names)}")
    for name in inputs:
        if name != single:
            problems.append(f"the model input {name!r} is not fed: with input_layout single_tensor the model takes one input")
    return {n: single for n in names}


_LABEL_TYPES = ("tensor(int64)", "tensor(int32)", "tensor(string)", "tensor(bool)")
_FLOAT_TYPES = ("tensor(float)", "tensor(double)")


def _output_names(decl: SchemaFile, session: Any, problems: list[str]) -> tuple[str | None, str | None]:
    """The label / value and probability outputs: as declared, or found by the graph's output types."""
    outs = {o.name: o for o in session.get_outputs()}
    declared = decl.outputs

    def pick(key: str, wanted: Any) -> str | None:
        if declared.given(key):
            name = getattr(declared, key)
            if name is not None and name not in outs:
                problems.append(f"schema outputs.{key}: {name!r} is not an output of the model{nearest(name, list(outs))}; outputs: {list(outs)}")
            return name
        found = [n for n, o in outs.items() if wanted(o.type)]
        if len(found) > 1:
            problems.append(f"schema outputs.{key}: several outputs could be it ({found}); name one")
        return found[0] if len(found) == 1 else None

    if declared.task is Task.REGRESSION:
        if declared.given("probability_output") and declared.probability_output is not None:
            problems.append("schema outputs.probability_output: a regression model has no probabilities; leave it out")
        value = pick("label_output", lambda t: t in _FLOAT_TYPES)
        if value is None and not problems:
            problems.append(f"schema outputs.label_output: name the output with the predicted value; outputs: {list(outs)}")
        return value, None
    label = pick("label_output", lambda t: t in _LABEL_TYPES)
    probabilities = pick("probability_output", lambda t: t.startswith("seq(map(") or t in _FLOAT_TYPES)
    if label is not None and label == probabilities:
        problems.append(f"schema outputs: label_output and probability_output are both {label!r}; a probabilities-only model has label_output null")
    elif label in outs and outs[label].type in _FLOAT_TYPES:
        shape = outs[label].shape
        if isinstance(shape, list) and len(shape) == 2 and (not isinstance(shape[1], int) or shape[1] > 1):
            problems.append(
                f"schema outputs.label_output: {label!r} ({outs[label].type} {shape}) looks like probabilities; "
                "name it as probability_output and set label_output to null"
            )
    if label is None and probabilities is None and not problems:
        problems.append(f"schema outputs: the model has no label or probability output the export recognises; outputs: {[(n, o.type) for n, o in outs.items()]}")
    return label, probabilities


def _resolve_features(
    decl: SchemaFile, reference: Any, kinds: Mapping[str, FeatureKind], dtypes: Mapping[str, InputDtype], say: Callable[[str], None]
) -> list[FeatureSpec]:
    """Each feature's spec: its kind (command line > schema file > the model's input type > the
    reference's values), filled from the reference; every problem with the feature named."""
    specs, problems = [], []
    for f in decl.features:
        dtype = dtypes[f.name]
        if f.name in kinds:
            kind, source = kinds[f.name], "declared on the command line"
        elif f.kind is not None:
            kind, source = f.kind, "declared in the schema file"
        elif dtype is InputDtype.STRING:
            kind, source = FeatureKind.CATEGORICAL, "the model takes text"
        elif dtype is InputDtype.BOOL:
            kind, source = FeatureKind.BOOLEAN, "the model takes booleans"
        else:
            kind, source = None, ""
        reason = ""
        try:
            seen, reason = infer_feature_spec(f.name, reference[f.name], kind)
            reason = reason.replace("declared", source) if source else reason
            spec = replace(
                seen,
                categories=tuple(f.categories) if f.categories else seen.categories,
                min=float(f.min) if f.min is not None else seen.min,
                max=float(f.max) if f.max is not None else seen.max,
                nullable=bool(f.nullable) or seen.nullable,
                dtype=dtype,
            )
            if dtype is InputDtype.INT64 and spec.kind is not FeatureKind.CATEGORICAL:
                _check_whole_numbers(f.name, reference[f.name])
        except ValueError as exc:
            # a kind the model's input type cannot take: say where the kind came from
            problems.append(f"{exc}; its kind: {reason}" if reason and "cannot be fed" in str(exc) else str(exc))
            continue
        say(f"  {f.name}: {reason} -> {dtype.value} input")
        specs.append(spec)
    if problems:
        raise ExportProblems(problems)
    return specs


def _check_whole_numbers(name: str, column: Any) -> None:
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~(np.isfinite(values) & (values == np.trunc(values))))
    if len(bad):
        raise ValueError(
            f"feature {name!r}: the model takes int64, but reference row {int(bad[0])} has {float(values[bad[0]])!r} "
            f"({len(bad)} rows are missing or not whole numbers)"
        )


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
    classifier = manifest.outputs.task is Task.CLASSIFICATION
    report = {
        ("parity_vs_float_max_abs_diff" if classifier else "parity_vs_float_max_rel_diff"): _largest_diff(
            p_before.probabilities if classifier else p_before.labels,
            p_after.probabilities if classifier else p_after.labels,
            relative=not classifier,
        ),
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


def _largest_diff(expected: Any, actual: Any, relative: bool = False) -> float:
    expected, actual = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if not expected.size:
        return 0.0
    diff = np.abs(expected - actual)
    if relative:
        diff = diff / np.maximum(1.0, np.abs(expected))
    return float(np.max(diff))


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


def load_frame(path: str | Path, option: str = "--reference") -> Any:
    """A .csv or .parquet file as a DataFrame; ExportProblems naming the option and the file otherwise."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ExportProblems([f"{option}: no such file: {path}"])
    if path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise ExportProblems([f"{option} {path.name}: a .csv or .parquet file expected"])
    try:
        return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise ExportProblems([f"{option} {path}: the file is empty (no header, no rows)"]) from None
    except Exception as exc:  # noqa: BLE001 - whatever the parser says, the person needs the file named
        raise ExportProblems([f"{option} {path}: cannot be read: {_first_line(exc)}"]) from None


def load_schema(path: str | Path) -> SchemaFile:
    return load_schema_file(path)
