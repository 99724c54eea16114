"""``python -m devtools export``: a fitted scikit-learn pipeline converted with skl2onnx, checked
against its source and bundled. Heavy imports (scikit-learn, skl2onnx) stay inside the function."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from modelserve.bundle import ModelBundle, write_bundle
from modelserve.schema import (
    CATEGORICAL_NULL_TOKEN,
    BundleManifest,
    FeatureKind,
    FeatureSpec,
    InputDtype,
    InputLayout,
    LabelType,
    OutputSpec,
    Task,
    infer_feature_spec,
)

from .estimator import EstimatorShape, diagnose, estimator_shape, for_conversion, imputed_features, imputed_text_columns
from .frames import check_reference_size, class_name, prepare_frame, reference_rows_from_frame, sample_reference, table_from_frame
from .graph_checks import (
    PARITY_TOLERANCE,
    ROW_BY_ROW_TOLERANCE,
    ParityError,
    ServingCheckError,
    canonical_bytes,
    check_labels_match_source,
    check_parity,
    check_row_by_row,
    largest_diff,
    runner_for,
)
from .parity_diagnosis import (
    ROWS_EXAMINED,
    calibration_cause,
    differing_rows,
    predict_disagrees_with_probabilities,
    rounding_cause,
    rounding_sensitivity,
    unseen_categories,
)
from .performance import HOLDOUT_SHARE, quality, refit_holdout_performance, served_performance
from .problems import ExportProblems, first_line, nearest
from .quantize import quantize_checked

TARGET_OPSET = 17
# the graph input of an estimator that takes one table (a bare estimator, a pipeline without a ColumnTransformer)
SINGLE_INPUT_NAME = "input"


def export_sklearn(
    pipeline: Any,
    data: Any,
    target: str | None,
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
    nullable: Sequence[str] = (),
    kind_sources: Mapping[str, str] | None = None,
) -> ModelBundle:
    """Convert a fitted estimator or pipeline trained on ``prepare_frame`` data; check parity; write the bundle.

    Any fitted scikit-learn classifier or regressor: a pipeline whose first step is a ColumnTransformer
    gets one graph input per feature; anything else (a bare estimator, a pipeline of numeric steps, a
    search or calibration wrapper) one float32 table of the features in order. Labels keep their type
    (string, integer or boolean classes), recorded in the manifest.

    ``kinds``: feature kinds declared by the user (the rest are inferred from the data); ``log``
    receives one line per feature: its kind and why (``kind_sources``: where a declared kind comes
    from, by feature; default "on the command line"). A feature accepts null when the data has nulls,
    when the pipeline imputes it, or when it is named in ``nullable``.

    The reference performance (``export_metrics["reference_performance"]``, what the drift check
    compares the window's labels with) is measured on rows the model did not learn from: the served
    graph on ``holdout`` when given (rows kept out of training), otherwise a copy of the pipeline
    refitted on the data minus a stratified ``holdout_share``, scored on that share. Without a
    ``target`` (an MLflow input example as the reference) there is neither, and a warning says so.
    """
    say = log or (lambda line: None)
    if quantize and target is None:
        raise ExportProblems(["--quantize: needs --target (the accuracy before and after is what decides)"])
    specs = _feature_specs(pipeline, data, target, feature_names, kinds or {}, say, kind_sources or {})
    specs = _with_nullability(pipeline, specs, nullable, say)
    shape = estimator_shape(pipeline)
    problems = diagnose(pipeline, specs, shape)
    if problems:
        raise ExportProblems(problems)
    is_classifier = shape.label_type is not None
    outputs = _outputs(pipeline, shape)
    model_bytes = _convert(pipeline, specs, shape, model_name)

    manifest = BundleManifest(
        model_name=model_name,
        version="pending",
        features=specs,
        outputs=outputs,
        input_layout=InputLayout.PER_COLUMN if shape.takes_columns else InputLayout.SINGLE_TENSOR,
        single_input_name=None if shape.takes_columns else SINGLE_INPUT_NAME,
    )
    small_reference_warning = check_reference_size(len(data), allow_small_reference)
    reference = sample_reference(data, seed=seed)
    prepared = _source_frame(pipeline, reference, specs)
    source = _source_answers(pipeline, prepared, specs, is_classifier)
    runner = runner_for(manifest, model_bytes)
    pred = runner.predict(table_from_frame(reference, specs))
    parity_key = "parity_max_abs_diff" if is_classifier else "parity_max_rel_diff"
    metrics: dict[str, Any] = {
        "source": "scikit-learn",
        parity_key: _check_against_source(pipeline, prepared, source, pred, outputs, specs),
        "reference_rows": int(len(reference)),
        "onnx_bytes": len(model_bytes),
        **_check_row_by_row(runner, table_from_frame(reference, specs), pipeline, prepared, specs, is_classifier),
        **(quality(outputs, pred, reference[target]) if target is not None else {}),
    }
    if small_reference_warning:
        metrics["warnings"] = [small_reference_warning]
    if quantize:
        float_metrics = {"float_" + parity_key: metrics[parity_key], "float_onnx_bytes": len(model_bytes)}
        model_bytes, qmetrics = quantize_checked(manifest, model_bytes, reference, specs, reference[target or ""], accuracy_tolerance)
        runner = runner_for(manifest, model_bytes)
        served = runner.predict(table_from_frame(reference, specs))
        # the manifest describes the graph that is served: the quantized one
        qmetrics.update(float_metrics)
        metrics[parity_key] = largest_diff(source, served.probabilities if is_classifier else served.labels, relative=not is_classifier)
        metrics["onnx_bytes"] = len(model_bytes)
        metrics.update(quality(outputs, served, reference[target or ""]))
        metrics["quantization"] = {**qmetrics, **check_row_by_row(runner, table_from_frame(reference, specs), strict=False)}
    _add_reference_performance(metrics, runner, pipeline, data, specs, target, outputs, holdout, holdout_share, seed)
    manifest = replace(manifest, export_metrics=metrics)
    rows = reference_rows_from_frame(reference, specs, runner, None if target is None else reference[target])
    return write_bundle(out_dir, model_bytes, manifest, rows)


def _feature_specs(
    pipeline: Any,
    data: Any,
    target: str | None,
    feature_names: Sequence[str] | None,
    kinds: Mapping[str, FeatureKind],
    say: Callable[[str], None],
    kind_sources: Mapping[str, str],
) -> tuple[FeatureSpec, ...]:
    """Each feature's spec (declared kind or inferred from the data, one line of why each), typed as
    the graph takes it; ExportProblems naming every wrong column, option and feature."""
    columns = [str(c) for c in data.columns]
    names = list(feature_names) if feature_names else [c for c in columns if c != target]
    problems = (
        [f"--target {target!r}: not a column of the data{nearest(target, columns)}"] if target is not None and target not in columns else []
    )
    problems += [f"--features: {n!r} is not a column of the data{nearest(n, columns)}" for n in names if n not in columns]
    problems += [f"--{k.value} {n!r}: not a feature{nearest(n, names)}" for n, k in kinds.items() if n not in names]
    if not (hasattr(pipeline, "predict") and hasattr(pipeline, "fit")):
        problems.append(f"--pipeline: a {type(pipeline).__name__}, not a fitted scikit-learn estimator or pipeline")
    if problems:
        raise ExportProblems(problems)
    specs_and_reasons = []
    for n in names:
        try:
            specs_and_reasons.append(infer_feature_spec(n, data[n], kinds.get(n)))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ExportProblems(problems)
    for spec, reason in specs_and_reasons:
        say(f"  {spec.name}: {reason.replace('(declared', '(declared ' + kind_sources.get(spec.name, 'on the command line'))}")
    return tuple(
        replace(spec, dtype=InputDtype.STRING if spec.kind is FeatureKind.CATEGORICAL else InputDtype.FLOAT32)
        for spec, _ in specs_and_reasons
    )


def _with_nullability(
    pipeline: Any, specs: Sequence[FeatureSpec], nullable: Sequence[str], say: Callable[[str], None]
) -> tuple[FeatureSpec, ...]:
    """Features that accept null: null in the data, imputed by the pipeline, or named by --nullable."""
    names = [f.name for f in specs]
    unknown = [n for n in nullable if n not in names]
    if unknown:
        raise ExportProblems([f"--nullable {n!r}: not a feature{nearest(n, names)}" for n in unknown])
    imputed = imputed_features(pipeline, specs)
    out = []
    for f in specs:
        if f.nullable:
            out.append(f)
        elif f.name in nullable or f.name in imputed:
            say(f"  {f.name}: accepts null ({'declared --nullable' if f.name in nullable else 'the pipeline imputes it'})")
            out.append(replace(f, nullable=True))
        else:
            out.append(f)
    return tuple(out)


def _source_frame(pipeline: Any, frame: Any, specs: Sequence[FeatureSpec]) -> Any:
    """The frame the source model is checked on: ``prepare_frame``'s, with a null text value as NaN where
    a SimpleImputer looks for NaN (the graph's copy of that imputer takes "" instead: the same rows imputed)."""
    prepared = prepare_frame(frame, specs)
    for name in imputed_text_columns(pipeline):
        if name in prepared.columns:
            prepared[name] = prepared[name].astype(object).where(prepared[name] != CATEGORICAL_NULL_TOKEN, np.nan)
    return prepared


def _outputs(pipeline: Any, shape: EstimatorShape) -> OutputSpec:
    """The manifest's outputs: classes in ``classes_`` order with their label type, or a regression value."""
    if shape.label_type is None:
        return OutputSpec(Task.REGRESSION, (), label_output="variable", probability_output=None)
    classes = tuple(class_name(c) for c in pipeline.classes_)
    label_type = None if shape.label_type is LabelType.STRING else shape.label_type
    # skl2onnx writes boolean classes as 0/1 in its label output: the label is the most probable class instead
    label_output = None if shape.label_type is LabelType.BOOLEAN else "label"
    return OutputSpec(Task.CLASSIFICATION, classes, label_output=label_output, label_type=label_type)


def _convert(pipeline: Any, specs: Sequence[FeatureSpec], shape: EstimatorShape, model_name: str) -> bytes:
    """The estimator as an ONNX graph (one input per feature, or one table; probabilities as a plain tensor), canonical bytes."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    if shape.takes_columns:
        initial_types = [
            (f.name, StringTensorType([None, 1]) if f.kind is FeatureKind.CATEGORICAL else FloatTensorType([None, 1])) for f in specs
        ]
    else:
        initial_types = [(SINGLE_INPUT_NAME, FloatTensorType([None, len(specs)]))]
    converted = for_conversion(pipeline)
    options = {id(converted): {"zipmap": False}} if shape.label_type is not None else None
    # a fixed graph name: skl2onnx would pick a random one, and the version is a content hash
    try:
        onnx_model = convert_sklearn(converted, initial_types=initial_types, options=options, target_opset=TARGET_OPSET, name=model_name)
    except Exception as exc:  # noqa: BLE001 - converter errors come in many types; the person needs the context
        raise ExportProblems([conversion_problem(exc)]) from None
    return canonical_bytes(onnx_model)


def conversion_problem(exc: BaseException) -> str:
    """skl2onnx's refusal in one line, with its cause when it is a known one."""
    message = first_line(exc)
    if "Unable to find a shape calculator" in message or "Unable to find converter" in message:
        return (
            f"skl2onnx has no converter for a step of this model ({message}); "
            "replace that step or export the model to ONNX yourself (export-onnx)"
        )
    return f"skl2onnx cannot convert the pipeline: {message}"


def _source_answers(pipeline: Any, prepared: Any, specs: Sequence[FeatureSpec], is_classifier: bool) -> np.ndarray:
    """The source's probabilities (classifier) or values (regressor) on the reference: what the graph must
    reproduce. ExportProblems when scikit-learn refuses the rows (categories its encoder never saw) or when
    its own labels contradict its probabilities."""
    problems = unseen_categories(pipeline, prepared, specs)
    if problems:
        raise ExportProblems(problems)
    if not is_classifier:
        return np.asarray(pipeline.predict(prepared)).reshape(-1)
    source = np.asarray(pipeline.predict_proba(prepared), dtype=np.float64)
    disagreement = predict_disagrees_with_probabilities(pipeline, pipeline.predict(prepared), source, PARITY_TOLERANCE)
    if disagreement:
        raise ExportProblems([disagreement])
    return source


def _source_answer_function(pipeline: Any, is_classifier: bool) -> Callable[[Any], np.ndarray]:
    return pipeline.predict_proba if is_classifier else (lambda frame: np.asarray(pipeline.predict(frame)).reshape(-1))


def _check_against_source(
    pipeline: Any, prepared: Any, source: np.ndarray, pred: Any, outputs: OutputSpec, specs: Sequence[FeatureSpec]
) -> float:
    """The graph's largest difference from the source on the reference (and, for classes, the same labels);
    ParityError naming the cause when it differs (float32 rounding), else the figures and the usual causes."""
    is_classifier = outputs.task is Task.CLASSIFICATION
    served = pred.probabilities if is_classifier else pred.labels
    try:
        if is_classifier:
            parity = check_parity(source, served)
            check_labels_match_source(outputs, pipeline.predict(prepared), pred.labels, source)
            return parity
        return check_parity(source, served, relative=True)
    except ParityError as exc:
        bad = differing_rows(source, served, PARITY_TOLERANCE, relative=not is_classifier)
        if len(bad):
            answer = _source_answer_function(pipeline, is_classifier)
            found = rounding_sensitivity(answer, prepared, bad[:ROWS_EXAMINED], specs, not is_classifier, PARITY_TOLERANCE)
            largest = largest_diff(source, served, relative=not is_classifier)
            cause = rounding_cause(found, len(bad), len(source), largest, pipeline, prepared)
            if cause and len(found) * 2 >= min(len(bad), ROWS_EXAMINED):  # float32 explains most of the rows examined
                raise ParityError(cause) from None
            cause = calibration_cause(pipeline, len(bad), len(source), largest)
            if cause:
                raise ParityError(cause) from None
        raise ParityError(
            f"{exc}. The graph sees float32 numbers and '' for null categories: train the pipeline on "
            "devtools.export.prepare_frame(data, specs); no known cause found (float32 rounding and isotonic calibration "
            "were looked for)"
        ) from None


def _check_row_by_row(
    runner: Any, table: dict[str, np.ndarray], pipeline: Any, prepared: Any, specs: Sequence[FeatureSpec], is_classifier: bool
) -> dict[str, Any]:
    """``check_row_by_row``; when the answer depends on the batch because the model uses more digits than
    float32 keeps (onnxruntime sums a batch in another order than a row), the refusal names that cause."""
    try:
        return check_row_by_row(runner, table)
    except ServingCheckError as exc:
        rows = list(exc.rows[:ROWS_EXAMINED])
        answer = _source_answer_function(pipeline, is_classifier)
        found = rounding_sensitivity(answer, prepared, rows, specs, not is_classifier, ROW_BY_ROW_TOLERANCE)
        if not rows or len(found) * 2 < len(rows):
            raise
        cause = rounding_cause(found, len(exc.rows), len(prepared), None, pipeline, prepared)
        raise ServingCheckError(f"the model's answer depends on the other rows of the request: {cause}", exc.rows) from None


def _add_reference_performance(
    metrics: dict[str, Any],
    runner: Any,
    pipeline: Any,
    data: Any,
    specs: Sequence[FeatureSpec],
    target: str | None,
    outputs: OutputSpec,
    holdout: Any | None,
    holdout_share: float,
    seed: int,
) -> None:
    """``reference_performance`` on rows the model did not learn from: the served graph on ``holdout``,
    else a refitted copy of the pipeline on a held-out share; a warning when the refit fails."""
    if target is None:
        metrics.setdefault("warnings", []).append("reference performance not measured: no target (give --data with --target)")
        return
    if holdout is not None:
        metrics["reference_performance"] = served_performance(runner, holdout, specs, holdout[target], source="holdout")
        return
    try:
        metrics["reference_performance"] = refit_holdout_performance(pipeline, data, specs, target, outputs, holdout_share, seed)
    except Exception as exc:  # noqa: BLE001 - a pipeline that cannot be refitted still exports; the drift check then uses the reference rows
        metrics.setdefault("warnings", []).append(
            f"reference performance not measured: refitting the pipeline on {1 - holdout_share:.0%} of the data failed "
            f"({first_line(exc)}); pass holdout= rows kept out of training"
        )
