"""``python -m devtools export``: a fitted scikit-learn pipeline converted with skl2onnx, checked
against its source and bundled. Heavy imports (scikit-learn, skl2onnx) stay inside the function."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from modelserve.bundle import ModelBundle, write_bundle
from modelserve.schema import BundleManifest, FeatureKind, InputDtype, OutputSpec, Task, infer_feature_spec

from .frames import check_reference_size, class_name, prepare_frame, reference_rows_from_frame, sample_reference, table_from_frame
from .graph_checks import ParityError, canonical_bytes, check_labels_match_source, check_parity, check_row_by_row, largest_diff, runner_for
from .performance import HOLDOUT_SHARE, quality, refit_holdout_performance, served_performance
from .problems import ExportProblems, first_line, nearest
from .quantize import quantize_checked

TARGET_OPSET = 17


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
                f"skl2onnx cannot convert the pipeline: {first_line(exc)}",
                f"the graph is fed numeric/boolean features as float32 and categorical ones as text ({kinds_used}): "
                "train the pipeline on devtools.export.prepare_frame(data, specs), and declare integer codes --categorical",
            ]
        ) from None
    model_bytes = canonical_bytes(onnx_model)

    manifest = BundleManifest(model_name=model_name, version="pending", features=specs, outputs=outputs)
    small_reference_warning = check_reference_size(len(data), allow_small_reference)
    reference = sample_reference(data, seed=seed)
    prepared = prepare_frame(reference, specs)
    runner = runner_for(manifest, model_bytes)
    pred = runner.predict(table_from_frame(reference, specs))
    try:
        if is_classifier:
            source_probabilities = pipeline.predict_proba(prepared)
            parity = check_parity(source_probabilities, pred.probabilities)
            check_labels_match_source(outputs, pipeline.predict(prepared), pred.labels, source_probabilities)
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
        **quality(outputs, pred, reference[target]),
    }
    if small_reference_warning:
        metrics["warnings"] = [small_reference_warning]
    if quantize:
        parity_key = "parity_max_abs_diff" if is_classifier else "parity_max_rel_diff"
        float_bytes = len(model_bytes)
        model_bytes, qmetrics = quantize_checked(manifest, model_bytes, reference, specs, reference[target], accuracy_tolerance)
        runner = runner_for(manifest, model_bytes)
        served = runner.predict(table_from_frame(reference, specs))
        # the manifest describes the graph that is served: the quantized one
        qmetrics["float_" + parity_key] = metrics[parity_key]
        qmetrics["float_onnx_bytes"] = float_bytes
        metrics[parity_key] = largest_diff(
            source_probabilities if is_classifier else np.asarray(pipeline.predict(prepared)).reshape(-1),
            served.probabilities if is_classifier else served.labels,
            relative=not is_classifier,
        )
        metrics["onnx_bytes"] = len(model_bytes)
        metrics.update(quality(outputs, served, reference[target]))
        metrics["quantization"] = {**qmetrics, **check_row_by_row(runner, table_from_frame(reference, specs), strict=False)}
    if holdout is not None:
        metrics["reference_performance"] = served_performance(runner, holdout, specs, holdout[target], source="holdout")
    else:
        try:
            metrics["reference_performance"] = refit_holdout_performance(pipeline, data, specs, target, outputs, holdout_share, seed)
        except Exception as exc:  # noqa: BLE001 - a pipeline that cannot be refitted still exports; the drift check then uses the reference rows
            metrics.setdefault("warnings", []).append(
                f"reference performance not measured: refitting the pipeline on {1 - holdout_share:.0%} of the data failed "
                f"({first_line(exc)}); pass holdout= rows kept out of training"
            )
    manifest = replace(manifest, export_metrics=metrics)
    rows = reference_rows_from_frame(reference, specs, runner, reference[target])
    return write_bundle(out_dir, model_bytes, manifest, rows)
