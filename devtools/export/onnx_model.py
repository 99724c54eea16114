"""``python -m devtools export-onnx``: a ready ONNX model from any framework, its schema file and
reference data: inputs and outputs matched with the graph, every feature's kind resolved, bundled."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from modelserve.bundle import ModelBundle, write_bundle
from modelserve.schema import (
    BundleManifest,
    FeatureKind,
    FeatureSpec,
    InputDtype,
    InputLayout,
    LabelType,
    OutputSpec,
    Task,
    class_key,
    infer_feature_spec,
)
from serving.model import input_dtypes

from .frames import check_reference_size, class_name, reference_rows_from_frame, sample_reference, table_from_frame
from .graph_checks import check_row_by_row, graph_class_labels, runner_for
from .performance import quality, served_performance
from .problems import ExportProblems, first_line, nearest
from .schema_file import SchemaFile, load_schema_file, parse_schema


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
        raise ExportProblems([f"{model_path}: not an ONNX model onnxruntime can load ({first_line(exc)})"]) from None
    problems: list[str] = []
    columns = [str(c) for c in reference.columns]
    input_names = _check_feature_names(decl, session, columns, problems)
    label_output, probability_output = _output_names(decl, session, problems)
    for name in kinds or {}:
        if name not in [f.name for f in decl.features]:
            problems.append(
                f"--{(kinds or {})[name].value} {name!r}: not a feature of the schema{nearest(name, [f.name for f in decl.features])}"
            )
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
    say(
        f"outputs: label from {label_output!r}, probabilities from {probability_output!r}"
        if decl.outputs.task is Task.CLASSIFICATION
        else f"outputs: value from {label_output!r}"
    )
    try:
        label_type = None if decl.outputs.label_type is LabelType.STRING else decl.outputs.label_type  # strings: the manifest's default
        outputs = OutputSpec(decl.outputs.task, tuple(classes), label_output, probability_output, decl.outputs.threshold, label_type)
        manifest = BundleManifest(
            model_name=decl.model_name,
            version="pending",
            features=tuple(specs),
            outputs=outputs,
            input_layout=decl.input_layout,
            # named even when the schema left it out: the browser page feeds the input by this name
            single_input_name=input_names[specs[0].name] if decl.input_layout is InputLayout.SINGLE_TENSOR else None,
        )
        manifest = BundleManifest.from_dict(manifest.to_dict())  # the manifest's own checks
    except ValueError as exc:
        raise ExportProblems([str(exc)]) from None
    ref = sample_reference(reference)
    runner = runner_for(manifest, model_bytes)
    table = table_from_frame(ref, specs)
    pred = runner.predict(table)  # proves the model runs on the declared schema
    metrics = {"source": "onnx", "reference_rows": int(len(ref)), "onnx_bytes": len(model_bytes), **check_row_by_row(runner, table)}
    if target is not None:
        metrics.update(quality(manifest.outputs, pred, ref[target]))
        # a ready model's training rows are unknown: the reference with targets is the best held-out set we have
        metrics["reference_performance"] = served_performance(runner, ref, specs, ref[target], source="reference")
    if small_reference_warning:
        metrics["warnings"] = [small_reference_warning]
    manifest = replace(manifest, export_metrics=metrics)
    return write_bundle(
        out_dir, model_bytes, manifest, reference_rows_from_frame(ref, specs, runner, None if target is None else ref[target])
    )


def load_schema(path: str | Path) -> SchemaFile:
    return load_schema_file(path)


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


def _check_feature_names(decl: SchemaFile, session: Any, columns: list[str], problems: list[str]) -> dict[str, str]:
    """Each feature's graph input name; problems for names in neither the model nor the reference."""
    inputs = {i.name: i for i in session.get_inputs()}
    names = [f.name for f in decl.features]
    if decl.input_layout is InputLayout.PER_COLUMN and len(inputs) == 1 and len(names) > 1 and not set(names) & set(inputs):
        (single,) = inputs.values()
        problems.append(
            f"the model takes one input {single.name!r} {single.shape} "
            f"and the schema's input_layout is per_column (one input per feature): "
            f'set "input_layout": "single_tensor"'
        )
        return {}
    for i, name in enumerate(names):
        if decl.input_layout is InputLayout.PER_COLUMN and name not in inputs:
            problems.append(
                f"schema features[{i}]: {name!r} is not an input of the model{nearest(name, list(inputs))}; model inputs: {sorted(inputs)}"
            )
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
        problems.append(
            f"schema single_input_name: {single!r} is not an input of the model{nearest(single, list(inputs))}; "
            f"model inputs: {sorted(inputs)}"
        )
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
                problems.append(
                    f"schema outputs.{key}: {name!r} is not an output of the model{nearest(name, list(outs))}; outputs: {list(outs)}"
                )
            return name
        found = [n for n, o in outs.items() if wanted(o.type)]
        if len(found) > 1:
            problems.append(f"schema outputs.{key}: several outputs could be it ({found}); name one")
        return found[0] if len(found) == 1 else None

    if declared.task is Task.REGRESSION:
        class_like = [f"{n!r} ({o.type})" for n, o in outs.items() if o.type in _LABEL_TYPES[:3] or o.type.startswith("seq(map(")]
        if class_like:
            problems.append(
                f"schema outputs.task: 'regression', but the model answers class labels or probabilities ({', '.join(class_like)}): "
                'it is a classifier; set "task": "classification"'
            )
            return None, None
        if declared.given("probability_output") and declared.probability_output is not None:
            problems.append("schema outputs.probability_output: a regression model has no probabilities; leave it out")
        value = pick("label_output", lambda t: t in _FLOAT_TYPES)
        if value is None and not problems:
            problems.append(f"schema outputs.label_output: name the output with the predicted value; outputs: {list(outs)}")
        return value, None
    label = pick("label_output", lambda t: t in _LABEL_TYPES)
    probabilities = pick("probability_output", lambda t: t.startswith("seq(map(") or t in _FLOAT_TYPES)
    if label is not None and label == probabilities:
        problems.append(
            f"schema outputs: label_output and probability_output are both {label!r}; a probabilities-only model has label_output null"
        )
    elif label in outs and outs[label].type in _FLOAT_TYPES:
        shape = outs[label].shape
        if isinstance(shape, list) and len(shape) == 2 and (not isinstance(shape[1], int) or shape[1] > 1):
            problems.append(
                f"schema outputs.label_output: {label!r} ({outs[label].type} {shape}) looks like probabilities; "
                "name it as probability_output and set label_output to null"
            )
    if label is None and probabilities is None and not problems:
        problems.append(
            f"schema outputs: the model has no label or probability output the export recognises; "
            f"outputs: {[(n, o.type) for n, o in outs.items()]}"
        )
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
